/**
 * The scale benchmark: a local cluster of real processes (scheduler + `--stores` stores, default
 * timings) grown to `--regions` regions with admin split operators, then measured idle.
 *
 * ```sh
 * deno task bench:scale --regions 10000                # temp dir, removed at the end
 * deno task bench:scale --regions 10000 --dir /tmp/s   # kept; a second run resumes from it
 * deno task bench:scale --regions 1000 --no-hibernate  # regions never sleep, for comparison
 * deno task bench:scale --regions 1000 --code /tmp/old # the processes of another checkout
 * ```
 *
 * Reports: time to create the regions (`--create-for` stops early and measures what was made);
 * once the cluster has settled (no operator running, the regions asleep), for `--idle` seconds,
 * each store's CPU (share of one core) and resident memory, and the cluster's Raft message,
 * liveness ping and region heartbeat rates; then the latency of `--cold-writes` writes and as many
 * reads, each to a different sleeping region (through its leader's store, and through another
 * store, which forwards), and of `--transfers` admin transfer-leaders (posted until the scheduler
 * reports them finished). With `--code`, the processes run from another checkout (an older
 * commit, to compare); a build without hibernating regions is measured the same way, its regions
 * counted idle rather than asleep. The load average is printed beside every figure: the machine
 * may be shared. `--json FILE` saves everything.
 *
 * @module
 */
import { parseDuration } from "../config/config.ts";
import { pollUntil, ProcessCluster } from "../tests/process_cluster.ts";
import { boundaryKey, quantile, splitKeys } from "./scale/plan.ts";
import { cpuSeconds, loadAverage, metricValue, rssBytes } from "./scale/probe.ts";
import { parseToolArgs } from "./_cli.ts";

const USAGE = `usage: deno task bench:scale [--regions N] [--stores N] [--dir DIR] [--idle 30s]
       [--cold-writes N] [--transfers N] [--no-hibernate] [--code DIR] [--create-for 10m]
       [--json FILE]`;

function fail(message: string): never {
  console.error(`bench_scale: ${message}\n${USAGE}`);
  Deno.exit(2);
}

const { values } = parseToolArgs({
  name: "bench_scale",
  usage: USAGE,
  options: {
    regions: { type: "string", default: "1000" },
    stores: { type: "string", default: "3" },
    dir: { type: "string" },
    idle: { type: "string", default: "30s" },
    "settle-timeout": { type: "string", default: "10m" },
    "create-for": { type: "string" },
    "cold-writes": { type: "string", default: "30" },
    transfers: { type: "string", default: "30" },
    "no-hibernate": { type: "boolean", default: false },
    code: { type: "string" },
    json: { type: "string" },
  },
});
const whole = (flag: string, min: number) => {
  const n = Number(values[flag as keyof typeof values]);
  if (!Number.isSafeInteger(n) || n < min) fail(`--${flag} must be a whole number ≥ ${min}`);
  return n;
};
const duration = (flag: string) => {
  try {
    return parseDuration(String(values[flag as keyof typeof values]));
  } catch (e) {
    fail(`--${flag}: ${(e as Error).message}`);
  }
};
const N = whole("regions", 1);
const STORES = whole("stores", 1);
const IDLE_MS = duration("idle");
const SETTLE_MS = duration("settle-timeout");
/** Stop splitting after this long and measure the regions made so far. */
const CREATE_MS = values["create-for"] === undefined ? Infinity : duration("create-for");
const COLD_WRITES = whole("cold-writes", 0);
const TRANSFERS = whole("transfers", 0);
/** Whether regions may sleep: false with `--no-hibernate`, or once a store reports no hibernation. */
let HIBERNATE = !values["no-hibernate"];

interface RegionJson {
  id: number;
  start_key?: string;
  end_key?: string;
  leader: { id: number; store_id: number } | null;
  peers: { id: number; store_id: number; role: string }[];
}

/** Most split operators running at once. */
const MAX_SPLITS_IN_FLIGHT = 64;

const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
const fmt = (x: number, digits = 1) => Number.isFinite(x) ? x.toFixed(digits) : "-";

