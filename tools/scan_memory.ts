/**
 * Measures store memory under concurrent maximum-size scans (docs/security.md, "Bounded
 * resources"): starts a real 3-store cluster (secret mode, temp dirs), writes `--keys` values of
 * 1 MiB, then runs `--scans` concurrent `GET /kv?limit=10000` page walks against one store while
 * sampling every store's resident memory from /proc. Prints the peak RSS per store.
 *
 *   deno run -A tools/scan_memory.ts [--keys 200] [--scans 20] [--rounds 3]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ProcessCluster } from "../tests/process_cluster.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    keys: { type: "string", default: "200" },
    scans: { type: "string", default: "20" },
    rounds: { type: "string", default: "3" },
  },
});
const keys = Number(values.keys);
const scans = Number(values.scans);
const rounds = Number(values.rounds);

function rssBytes(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** The deno process serving a store: the ChildProc's pid is `deno run`, which is it. */
const c = await ProcessCluster.start({ stores: 3 });
try {
  await c.waitRegionVoters(1, 3);
  const value = new Uint8Array(1024 * 1024).map((_, i) => i * 7);
  const t0 = Date.now();
  for (let i = 0; i < keys; i += 4) {
    await Promise.all([0, 1, 2, 3].map(async (j) => {
      if (i + j >= keys) return;
      for (let attempt = 0;; attempt++) {
        const res = await fetch(
          `${c.storeUrl((i + j) % 3)}/kv/big${String(i + j).padStart(5, "0")}`,
          {
            method: "PUT",
            body: value,
          },
        );
        await res.arrayBuffer();
        if (res.status === 204) return;
        if (attempt > 50) throw new Error(`PUT failed with ${res.status}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }));
  }
  console.log(`wrote ${keys} values of 1 MiB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const pids = [0, 1, 2].map((i) => c.proc(i)!.pid);
  const base = pids.map(rssBytes);
  const peak = [...base];
  const sampler = setInterval(() => {
    pids.forEach((pid, i) => peak[i] = Math.max(peak[i]!, rssBytes(pid)));
  }, 50);
  let pages = 0;
  let retries = 0;
  let pairs = 0;
  const t1 = Date.now();
  for (let round = 0; round < rounds; round++) {
    await Promise.all(Array.from({ length: scans }, async () => {
      let start = "";
      for (;;) {
        const q = new URLSearchParams({ start, limit: "10000" });
        const res = await fetch(`${c.storeUrl(0)}/kv?${q}`);
        if (res.status === 503) {
          // A retryable answer (the page took longer than one attempt under this load).
          await res.arrayBuffer();
          retries++;
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        if (res.status !== 200) throw new Error(`scan answered ${res.status}: ${await res.text()}`);
        const page = await res.json() as { kvs: unknown[]; next: string | null };
        pages++;
        pairs += page.kvs.length;
        if (page.next === null) return;
        start = page.next;
      }
    }));
  }
  clearInterval(sampler);
  const mib = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MiB`;
  console.log(
    `${rounds} rounds of ${scans} concurrent full scans: ${pages} pages, ${pairs} pairs in ` +
      `${((Date.now() - t1) / 1000).toFixed(1)} s, ${retries} pages retried after a 503`,
  );
  pids.forEach((_, i) =>
    console.log(`store slot ${i}: RSS before ${mib(base[i]!)}, peak during scans ${mib(peak[i]!)}`)
  );
  await c.shutdown();
} finally {
  await c.close();
}
