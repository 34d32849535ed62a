/**
 * The scheduler under failure, measured on a local cluster of real processes (the numbers in
 * docs/scheduler.md, "Failure drill"):
 *
 * 1. `kill -9` of one of N stores under a write load: when the scheduler marks it Disconnected
 *    and Down, which operators targeted it after the kill, write latency to the regions that
 *    had a replica on it, and when every region is back to 3 healthy replicas;
 * 2. admin splits one at a time: how long until the scheduler shows the new region with a
 *    leader;
 * 3. multi-key splits: every key makes a region;
 * 4. admin splits at scale: many clients each split at one key after another, as an operator
 *    script would, for at most `--scale-time`: how many operators finished, timed out or were
 *    cancelled, the ID allocator's mark against the region count, and the stores' log lines
 *    meanwhile (a retry storm shows there);
 * 5. the end: whether every region has a leader and 3 healthy voters (none pending or down, no
 *    learner left over, none on the killed store) with no operator running, within 60 s.
 *
 * ```sh
 * deno run -A tools/sched_drill.ts                       # 5 stores, max-store-down-time 15s
 * deno run -A tools/sched_drill.ts --stores 5 --regions 32 --writers 16 --splits 20 \
 *     --down-time 15s --disconnect-time 1s --json
 * deno run -A tools/sched_drill.ts --phases scale --scale-splits 1000 --scale-time 300s
 * ```
 *
 * Stores run with the end-to-end tests' fast timing (50 ms Raft ticks, 200 ms heartbeats).
 *
 * @module
 */
import { parseToolArgs } from "./_cli.ts";
import { parseDuration } from "../config/config.ts";
import { ProcessCluster, type SchedulerRegion } from "../tests/process_cluster.ts";

const USAGE =
  `Usage: deno run -A tools/sched_drill.ts [--stores 5] [--regions 32] [--writers 16] [--splits 20]
       [--down-time 15s] [--disconnect-time D] [--phases kill,splits,multi,scale] [--json]
       [--scale-splits N] [--scale-clients N] [--scale-time D]

The scheduler under failure on real processes: kill -9 of a store under writes, admin splits,
multi-key splits and splits at scale (docs/scheduler.md, "Failure drill").`;

const { values } = parseToolArgs({
  name: "sched_drill",
  usage: USAGE,
  options: {
    stores: { type: "string", default: "5" },
    regions: { type: "string", default: "32" },
    writers: { type: "string", default: "16" },
    splits: { type: "string", default: "20" },
    "down-time": { type: "string", default: "15s" },
    "disconnect-time": { type: "string" },
    json: { type: "boolean", default: false },
    phases: { type: "string", default: "kill,splits,multi,scale" },
    "scale-splits": { type: "string", default: "500" },
    "scale-clients": { type: "string", default: "16" },
    "scale-time": { type: "string", default: "300s" },
  },
});
const STORES = Number(values.stores);
const REGIONS = Number(values.regions);
const WRITERS = Number(values.writers);
const SPLITS = Number(values.splits);
const KEYSPACE = 10_000;
const PHASES = new Set(values.phases.split(","));
for (const p of PHASES) {
  if (!["kill", "splits", "multi", "scale"].includes(p)) {
    throw new Error(`--phases: unknown phase "${p}" (known: kill, splits, multi, scale)`);
  }
}