const c = await ProcessCluster.start({
  stores: STORES,
  fast: false,
  dir: values.dir,
  code: values.code,
  startTimeoutMs: 120_000,
  storeFlags: HIBERNATE ? [] : ["--hibernate-regions=false"],
});
const report: Record<string, unknown> = {
  regions: N,
  stores: STORES,
  hibernate: HIBERNATE,
  code: values.code ?? ".",
};
try {
  await run();
} catch (e) {
  console.error(c.output().split("\n").slice(-60).join("\n"));
  console.error(`bench_scale: ${(e as Error).stack ?? e}`);
  Deno.exitCode = 1;
} finally {
  if (values.dir) {
    log(`stopping (data kept in ${values.dir})`);
    await c.shutdown().catch(() => {});
  }
  await c.close();
}
if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(report, null, 2) + "\n");

async function regions(): Promise<RegionJson[]> {
  const [status, body] = await c.adminApi<{ regions: RegionJson[] }>("GET", "/regions");
  if (status !== 200) throw new Error(`GET /regions answered ${status}`);
  return body.regions;
}

async function storeGet(i: number, path: string): Promise<string>;
async function storeGet(i: number, path: string, absent: "may 404"): Promise<string | undefined>;
async function storeGet(i: number, path: string, absent?: string): Promise<string | undefined> {
  const res = await fetch(`${c.storeUrl(i)}${path}`, {
    headers: c.adminHeaders(),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (res.status === 404 && absent) return undefined;
  if (res.status !== 200) throw new Error(`store slot ${i} ${path} answered ${res.status}`);
  return text;
}

async function run(): Promise<void> {
  await c.waitRegionVoters(1, Math.min(3, STORES), 60_000);
  log(`cluster up in ${c.dir}; growing to ${N} regions (load ${loadAverage()})`);
  const created = await createRegions();
  report.create = created;
  await settle();
  await measureIdle();
  if (COLD_WRITES > 0) await coldWrites();
  if (TRANSFERS > 0) await transfers();
}

/**
 * Splits until the scheduler knows `N` regions: every region with boundaries still inside gets a
 * split operator as soon as it has a leader and no admin operator running, up to
 * {@link MAX_SPLITS_IN_FLIGHT} at once. Returns the time taken and the rate.
 */
async function createRegions() {
  const t0 = performance.now();
  const start = (await regions()).length;
  let known = start;
  let lastLog = 0;
  let posted = 0;
  while (known < N && performance.now() - t0 < CREATE_MS) {
    const [all, [, ops]] = await Promise.all([
      regions(),
      c.adminApi<{ operators: { kind: string; region_id: number }[] }>("GET", "/operators"),
    ]);
    known = all.length;
    const busy = new Set(ops.operators.filter((o) => o.kind === "admin").map((o) => o.region_id));
    const todo = all.flatMap((r) => {
      if (!r.leader || busy.has(r.id)) return [];
      const keys = splitKeys(r.start_key ?? "", r.end_key ?? "", N);
      return keys.length > 0 ? [{ id: r.id, keys }] : [];
    }).slice(0, Math.max(0, MAX_SPLITS_IN_FLIGHT - busy.size));
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < todo.length) {
        const t = todo[next++]!;
        const [status] = await c.adminApi("POST", "/operators", {
          name: "split-region",
          region_id: t.id,
          keys: t.keys,
        });
        if (status === 201) posted++;
      }
    }));
    const s = (performance.now() - t0) / 1000;
    if (s - lastLog >= 10 || known >= N) {
      lastLog = s;
      log(
        `${known} regions after ${fmt(s)} s (${fmt((known - start) / s)}/s; ${posted} splits ` +
          `posted, ${busy.size} running; load ${loadAverage()})`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const seconds = (performance.now() - t0) / 1000;
  const made = known - start;
  const short = known < N ? ` (stopped by --create-for: ${known} of ${N})` : "";
  log(`created ${made} regions in ${fmt(seconds)} s (${fmt(made / seconds)}/s)${short}`);
  return { seconds, made, reached: known, perSecond: made / seconds, splitOperators: posted };
}

/** Per-store figures from `/metrics` and `/debug/hibernation`. */
async function storeMetrics(i: number) {
  const page = await storeGet(i, "/metrics");
  const text = await storeGet(i, "/debug/hibernation", "may 404");
  if (text === undefined && HIBERNATE) {
    log("the stores report no hibernation (an older build): regions are measured awake");
    HIBERNATE = false;
    report.hibernate = false;
  }
  const h = (text === undefined ? { stats: { wokenBy: {}, pokes: 0 } } : JSON.parse(text)) as {
    stats: { wokenBy: Record<string, number>; pokes: number };
  };
  return {
    wokenBy: h.stats.wokenBy,
    pokes: h.stats.pokes,
    regions: metricValue(page, "mrkv_store_regions"),
    leaders: metricValue(page, "mrkv_store_leaders"),
    asleep: metricValue(page, "mrkv_regions_asleep"),
    messages: metricValue(page, "mrkv_raft_messages_sent_total"),
    pings: metricValue(page, "mrkv_liveness_pings_total"),
    wakes: metricValue(page, "mrkv_region_wakes_total"),
  };
}

/**
 * Waits until every region has a leader, no operator runs, (with hibernation) nearly every region
 * sleeps, and none of it has changed for a poll interval.
 */
async function settle(): Promise<void> {
  const t0 = performance.now();
  let last = "";
  await pollUntil("the cluster to settle", async () => {
    const [, ops] = await c.adminApi<{ count: number }>("GET", "/operators");
    const ms = await Promise.all(Array.from({ length: STORES }, (_, i) => storeMetrics(i)));
    const line = `operators ${ops.count}; asleep ${ms.map((m) => `${m.asleep}/${m.regions}`)}; ` +
      `leaders ${ms.map((m) => m.leaders)}; woken by ${JSON.stringify(ms[0]!.wokenBy)}, ` +
      `pokes ${ms.map((m) => m.pokes)}`;
    // Settled: nothing changed over one poll interval (no region woke or slept, no leader
    // moved), no operator runs and, with hibernation, nearly every region sleeps.
    const still = line === last;
    if (!still) log(`settling: ${line}`);
    last = line;
    const asleep = ms.every((m) => m.asleep >= 0.99 * m.regions);
    // Every region led (a restarted cluster elects for a while).
    const led = ms.reduce((n, m) => n + m.leaders, 0) >= ms[0]!.regions;
    return still && led && ops.count === 0 && (!HIBERNATE || asleep) || undefined;
  }, { timeoutMs: SETTLE_MS, intervalMs: 2_000 }).catch((e) => {
    log(`not settled after ${fmt((performance.now() - t0) / 1000)} s: ${(e as Error).message}`);
  });
  report.settleSeconds = (performance.now() - t0) / 1000;
}

async function measureIdle(): Promise<void> {
  const pids = Array.from({ length: STORES }, (_, i) => c.proc(i)!.pid);
  const schedPid = c.scheduler.pid;
  const schedPage = async () => await (await fetch(`${c.schedulerUrl}/metrics`)).text();
  const m0 = await Promise.all(pids.map((_, i) => storeMetrics(i)));
  const s0 = await schedPage();
  const cpu0 = pids.map(cpuSeconds);
  const sched0 = cpuSeconds(schedPid);
  const load0 = loadAverage();
  const t0 = performance.now();
  const rssMax = pids.map(rssBytes);
  while (performance.now() - t0 < IDLE_MS) {
    await new Promise((r) => setTimeout(r, 1_000));
    pids.forEach((pid, i) => rssMax[i] = Math.max(rssMax[i]!, rssBytes(pid)));
  }
  const secs = (performance.now() - t0) / 1000;
  const cpu1 = pids.map(cpuSeconds);
  const sched1 = cpuSeconds(schedPid);
  const m1 = await Promise.all(pids.map((_, i) => storeMetrics(i)));
  const s1 = await schedPage();
  const rate = (a: number, b: number) => (b - a) / secs;
  const stores = pids.map((_, i) => ({
    slot: i,
    regions: m1[i]!.regions,
    leaders: m1[i]!.leaders,
    asleep: m1[i]!.asleep,
    cpuPercent: 100 * rate(cpu0[i]!, cpu1[i]!),
    rssMiB: rssBytes(pids[i]!) / 2 ** 20,
    rssMaxMiB: rssMax[i]! / 2 ** 20,
    messagesPerSecond: rate(m0[i]!.messages, m1[i]!.messages),
    pingsPerSecond: rate(m0[i]!.pings, m1[i]!.pings),
    wakesPerSecond: rate(m0[i]!.wakes, m1[i]!.wakes),
  }));
  const hb = (name: string) =>
    rate(metricValue(s0, `mrkv_scheduler_${name}`), metricValue(s1, `mrkv_scheduler_${name}`));
  const idle = {
    seconds: secs,
    load: [load0, loadAverage()],
    stores,
    schedulerCpuPercent: 100 * rate(sched0, sched1),
    regionHeartbeatsPerSecond: hb("region_heartbeats_total"),
    storeHeartbeatsPerSecond: hb("store_heartbeats_total"),
  };
  report.idle = idle;
  log(`idle for ${fmt(secs)} s (load ${idle.load.join(" → ")}):`);
  console.log(
    "  slot  regions  leaders  asleep   CPU %   RSS MiB  (max)   msgs/s  pings/s  wakes/s",
  );
  for (const s of stores) {
    console.log(
      `  ${String(s.slot).padStart(4)}  ${String(s.regions).padStart(7)}  ${
        String(s.leaders).padStart(7)
      }  ${String(s.asleep).padStart(6)}  ${fmt(s.cpuPercent).padStart(6)}  ${
        fmt(s.rssMiB, 0).padStart(8)
      }  ${fmt(s.rssMaxMiB, 0).padStart(5)}  ${fmt(s.messagesPerSecond).padStart(7)}  ${
        fmt(s.pingsPerSecond).padStart(7)
      }  ${fmt(s.wakesPerSecond, 2).padStart(7)}`,
    );
  }
  console.log(
    `  scheduler: CPU ${fmt(idle.schedulerCpuPercent)} %, region heartbeats ${
      fmt(idle.regionHeartbeatsPerSecond)
    }/s, store heartbeats ${fmt(idle.storeHeartbeatsPerSecond)}/s`,
  );
}

/**
 * Regions asleep on every store (any region, if regions do not sleep), with the slot of the store
 * that leads each.
 */
async function idleRegions(): Promise<{ id: number; start: string; leaderSlot: number }[]> {
  const views = await Promise.all(Array.from({ length: STORES }, async (_, i) => {
    const body = JSON.parse(await storeGet(i, "/debug/regions")) as {
      regions: { region: { id: number; start_key?: string }; role: string; asleep?: boolean }[];
    };
    return body.regions;
  }));
  const out = new Map<number, { id: number; start: string; leaderSlot: number; n: number }>();
  views.forEach((rs, slot) => {
    for (const r of rs) {
      if (HIBERNATE && !r.asleep) continue;
      const e = out.get(r.region.id) ??
        { id: r.region.id, start: r.region.start_key ?? "", leaderSlot: -1, n: 0 };
      e.n++;
      if (r.role === "Leader") e.leaderSlot = slot;
      out.set(r.region.id, e);
    }
  });
  return [...out.values()].filter((r) => r.n === Math.min(3, STORES) && r.leaderSlot >= 0);
}

function shuffle<T>(xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

/**
 * One write, then one read, to each of `--cold-writes` idle regions in turn (a fresh region for
 * every request), alternately through the leader's store and through another store.
 */
async function coldWrites(): Promise<void> {
  const idle = shuffle(await idleRegions());
  const writes = { leader: [] as number[], other: [] as number[] };
  const reads = { leader: [] as number[], other: [] as number[] };
  /** Requests that failed: "write 503 after 10012 ms", counted, not timed. */
  const failed: string[] = [];
  const load0 = loadAverage();
  const n = Math.min(COLD_WRITES, Math.floor(idle.length / 2));
  for (let k = 0; k < 2 * n; k++) {
    const r = idle[k]!;
    const write = k < n;
    const other = k % 2 === 1 && STORES > 1;
    const slot = other ? (r.leaderSlot + 1) % STORES : r.leaderSlot;
    const key = r.start === "" ? boundaryKey(0, N) : `${r.start}/cold`;
    const t0 = performance.now();
    const status = await fetch(`${c.storeUrl(slot)}/kv/${encodeURIComponent(key)}`, {
      method: write ? "PUT" : "GET",
      body: write ? "cold" : undefined,
      headers: c.clientHeaders(),
      signal: AbortSignal.timeout(15_000),
    }).then(async (res) => {
      await res.body?.cancel();
      return res.status;
    }, (e) => (e as Error).name);
    const ms = performance.now() - t0;
    const ok = write ? status === 204 : status === 200 || status === 404;
    if (ok) (write ? writes : reads)[other ? "other" : "leader"].push(ms);
    else failed.push(`${write ? "write" : "read"} ${status} after ${fmt(ms, 0)} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const summary = (xs: number[]) => ({
    count: xs.length,
    p50: quantile(xs, 0.5),
    p99: quantile(xs, 0.99),
    max: quantile(xs, 1),
  });
  report.coldWrites = {
    load: [load0, loadAverage()],
    idleRegions: idle.length,
    viaLeader: summary(writes.leader),
    viaOtherStore: summary(writes.other),
  };
  report.coldReads = { viaLeader: summary(reads.leader), viaOtherStore: summary(reads.other) };
  report.coldFailures = failed;
  const line = (what: string, xs: number[]) =>
    `  ${what}: ${xs.length}, p50 ${fmt(quantile(xs, 0.5))} ms, p99 ${
      fmt(quantile(xs, 0.99))
    } ms, max ${fmt(quantile(xs, 1))} ms`;
  log(
    `cold requests to ${
      HIBERNATE ? "sleeping" : "idle"
    } regions (${idle.length} of them; load ${loadAverage()}):`,
  );
  console.log(line("writes via the leader's store", writes.leader));
  console.log(line("writes via another store", writes.other));
  console.log(line("reads via the leader's store", reads.leader));
  console.log(line("reads via another store", reads.other));
  if (failed.length > 0) console.log(`  failed (${failed.length}): ${failed.join(", ")}`);
}

async function transfers(): Promise<void> {
  const all = shuffle((await regions()).filter((r) => r.leader));
  const times: number[] = [];
  const load0 = loadAverage();
  let raced = 0;
  for (let k = 0; k < all.length && times.length < TRANSFERS; k++) {
    // The region's leader as of now: the balancers may have moved it since the list was read.
    const [got, r] = await c.adminApi<RegionJson>("GET", `/region/id/${all[k]!.id}`);
    if (got !== 200 || !r.leader) continue;
    const to = r.peers.find((p) => p.store_id !== r.leader!.store_id && p.role === "Voter");
    if (!to) continue;
    const t0 = performance.now();
    const [status, body] = await c.adminApi("POST", "/operators", {
      name: "transfer-leader",
      region_id: r.id,
      to_store_id: to.store_id,
    });
    // Refused (a scheduler operator holds the region, or the leader moved in between): not a
    // transfer to time; counted, and each reason printed.
    if (status === 400 || status === 409) {
      raced++;
      log(`  transfer-leader of region ${r.id} refused: ${JSON.stringify(body)}`);
      continue;
    }
    if (status !== 201) throw new Error(`transfer-leader of ${r.id}: ${JSON.stringify(body)}`);
    await pollUntil(`the transfer of region ${r.id} to finish`, async () => {
      const [, op] = await c.adminApi<{ status: string; reason: string }>(
        "GET",
        `/operators/${r.id}`,
      );
      if (op.status === "Finished") return true;
      if (op.status !== "Created" && op.status !== "Running") {
        throw new Error(`transfer of region ${r.id} ended ${op.status}: ${op.reason}`);
      }
      return undefined;
    }, { timeoutMs: 30_000, intervalMs: 2 });
    times.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 100));
  }
  report.transfers = {
    load: [load0, loadAverage()],
    count: times.length,
    refused: raced,
    p50: quantile(times, 0.5),
    p99: quantile(times, 0.99),
    max: quantile(times, 1),
  };
  log(
    `admin transfer-leader (load ${loadAverage()}): ${times.length} transfers (${raced} refused), p50 ${
      fmt(quantile(times, 0.5))
    } ms, p99 ${fmt(quantile(times, 0.99))} ms, max ${fmt(quantile(times, 1))} ms`,
  );
}
