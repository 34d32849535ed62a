/**
 * Load-based split and hot-region scheduling, measured on a local cluster of real processes
 * (the numbers in docs/scheduler.md, "Hot-region drill"): a scheduler and N stores start with
 * one region; writers then send most of their writes to 1% of the key space. The drill reports
 * when the region holding the hot range split (and where), when the hot regions' leaders were
 * on two stores and on every store, which operators moved them, the write rate and latency
 * before and after, and at the end reads back every key written (each writer owns its keys, so
 * the last acknowledged value, or one tried after it with an unknown outcome, must be there).
 *
 * ```sh
 * deno run -A tools/hot_drill.ts                               # 3 stores, 60 s of load
 * deno run -A tools/hot_drill.ts --stores 4 --writers 32 --duration 90s --qps-threshold 100
 * deno run -A tools/hot_drill.ts --load-split false            # the same load without it
 * ```
 *
 * Stores run with the end-to-end tests' fast timing (50 ms Raft ticks, 200 ms heartbeats).
 *
 * @module
 */
import { intFlag, parseToolArgs, usageExit } from "./_cli.ts";
import { parseDuration } from "../config/config.ts";
import { ProcessCluster } from "../tests/process_cluster.ts";

const USAGE = `Usage: deno run -A tools/hot_drill.ts [--stores 3] [--keys 10000] [--hot-share 0.9]
       [--writers 32] [--read-share 0] [--duration 60s] [--qps-threshold N] [--byte-threshold SIZE]
       [--window 10s] [--load-split true|false] [--balance-leader true|false] [--json]

Writes concentrated on 1% of a key space, on real processes: when the hot region splits by
load and when the hot-region scheduler has spread its leaders over the stores
(docs/scheduler.md, "Hot-region drill"). --qps-threshold, --byte-threshold and --window are
passed to the stores as --split-qps-threshold, --split-byte-threshold and
--split-detect-window (their defaults otherwise).`;

const NAME = "hot_drill";
const { values } = parseToolArgs({
  name: NAME,
  usage: USAGE,
  options: {
    stores: { type: "string", default: "3" },
    keys: { type: "string", default: "10000" },
    "hot-share": { type: "string", default: "0.9" },
    "read-share": { type: "string", default: "0" },
    writers: { type: "string", default: "32" },
    duration: { type: "string", default: "60s" },
    "qps-threshold": { type: "string" },
    "byte-threshold": { type: "string" },
    window: { type: "string" },
    "load-split": { type: "string", default: "true" },
    "balance-leader": { type: "string", default: "true" },
    json: { type: "boolean", default: false },
  },
});
const STORES = intFlag(NAME, "--stores", values.stores, 1, 9);
const KEYS = intFlag(NAME, "--keys", values.keys, 100, 10_000_000);
const WRITERS = intFlag(NAME, "--writers", values.writers, 1, 1024);
const HOT_SHARE = Number(values["hot-share"]);
if (!(HOT_SHARE >= 0 && HOT_SHARE <= 1)) {
  usageExit(NAME, `--hot-share must be from 0 to 1, got "${values["hot-share"]}"`);
}
const READ_SHARE = Number(values["read-share"]);
if (!(READ_SHARE >= 0 && READ_SHARE <= 1)) {
  usageExit(NAME, `--read-share must be from 0 to 1, got "${values["read-share"]}"`);
}
const bool = (flag: string, v: string) => {
  if (v !== "true" && v !== "false") usageExit(NAME, `${flag} must be true or false, got "${v}"`);
  return v === "true";
};
const LOAD_SPLIT = bool("--load-split", values["load-split"]);
const BALANCE_LEADER = bool("--balance-leader", values["balance-leader"]);
let DURATION_MS = 0;
try {
  DURATION_MS = parseDuration(values.duration);
} catch (e) {
  usageExit(NAME, `--duration: ${(e as Error).message}`);
}

