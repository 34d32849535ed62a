/**
 * The merge benchmark on real processes: a scheduler and 3 stores over HTTP, driven only through
 * the KV API and the admin API, as an operator would (see tools/merge_bench.ts).
 *
 * @module
 */
import { pollUntil, ProcessCluster } from "../../tests/process_cluster.ts";

interface RegionJson {
  readonly id: number;
  readonly start_key: string;
  readonly leader?: { readonly store_id: number };
}

/** Runs the benchmark; returns how many kept keys or acknowledged writes read back wrong. */
export async function runOnProcesses(
  opts: { regions: number; maxMs: number; keysPerRegion: number },
): Promise<number> {
  const key = (i: number) => `key-${String(i).padStart(6, "0")}`;
  const c = await ProcessCluster.start({ stores: 3 });
  const client = c.clientHeaders();
  // An admin call that must succeed.
  const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const [status, json] = await c.adminApi<T>(method, path, body);
    if (status < 200 || status > 299) {
      throw new Error(`${method} ${path}: ${status} ${JSON.stringify(json)}`);
    }
    return json;
  };
  const regions = async () => (await api<{ regions: RegionJson[] }>("GET", "/regions")).regions;
  let slot = 0;
  let retried = 0;
  // One KV request, through the stores in turn; retried (same value: applying twice is the same
  // as once) while the region is busy splitting or merging.
  const kv = async (method: "PUT" | "DELETE" | "GET", k: string, value?: string) => {
    for (let attempt = 0;; attempt++) {
      const s = slot++ % 3;
      try {
        const res = await c.fetch(`${c.storeUrl(s)}/kv/${encodeURIComponent(k)}`, {
          method,
          headers: client,
          body: value,
          signal: AbortSignal.timeout(10_000),
        });
        const text = await res.text();
        if (res.ok || (method === "GET" && res.status === 404)) {
          return res.status === 404 ? null : text;
        }
        if (res.status !== 503 || attempt >= 20) {
          throw new Error(`${method} ${k}: ${res.status} ${text}`);
        }
      } catch (e) {
        if (attempt >= 20) throw e;
      }
      retried++;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  try {
    await c.waitRegionVoters(1, 3, 60_000);
    const total = opts.regions * opts.keysPerRegion;
    for (let i = 0; i < total; i++) await kv("PUT", key(i), `v${i}`);
    // Split at every region boundary, in batches of up to 100 keys per operator.
    let t = performance.now();
    const bounds = Array.from(
      { length: opts.regions - 1 },
      (_, r) => key((r + 1) * opts.keysPerRegion),
    );
    for (let i = 0; i < bounds.length; i += 100) {
      const batch = bounds.slice(i, i + 100);
      const r = await api<RegionJson>("GET", `/region/key/${encodeURIComponent(batch[0]!)}`);
      await api("POST", "/operators", { name: "split-region", region_id: r.id, keys: batch });
      await pollUntil(`the split at ${batch[0]}`, async () => {
        const now = await api<RegionJson>("GET", `/region/key/${encodeURIComponent(batch[0]!)}`);
        return now.start_key === batch[0] && now.leader !== undefined;
      }, { timeoutMs: 60_000, intervalMs: 100 });
    }
    await pollUntil(`${opts.regions} regions, each with a leader`, async () => {
      const rs = await regions();
      return rs.length === opts.regions && rs.every((r) => r.leader);
    }, { timeoutMs: 120_000, intervalMs: 200 });
    console.log(`split into ${opts.regions} regions in ${Math.round(performance.now() - t)} ms`);
    const kept: number[] = [];
    for (let i = 0; i < total; i++) {
      if (i % 10 === 0) kept.push(i);
      else await kv("DELETE", key(i));
    }

    // 1. One admin merge while a client writes into both regions.
    const sorted = (await regions()).sort((a, b) => a.start_key < b.start_key ? -1 : 1);
    const [left, right] = [sorted[0]!, sorted[1]!];
    const acked: string[] = [];
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const k = `${i % 2 ? "" : "key-000000-"}w${i}`; // both sides of the boundary
        await kv("PUT", k, String(i));
        acked.push(k);
      }
    })();
    t = performance.now();
    await api("POST", "/operators", {
      name: "merge-region",
      source_region_id: right.id,
      target_region_id: left.id,
    });
    await pollUntil("the admin merge", async () => {
      const rs = await regions();
      return !rs.some((r) => r.id === right.id);
    }, { timeoutMs: 60_000, intervalMs: 20 });
    console.log(
      `merge-region ${right.id} -> ${left.id}: source gone from the scheduler's map in ` +
        `${Math.round(performance.now() - t)} ms (${acked.length} writes acknowledged meanwhile)`,
    );
    writing = false;
    await writer;

    // 2. The merge checker, on its own.
    t = performance.now();
    await api("POST", "/config", { split_merge_interval: 0 });
    let last = (await regions()).length;
    console.log(`merge checker on: ${last} regions`);
    while (last > 1 && performance.now() - t < opts.maxMs) {
      await new Promise((r) => setTimeout(r, 1000));
      const now = (await regions()).length;
      if (now !== last) {
        console.log(`  ${((performance.now() - t) / 1000).toFixed(1)} s: ${now} regions`);
        last = now;
      }
    }
    console.log(
      `merge checker: ${last} region(s) left after ${
        ((performance.now() - t) / 1000).toFixed(1)
      } s`,
    );

    let lost = 0;
    for (const i of kept) if ((await kv("GET", key(i))) !== `v${i}`) lost++;
    for (const k of acked) if ((await kv("GET", k)) !== k.split("w").pop()) lost++;
    console.log(
      `read back ${kept.length} kept keys and ${acked.length} writes: ${lost} wrong ` +
        `(${retried} requests retried after a 503 or a lost connection)`,
    );
    return lost;
  } finally {
    await c.close();
  }
}