const log = (msg: string) => console.error(`drill: ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const key = (n: number) => `key-${String(n).padStart(5, "0")}`;

/** A region as `/regions` shows it, with its keys as text (drill keys are ASCII). */
interface Region extends SchedulerRegion {
  readonly start_key?: string;
  readonly end_key?: string;
  readonly down_peers: readonly { peer: { store_id: number } }[];
}

/** An operator as `/operators` and `/operators/records` show it. */
interface OperatorJson {
  readonly region_id: number;
  readonly desc: string;
  readonly status: string;
  readonly reason: string;
  readonly created_at: string;
  readonly ended_at: string | null;
  readonly steps: readonly { type: string; peer?: { store_id: number } }[];
}

/** Admin credentials for the scheduler's API (the cluster runs secured, as by default). */
let adminHeaders: Record<string, string> = {};

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { headers: adminHeaders, signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return await res.json() as T;
}

async function postJson<T>(url: string, body: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(url, {
    method: "POST",
    headers: adminHeaders,
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  });
  return { status: res.status, json: await res.json() as T };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function summary(latencies: number[]) {
  const s = [...latencies].sort((a, b) => a - b);
  return {
    count: s.length,
    p50: Math.round(percentile(s, 50)),
    p99: Math.round(percentile(s, 99)),
    max: Math.round(s.at(-1) ?? NaN),
    over500: s.filter((x) => x > 500).length,
  };
}

const inRegion = (k: string, r: Region) =>
  (r.start_key ?? "") <= k && (r.end_key === undefined || r.end_key === "" || k < r.end_key);

async function main(): Promise<void> {
  const schedulerFlags = ["--max-store-down-time", values["down-time"]];
  if (values["disconnect-time"]) {
    schedulerFlags.push("--store-disconnect-time", values["disconnect-time"]);
  }
  log(`starting a scheduler (${schedulerFlags.join(" ")}) and ${STORES} stores`);
  const c = await ProcessCluster.start({ stores: STORES, schedulerFlags });
  adminHeaders = c.adminHeaders();
  const clientHeaders = c.clientHeaders();
  try {
    const api = `${c.schedulerUrl}/pd/api/v1`;
    const regions = async () => (await getJson<{ regions: Region[] }>(`${api}/regions`)).regions;
    const operators = async () => [
      ...(await getJson<{ operators: OperatorJson[] }>(`${api}/operators/records`)).operators,
      ...(await getJson<{ operators: OperatorJson[] }>(`${api}/operators`)).operators,
    ];
    await c.waitRegionVoters(1, 3, 60_000);

    // ---- setup: REGIONS regions, balanced --------------------------------------------------
    const splitKeys = Array.from(
      { length: REGIONS - 1 },
      (_, i) => key(Math.round(((i + 1) * KEYSPACE) / REGIONS)),
    );
    // One key per operator, so the setup is the same for versions without batch splits.
    for (const k of splitKeys) {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const r = (await regions()).find((x) => inRegion(k, x));
        if (r?.start_key === k && r.leader) break;
        if (r && r.start_key !== k) {
          await postJson(`${api}/operators`, { name: "split-region", region_id: r.id, keys: [k] });
        }
        if (Date.now() > deadline) throw new Error(`setup: no region led at ${k} in 30 s`);
        await sleep(50);
      }
    }
    // Settled: every region has 3 voters, no pending peer and a leader, and no operator has run
    // for 3 s. On a busy machine balancing may go on for long: after 120 s healthy is enough.
    let quietSince = Date.now();
    const settleStart = Date.now();
    let stillRunning = 0;
    for (;;) {
      const rs = await regions();
      const running = (await getJson<{ count: number }>(`${api}/operators`)).count;
      const healthy = rs.length === REGIONS &&
        rs.every((r) => r.leader && r.peers.length === 3 && r.pending_peers.length === 0);
      if (!healthy || running > 0) quietSince = Date.now();
      if (Date.now() - quietSince > 3_000) break;
      if (healthy && Date.now() - settleStart > 120_000) {
        stillRunning = running;
        break;
      }
      if (Date.now() - settleStart > 180_000) {
        const ops = await operators();
        const tally: Record<string, number> = {};
        for (const op of ops) {
          const k = `${op.desc} ${op.status} ${op.reason.replace(/\d+/g, "N")}`;
          tally[k] = (tally[k] ?? 0) + 1;
        }
        const sick = rs.filter((r) => r.down_peers.length > 0 || r.pending_peers.length > 0)
          .map((r) => ({ id: r.id, down: r.down_peers, pending: r.pending_peers }));
        throw new Error(
          `the cluster did not become healthy in 180 s: ${rs.length} regions, ${running} ` +
            `operators running, operators ${JSON.stringify(tally)}, regions with down or ` +
            `pending peers ${JSON.stringify(sick)}`,
        );
      }
      await sleep(200);
    }
    const stores = await getJson<
      {
        stores: { store: { id: number }; status: { leader_count: number; region_count: number } }[];
      }
    >(
      `${api}/stores`,
    );
    log(
      `settled after ${Math.round((Date.now() - settleStart) / 1000)} s (${stillRunning} ` +
        `balance operators still running): ${
          stores.stores.map((s) =>
            `store ${s.store.id} ${s.status.region_count}r/${s.status.leader_count}l`
          ).join(", ")
        }`,
    );

    // ---- 1. kill -9 under load ---------------------------------------------------------------
    let kill: unknown = null;
    let victimId: number | undefined;
    if (PHASES.has("kill")) {
      // The victim: the store leading fewest regions (but some), the one balance-leader would
      // pick as a target once its leaders are gone.
      const candidates = stores.stores.filter((s) => s.status.leader_count > 0)
        .sort((a, b) => a.status.leader_count - b.status.leader_count);
      const victim = candidates[0]!.store.id;
      victimId = victim;
      const victimSlot = c.slotOf(victim);
      const before = await regions();
      const hadReplica = new Set(
        before.filter((r) => r.peers.some((p) => p.store_id === victim)).map((r) => r.id),
      );
      const ledByVictim = new Set(
        before.filter((r) => r.leader?.store_id === victim).map((r) => r.id),
      );
      const regionOfKey = (k: string) => before.find((r) => inRegion(k, r))!.id;
      const liveSlots = Array.from({ length: STORES }, (_, i) => i).filter((i) => i !== victimSlot);

      let stop = false;
      const writes: {
        at: number;
        ms: number;
        region: number;
        failed: boolean;
        /** Each attempt that did not succeed: slot, status or error, and its duration. */
        tries: string[];
      }[] = [];
      const writers = Array.from({ length: WRITERS }, async (_, w) => {
        let n = w;
        while (!stop) {
          const k = key(Math.floor(Math.random() * KEYSPACE));
          const start = performance.now();
          const at = Date.now();
          let failed = true;
          const tries: string[] = [];
          for (let attempt = 0; attempt < 300 && !stop; attempt++) {
            const slot = liveSlots[(n++) % liveSlots.length]!;
            const t0 = performance.now();
            try {
              const res = await fetch(`${c.storeUrl(slot)}/kv/${k}`, {
                method: "PUT",
                headers: clientHeaders,
                body: `v${at}`,
                signal: AbortSignal.timeout(10_000),
              });
              const text = await res.text();
              if (res.status === 204) {
                failed = false;
                break;
              }
              tries.push(
                `slot ${slot}: ${res.status} ${text.slice(0, 160)} (${
                  Math.round(performance.now() - t0)
                } ms)`,
              );
            } catch (e) {
              tries.push(
                `slot ${slot}: ${(e as Error).message} (${Math.round(performance.now() - t0)} ms)`,
              );
            }
            await sleep(20);
          }
          const ms = performance.now() - start;
          if (ms > 3_000 && Deno.env.get("MRKV_DEBUG") === "1") {
            log(
              `slow write to region ${regionOfKey(k)}: ${Math.round(ms)} ms ${
                JSON.stringify(tries)
              }`,
            );
          }
          writes.push({ at, ms, region: regionOfKey(k), failed, tries });
        }
      });
      await sleep(5_000); // a baseline under load
      log(
        `kill -9 of store ${victim} (slot ${victimSlot}); it led ${ledByVictim.size} and held ${hadReplica.size} of ${REGIONS} regions`,
      );
      const killedAt = Date.now();
      await c.crashStore(victimSlot);

      let disconnectedAt = 0;
      let downAt = 0;
      let repairedAt = 0;
      const deadline = killedAt + 120_000;
      while (Date.now() < deadline) {
        const state = (await getJson<{ store: { state_name: string } }>(`${api}/store/${victim}`))
          .store.state_name;
        if (!disconnectedAt && state !== "Up") disconnectedAt = Date.now();
        if (!downAt && state === "Down") downAt = Date.now();
        if (downAt && !repairedAt) {
          const rs = await regions();
          const ok = rs.length >= REGIONS &&
            rs.every((r) =>
              r.leader !== null && r.leader.store_id !== victim && r.pending_peers.length === 0 &&
              r.down_peers.length === 0 &&
              r.peers.length === 3 && r.peers.every((p) =>
                p.role === "Voter" && p.store_id !== victim
              )
            );
          if (ok) repairedAt = Date.now();
        }
        if (repairedAt && Date.now() - repairedAt > 2_000) break;
        await sleep(100);
      }
      stop = true;
      await Promise.all(writers);
      const ops = await operators();
      // Operators that would send work to the victim while it is dead: made after the kill,
      // or made before and still running then.
      const targeting = ops.filter((op) =>
        (op.ended_at === null || Date.parse(op.ended_at) >= killedAt) &&
        op.steps.some((s) => s.type !== "RemovePeer" && s.peer?.store_id === victim)
      );
      const lastTargetEnd = Math.max(
        killedAt,
        ...targeting.map((op) => op.ended_at ? Date.parse(op.ended_at) : Infinity),
      );
      const during = writes.filter((w) => w.at >= killedAt && w.at <= (repairedAt || Date.now()));
      const baseline = writes.filter((w) => w.at < killedAt);
      kill = {
        victim,
        ledRegions: ledByVictim.size,
        replicaRegions: hadReplica.size,
        disconnectedAfterMs: disconnectedAt - killedAt,
        downAfterMs: downAt - killedAt,
        repairedAfterDownMs: repairedAt ? repairedAt - downAt : null,
        repairedAfterKillMs: repairedAt ? repairedAt - killedAt : null,
        noOperatorTargetsVictimAfterMs: lastTargetEnd - killedAt,
        operatorsTargetingVictimAfterKill: targeting.map((op) => ({
          desc: op.desc,
          createdAfterKillMs: Date.parse(op.created_at) - killedAt,
          status: op.status,
          endedAfterKillMs: op.ended_at ? Date.parse(op.ended_at) - killedAt : null,
          reason: op.reason,
        })),
        writesBeforeKill: summary(baseline.map((w) => w.ms)),
        writesToFormerRegions: summary(
          during.filter((w) => hadReplica.has(w.region)).map((w) => w.ms),
        ),
        writesToRegionsItLed: summary(
          during.filter((w) => ledByVictim.has(w.region)).map((w) => w.ms),
        ),
        writesToFormerRegionsAfterFirst2s: summary(
          during.filter((w) => hadReplica.has(w.region) && w.at >= killedAt + 2_000)
            .map((w) => w.ms),
        ),
        writesToOtherRegions: summary(
          during.filter((w) => !hadReplica.has(w.region)).map((w) => w.ms),
        ),
        failedWrites: writes.filter((w) => w.failed).length,
        slowestWrites: [...writes].sort((a, b) => b.ms - a.ms).slice(0, 5).map((w) => ({
          afterKillMs: w.at - killedAt,
          ms: Math.round(w.ms),
          region: w.region,
          ledByVictim: ledByVictim.has(w.region),
          tries: w.tries,
        })),
      };
      log(`kill: ${JSON.stringify(kill)}`);
    }

    // ---- 2. admin splits, one at a time --------------------------------------------------------
    let splits: unknown = null;
    if (PHASES.has("splits")) {
      const splitMs: number[] = [];
      for (let i = 0; i < SPLITS; i++) {
        const k = key(Math.floor(((i + 0.5) * KEYSPACE) / SPLITS) + 7);
        const r = (await regions()).find((x) => inRegion(k, x))!;
        const t0 = performance.now();
        const res = await postJson(`${api}/operators`, {
          name: "split-region",
          region_id: r.id,
          keys: [k],
        });
        if (res.status !== 201) throw new Error(`split at ${k}: ${JSON.stringify(res.json)}`);
        for (;;) {
          const got = await getJson<Region>(`${api}/region/key/${k}`).catch(() => undefined);
          if (got && got.start_key === k && got.leader) break;
          if (performance.now() - t0 > 30_000) {
            throw new Error(`split at ${k}: no led region in 30 s`);
          }
          await sleep(10);
        }
        splitMs.push(performance.now() - t0);
      }
      splits = summary(splitMs);
      log(
        `splits: ${
          JSON.stringify(splits)
        } (from the request to the new region led at the scheduler)`,
      );
    }

    // ---- 3. multi-key splits ------------------------------------------------------------------
    const multi: { keys: number; regionsMade: number; status: string }[] = [];
    if (PHASES.has("multi")) {
      const used = new Set<number>();
      for (const count of [3, 3, 10]) {
        const all = await regions();
        const r = all.find((x) => x.start_key && x.end_key && !used.has(x.id))!;
        used.add(r.id);
        // Keys just above the region's start key, so they fall inside it.
        const keys = Array.from(
          { length: count },
          (_, i) => `${r.start_key}-${String(i + 1).padStart(2, "0")}`,
        );
        const res = await postJson<{ created_at: string }>(`${api}/operators`, {
          name: "split-region",
          region_id: r.id,
          keys,
        });
        if (res.status !== 201) throw new Error(`multi-split: ${JSON.stringify(res.json)}`);
        let made = 0;
        let status = "";
        const t0 = Date.now();
        while (Date.now() - t0 < 30_000) {
          const rs = await regions();
          made = rs.filter((x) => x.start_key === r.start_key || keys.includes(x.start_key ?? ""))
            .filter((x) => x.leader).length;
          const op = await getJson<OperatorJson>(`${api}/operators/${r.id}`).catch(() => undefined);
          status = op?.status ?? "";
          if (made === count + 1 && status === "Finished") break;
          await sleep(50);
        }
        multi.push({ keys: count, regionsMade: made, status });
      }
      log(`multi-key splits: ${JSON.stringify(multi)}`);
    }

    // ---- 4. admin splits at scale ---------------------------------------------------------------
    const scale = PHASES.has("scale") ? await scaleSplits(c, api) : null;

    // ---- the end: every region led by a leader with 3 healthy voters -------------------------
    // None pending or down, none on the killed store, no learner left over and no operator
    // running; operators the phases left running get up to 60 s.
    const endStart = Date.now();
    let unhealthy: { id: number; peers: string[]; leader: number | null }[] = [];
    let endRegions = 0;
    let endRunning = 0;
    for (;;) {
      const rs = await regions();
      endRunning = (await getJson<{ count: number }>(`${api}/operators`)).count;
      endRegions = rs.length;
      unhealthy = rs.filter((r) =>
        !(r.leader && r.peers.length === 3 && r.pending_peers.length === 0 &&
          r.down_peers.length === 0 &&
          r.peers.every((p) => p.role === "Voter" && p.store_id !== victimId))
      ).map((r) => ({
        id: r.id,
        peers: r.peers.map((p) => `${p.id}@${p.store_id}${p.role === "Voter" ? "" : `:${p.role}`}`),
        leader: r.leader?.store_id ?? null,
      }));
      if (unhealthy.length === 0 && endRunning === 0) break;
      if (Date.now() - endStart > 60_000) break;
      await sleep(200);
    }
    const end = {
      regions: endRegions,
      healthy: unhealthy.length === 0,
      healthyAfterMs: unhealthy.length === 0 ? Date.now() - endStart : null,
      operatorsRunning: endRunning,
      unhealthy,
    };
    log(`end: ${JSON.stringify(end)}`);

    const report = {
      stores: STORES,
      regions: REGIONS,
      writers: WRITERS,
      schedulerFlags,
      balanceOperatorsRunningAtSetupEnd: stillRunning,
      kill,
      splits,
      multi,
      scale,
      end,
    };
    console.log(values.json ? JSON.stringify(report) : JSON.stringify(report, null, 2));
    await c.shutdown().catch(() => undefined);
  } catch (e) {
    console.error(c.output().split("\n").slice(-60).join("\n"));
    throw e;
  } finally {
    await c.close();
  }
}

/** The highest region or peer ID in `regions`. */
function highestId(regions: readonly Region[]): number {
  return Math.max(0, ...regions.flatMap((r) => [r.id, ...r.peers.map((p) => p.id)]));
}

/** A scheduler gauge or counter without labels from its `/metrics`. */
async function schedulerMetric(c: ProcessCluster, name: string): Promise<number> {
  const res = await fetch(`${c.schedulerUrl}/metrics`, {
    headers: adminHeaders,
    signal: AbortSignal.timeout(5_000),
  });
  const text = await res.text();
  const m = new RegExp(`^mrkv_scheduler_${name} (\\S+)$`, "m").exec(text);
  if (!m) throw new Error(`/metrics has no mrkv_scheduler_${name}`);
  return Number(m[1]);
}

/**
 * Phase 4: `--scale-clients` clients split at `--scale-splits` keys (spread over the key space,
 * in a seeded shuffled order), one at a time each: find the key's region, ask for a split there
 * (again while another client's split of that region runs), then follow the operator to its
 * end. No new split starts after `--scale-time`; the ones under way get 60 s more.
 */
async function scaleSplits(c: ProcessCluster, api: string) {
  const count = Number(values["scale-splits"]);
  const clients = Number(values["scale-clients"]);
  const budgetMs = parseDuration(values["scale-time"]);
  let seed = 12;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const keys = Array.from(
    { length: count },
    (_, i) => `${key(Math.floor((i * KEYSPACE) / count))}.s${i}`,
  );
  for (let i = keys.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [keys[i], keys[j]] = [keys[j]!, keys[i]!];
  }
  // Store log lines while the phase runs, by message with its numbers blanked out.
  const logLines = new Map<string, number>();
  for (let i = 0; i < STORES; i++) {
    const proc = c.proc(i);
    if (!proc) continue;
    proc.onLine = (line) => {
      const k = line.replace(/\d+/g, "N").slice(0, 160);
      logLines.set(k, (logLines.get(k) ?? 0) + 1);
    };
  }
  const before = (await getJson<{ regions: Region[] }>(`${api}/regions`)).regions;
  const regionsBefore = before.length;
  const idsBefore = await schedulerMetric(c, "id_high_water_mark");
  const staleBefore = await schedulerMetric(c, "stale_region_heartbeats_total")
    .catch(() => NaN);
  const started = Date.now();
  const outcome: Record<string, number> = {};
  const splitMs: number[] = [];
  let busyRetries = 0;
  let next = 0;
  // The first few operators that did not finish, with why.
  const unfinished: { region: number; status: string; reason: string; afterMs: number }[] = [];
  const ended = (op: OperatorJson): string => {
    if (op.status !== "Finished" && unfinished.length < 8) {
      unfinished.push({
        region: op.region_id,
        status: op.status,
        reason: op.reason.slice(0, 200),
        afterMs: op.ended_at ? Date.parse(op.ended_at) - Date.parse(op.created_at) : -1,
      });
    }
    return op.status;
  };
  const follow = async (regionId: number, createdAt: string): Promise<string> => {
    const deadline = started + budgetMs + 60_000;
    while (Date.now() < deadline) {
      const op = await getJson<OperatorJson>(`${api}/operators/${regionId}`).catch(() => undefined);
      if (op && op.created_at === createdAt) {
        if (op.status !== "Created" && op.status !== "Running") return ended(op);
      } else if (op) {
        // A newer operator on the region: ours ended; its record says how.
        const { operators } = await getJson<{ operators: OperatorJson[] }>(
          `${api}/operators/records`,
        );
        const mine = operators.find((o) => o.region_id === regionId && o.created_at === createdAt);
        return mine ? ended(mine) : "ended (record gone)";
      }
      await sleep(50);
    }
    return "still running at the deadline";
  };
  await Promise.all(Array.from({ length: clients }, async () => {
    while (next < keys.length && Date.now() - started < budgetMs) {
      const k = keys[next++]!;
      const t0 = performance.now();
      let status = "not started in time";
      while (Date.now() - started < budgetMs) {
        const r = await getJson<Region>(`${api}/region/key/${k}`).catch(() => undefined);
        if (!r) {
          await sleep(20);
          continue;
        }
        type Answer = { created_at?: string; error?: { message: string } };
        const res = await postJson<Answer>(`${api}/operators`, {
          name: "split-region",
          region_id: r.id,
          keys: [k],
        }).catch((e): { status: number; json: Answer } => ({
          status: 0,
          json: { error: { message: (e as Error).message } },
        }));
        if (res.status === 201) {
          status = await follow(r.id, res.json.created_at!);
          break;
        }
        const why = res.json.error?.message ?? "";
        if (!/already has an admin operator|not strictly inside/.test(why)) {
          status = `refused: ${why.replace(/\d+/g, "N").slice(0, 120)}`;
          break;
        }
        busyRetries++; // another client's split of this region runs, or r was a moment old
        await sleep(20);
      }
      outcome[status] = (outcome[status] ?? 0) + 1;
      if (status === "Finished") splitMs.push(performance.now() - t0);
    }
  }));
  const seconds = (Date.now() - started) / 1000;
  const finished = outcome.Finished ?? 0;
  // Every finished split adds a region; wait (bounded) until the scheduler shows them led.
  const want = regionsBefore + finished;
  let regions: Region[] = [];
  for (const until = Date.now() + 60_000; Date.now() < until;) {
    regions = (await getJson<{ regions: Region[] }>(`${api}/regions`)).regions;
    if (regions.length >= want && regions.every((r) => r.leader)) break;
    await sleep(500);
  }
  const idsAfter = await schedulerMetric(c, "id_high_water_mark");
  const result = {
    requested: count,
    clients,
    seconds: Math.round(seconds * 10) / 10,
    outcome,
    splitMs: summary(splitMs),
    unfinished,
    busyRetries,
    regionsBefore,
    regionsAfter: regions.length,
    regionsWithoutLeader: regions.filter((r) => !r.leader).length,
    idHighWaterMarkBefore: idsBefore,
    idHighWaterMarkAfter: idsAfter,
    // The mark is persisted in steps of 1,000; the IDs in use show what each split took.
    highestIdBefore: highestId(before),
    highestIdAfter: highestId(regions),
    idsPerNewRegion: regions.length > regionsBefore
      ? Math.round(
        ((highestId(regions) - highestId(before)) / (regions.length - regionsBefore)) * 100,
      ) / 100
      : null,
    staleRegionHeartbeats: (await schedulerMetric(c, "stale_region_heartbeats_total")
      .catch(() => NaN)) - staleBefore,
    storeLogLines: [...logLines.values()].reduce((a, b) => a + b, 0),
    commonestStoreLogLines: [...logLines].sort((a, b) => b[1] - a[1]).slice(0, 5)
      .map(([line, n]) => ({ n, line })),
  };
  for (let i = 0; i < STORES; i++) {
    const proc = c.proc(i);
    if (proc) proc.onLine = undefined;
  }
  log(`scale splits: ${JSON.stringify(result)}`);
  return result;
}

if (import.meta.main) await main();