const log = (msg: string) => console.error(`drill: ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DIGITS = String(KEYS - 1).length;
const key = (n: number) => `key-${String(n).padStart(DIGITS, "0")}`;
/** The hot range: 1% of the keys, in the middle of the key space. */
const HOT_FIRST = Math.floor(KEYS / 2);
const HOT_COUNT = Math.max(1, Math.floor(KEYS / 100));
const HOT_START = key(HOT_FIRST);
const HOT_END = key(HOT_FIRST + HOT_COUNT);

/** A region as `/regions` shows it (drill keys are ASCII, so `start_key` is text). */
interface Region {
  readonly id: number;
  readonly start_key?: string;
  readonly end_key?: string;
  readonly leader: { store_id: number } | null;
}

/** An operator as `/operators` and `/operators/records` show it. */
interface OperatorJson {
  readonly region_id: number;
  readonly desc: string;
  readonly status: string;
  readonly created_at: string;
  readonly steps: readonly { type: string; peer?: { store_id: number } }[];
}

/** Whether region `r` overlaps the hot range. */
function overlapsHot(r: Region): boolean {
  const start = r.start_key ?? "";
  const end = r.end_key ?? "";
  return (end === "" || end > HOT_START) && start < HOT_END;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function summary(ms: number[], seconds: number) {
  const s = [...ms].sort((a, b) => a - b);
  return {
    count: s.length,
    per_second: Math.round(s.length / Math.max(0.001, seconds)),
    p50_ms: Math.round(percentile(s, 50)),
    p99_ms: Math.round(percentile(s, 99)),
  };
}

async function main(): Promise<void> {
  const storeFlags: string[] = [`--load-split=${LOAD_SPLIT}`];
  if (values["qps-threshold"]) storeFlags.push("--split-qps-threshold", values["qps-threshold"]);
  if (values["byte-threshold"]) {
    storeFlags.push("--split-byte-threshold", values["byte-threshold"]);
  }
  if (values.window) storeFlags.push("--split-detect-window", values.window);
  log(`starting a scheduler and ${STORES} stores (${storeFlags.join(" ")})`);
  const c = await ProcessCluster.start({ stores: STORES, storeFlags });
  const adminHeaders = c.adminHeaders();
  const clientHeaders = c.clientHeaders();
  const api = `${c.schedulerUrl}/pd/api/v1`;
  const getJson = async <T>(path: string): Promise<T> => {
    const res = await c.fetch(`${api}${path}`, {
      headers: adminHeaders,
      signal: AbortSignal.timeout(5_000),
    });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return await res.json() as T;
  };
  try {
    await c.waitRegionVoters(1, Math.min(3, STORES), 60_000);
    if (!BALANCE_LEADER) {
      await c.fetch(`${api}/schedulers/balance-leader-scheduler`, {
        method: "DELETE",
        headers: adminHeaders,
      }).then((r) => r.body?.cancel());
    }
    const regions = async () => (await getJson<{ regions: Region[] }>("/regions")).regions;

    // ---- the load -----------------------------------------------------------------------------
    const state = new Map<string, { acked: string | null; tried: string[] }>();
    const writes: { at: number; ms: number }[] = [];
    const reads: { at: number; ms: number }[] = [];
    let failures = 0;
    let stop = false;
    const started = Date.now();
    log(
      `${WRITERS} writers: ${Math.round(HOT_SHARE * 100)}% of writes to ${HOT_START}..${
        key(HOT_FIRST + HOT_COUNT - 1)
      } (1% of ${KEYS} keys), the rest anywhere, ${
        Math.round(READ_SHARE * 100)
      }% of them reads, for ${DURATION_MS / 1000} s`,
    );
    const writers = Array.from({ length: WRITERS }, async (_, w) => {
      let slot = w % STORES;
      for (let i = 0; !stop; i++) {
        const n = Math.random() < HOT_SHARE
          ? HOT_FIRST + Math.floor(Math.random() * HOT_COUNT)
          : Math.floor(Math.random() * KEYS);
        // Each writer owns its keys: what must read back is known exactly.
        const k = `${key(n)}/w${w}`;
        if (Math.random() < READ_SHARE) {
          const t0 = performance.now();
          try {
            const res = await c.fetch(`${c.storeUrl(slot)}/kv/${encodeURIComponent(k)}`, {
              headers: clientHeaders,
              signal: AbortSignal.timeout(10_000),
            });
            await res.body?.cancel();
            if (res.status === 200 || res.status === 404) {
              reads.push({ at: Date.now(), ms: performance.now() - t0 });
              continue;
            }
          } catch {
            // A failed read changes nothing; try another store.
          }
          failures++;
          slot = (slot + 1) % STORES;
          await sleep(20);
          continue;
        }
        const v = `v${i}`;
        const s = state.get(k) ?? { acked: null, tried: [] };
        state.set(k, s);
        s.tried.push(v);
        const t0 = performance.now();
        try {
          const res = await c.fetch(`${c.storeUrl(slot)}/kv/${encodeURIComponent(k)}`, {
            method: "PUT",
            headers: clientHeaders,
            body: v,
            signal: AbortSignal.timeout(10_000),
          });
          await res.body?.cancel();
          if (res.status === 204) {
            s.acked = v;
            s.tried = [];
            writes.push({ at: Date.now(), ms: performance.now() - t0 });
            continue;
          }
        } catch {
          // Unknown outcome; try another store.
        }
        failures++;
        slot = (slot + 1) % STORES;
        await sleep(20);
      }
    });

    // ---- watching -----------------------------------------------------------------------------
    let splitAt = 0;
    let splitKeys: string[] = [];
    let twoStoresAt = 0;
    let allStoresAt = 0;
    let maxHotRegions = 0;
    const timeline: string[] = [];
    let lastShape = "";
    /** Each hot region's leader stores in the order seen (repeats collapsed). */
    const leaderHistory = new Map<number, number[]>();
    while (Date.now() - started < DURATION_MS) {
      await sleep(250);
      const hot = (await regions()).filter(overlapsHot);
      const t = Date.now() - started;
      maxHotRegions = Math.max(maxHotRegions, hot.length);
      if (!splitAt && hot.length >= 2) {
        splitAt = t;
        splitKeys = hot.map((r) => r.start_key ?? "").filter((k) => k > HOT_START);
        log(`the hot range is in ${hot.length} regions after ${t} ms (split at ${splitKeys})`);
      }
      for (const r of hot) {
        if (!r.leader) continue;
        const seen = leaderHistory.get(r.id) ?? [];
        if (seen.at(-1) !== r.leader.store_id) seen.push(r.leader.store_id);
        leaderHistory.set(r.id, seen);
      }
      const leaders = new Set(hot.map((r) => r.leader?.store_id).filter((x) => x !== undefined));
      if (!twoStoresAt && leaders.size >= 2) {
        twoStoresAt = t;
        log(`hot leaders on ${leaders.size} stores after ${t} ms`);
      }
      if (!allStoresAt && leaders.size >= STORES) {
        allStoresAt = t;
        log(`hot leaders on every store after ${t} ms`);
      }
      const shape = `${hot.length} regions, leaders on stores ${
        hot.map((r) => r.leader?.store_id ?? "?").join(",")
      }`;
      if (shape !== lastShape) timeline.push(`${(t / 1000).toFixed(1)} s: ${shape}`);
      lastShape = shape;
    }
    const hotRead = await getJson<
      { as_leader: Record<string, { total_flow_bytes: number; regions_count: number }> }
    >("/hotspot/regions/read");
    const hotWrite = await getJson<
      { as_leader: Record<string, { total_flow_bytes: number; regions_count: number }> }
    >("/hotspot/regions/write");
    const storesFlow = await getJson<Record<string, Record<string, number>>>("/hotspot/stores");
    stop = true;
    await Promise.all(writers);
    const ended = Date.now();

    // ---- what moved them ----------------------------------------------------------------------
    const ops = [
      ...(await getJson<{ operators: OperatorJson[] }>("/operators/records")).operators,
      ...(await getJson<{ operators: OperatorJson[] }>("/operators")).operators,
    ].filter((op) => Date.parse(op.created_at) >= started);
    const byDesc: Record<string, number> = {};
    for (const op of ops) {
      byDesc[`${op.desc}:${op.status}`] = (byDesc[`${op.desc}:${op.status}`] ?? 0) + 1;
    }
    // A hot region whose leadership came back to a store it had left: a ping-pong (or an
    // election).
    let movedBack = 0;
    for (const stores of leaderHistory.values()) {
      if (stores.some((s, i) => stores.indexOf(s) < i)) movedBack++;
    }

    // ---- every acknowledged write reads back ---------------------------------------------------
    let checked = 0;
    let lost = 0;
    const lostKeys: string[] = [];
    for (const [k, s] of state) {
      let got: string | null = null;
      for (let attempt = 0;; attempt++) {
        try {
          const res = await c.fetch(`${c.storeUrl(checked % STORES)}/kv/${encodeURIComponent(k)}`, {
            headers: clientHeaders,
            signal: AbortSignal.timeout(10_000),
          });
          if (res.status === 200) got = await res.text();
          else if (res.status === 404) await res.body?.cancel();
          else throw new Error(`${res.status} ${await res.text()}`);
          break;
        } catch (e) {
          if (attempt >= 20) throw new Error(`reading ${k}: ${(e as Error).message}`);
          await sleep(100);
        }
      }
      checked++;
      if (got !== s.acked && !(got !== null && s.tried.includes(got))) {
        lost++;
        if (lostKeys.length < 10) lostKeys.push(`${k}: read ${got}, acknowledged ${s.acked}`);
      }
    }

    const phase = (ops: { at: number; ms: number }[], from: number, to: number) =>
      summary(
        ops.filter((x) => x.at >= started + from && x.at < started + to).map((x) => x.ms),
        (to - from) / 1000,
      );
    const spreadAt = allStoresAt || twoStoresAt;
    const report = {
      stores: STORES,
      writers: WRITERS,
      keys: KEYS,
      hot_range: [HOT_START, HOT_END],
      hot_share: HOT_SHARE,
      read_share: READ_SHARE,
      load_split: LOAD_SPLIT,
      store_flags: storeFlags,
      duration_ms: ended - started,
      split_ms: splitAt || null,
      split_keys: splitKeys,
      hot_regions_max: maxHotRegions,
      leaders_on_two_stores_ms: twoStoresAt || null,
      leaders_on_every_store_ms: allStoresAt || null,
      operators: byDesc,
      hot_regions_leader_returned: movedBack,
      hot_write_leader_bytes_per_store: Object.fromEntries(
        Object.entries(hotWrite.as_leader).map(([s, v]) => [s, v.total_flow_bytes]),
      ),
      hotspot_stores: storesFlow,
      hot_read_leader_bytes_per_store: Object.fromEntries(
        Object.entries(hotRead.as_leader).map(([s, v]) => [s, v.total_flow_bytes]),
      ),
      writes_before_split: phase(writes, 0, splitAt || DURATION_MS),
      writes_after_spread: spreadAt ? phase(writes, spreadAt, ended - started) : null,
      reads_before_split: READ_SHARE ? phase(reads, 0, splitAt || DURATION_MS) : null,
      reads_after_spread: READ_SHARE && spreadAt ? phase(reads, spreadAt, ended - started) : null,
      write_failures_retried: failures,
      keys_checked: checked,
      keys_lost: lost,
      lost_examples: lostKeys,
      timeline,
    };
    console.log(values.json ? JSON.stringify(report) : JSON.stringify(report, null, 2));
    if (lost > 0) {
      log(`${lost} keys did not read back`);
      Deno.exitCode = 1;
    }
  } finally {
    await c.close();
  }
}

await main();
