/**
 * One chaos run, start to end: place the servers (network namespaces, or 127.0.0.1 said out
 * loud), start the cluster, run the clients while the injector works through the fault
 * schedule, heal, run the final checks, tear everything down (also on error or Ctrl-C), then
 * check the history and write `history.json` and `report.json` in the run directory.
 *
 * @module
 */
import { seededRandom } from "../../raft/mod.ts";
import { pollUntil } from "../../tests/process_cluster.ts";
import { Admin } from "./admin.ts";
import type { ChaosOptions } from "./args.ts";
import { ChaosCluster, makeClusterSecret } from "./cluster.ts";
import { startEtcd } from "./etcd.ts";
import { PARTITION_KINDS } from "./faults.ts";
import { HistoryRecorder, historyToJson } from "./history.ts";
import { Http } from "./http.ts";
import { type FaultEvent, FaultInjector } from "./inject.ts";
import { LoopbackNet, type Net, NetnsNet, netnsUnavailable } from "./netns.ts";
import { EtcdRegister, MrkvRegister } from "./register.ts";
import {
  checkHistory,
  countOps,
  faultStats,
  longestGap,
  overall,
  type RunReport,
} from "./report.ts";
import { type FinalCheck, finalChecks, keyNames, runClients } from "./workload.ts";

/** How long the cluster has to serve everything again once faults are over. */
export const RECOVERY_TIMEOUT_MS = 30_000;

/** What a run reports as it goes, and how it can be stopped early. */
export interface RunHooks {
  readonly log: (line: string) => void;
  /** Aborting stops faults and clients early; teardown and the report still happen. */
  readonly signal?: AbortSignal;
  /** Headers every request carries (e.g. a credential). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** A run's result: the report, and the directory holding its files. */
export interface RunResult {
  readonly report: RunReport;
  readonly dir: string;
}

/** Runs one chaos run. Throws only when the cluster cannot be set up at all. */
export async function runChaos(opts: ChaosOptions, hooks: RunHooks): Promise<RunResult> {
  const { log } = hooks;
  const dir = opts.dir ?? await Deno.makeTempDir({ prefix: `mrkv-chaos-${opts.seed}-` });
  await Deno.mkdir(dir, { recursive: true });
  // mrkv's servers authenticate every request: one secret for the run, the admin credential on
  // every request the tool sends (etcd runs without authentication).
  const secret = opts.target === "mrkv" ? await makeClusterSecret(dir) : undefined;
  const http = new Http({ ...secret?.headers, ...hooks.headers });
  const warnings: string[] = [];
  const problems: string[] = [];
  let faults = [...opts.faults];
  if (opts.target === "etcd") {
    // etcd has no scheduler and no admin operators; the rest applies as it is.
    faults = faults.filter((k) =>
      !["isolate-scheduler", "transfer-leader", "split-region", "membership"].includes(k)
    );
  }

  const names = opts.target === "etcd" ? ["s1", "s2", "s3"] : ChaosCluster.serverNames(opts.stores);
  const why = opts.noNetns ? "--no-netns was given" : await netnsUnavailable();
  let net: Net;
  if (why) {
    if (opts.requireNetns) {
      throw new Error(
        `network namespaces are required (--require-netns or MRKV_CHAOS_REQUIRE_NETNS=1) but ${why}`,
      );
    }
    const dropped = faults.filter((k) => PARTITION_KINDS.includes(k));
    faults = faults.filter((k) => !PARTITION_KINDS.includes(k));
    const banner = `NO NETWORK NAMESPACES: ${why}. Falling back to 127.0.0.1 WITHOUT partitions` +
      (dropped.length ? ` (skipped: ${dropped.join(", ")})` : "");
    log(`chaos: ${"!".repeat(78)}\nchaos: ${banner}\nchaos: ${"!".repeat(78)}`);
    warnings.push(banner);
    net = new LoopbackNet(names);
  } else {
    net = await NetnsNet.create(names, log);
  }

  const t0 = { at: performance.now() };
  const now = () => performance.now() - t0.at;
  const recorder = new HistoryRecorder();
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  hooks.signal?.addEventListener("abort", onAbort, { once: true });
  let events: FaultEvent[] = [];
  let checks: FinalCheck[] = [];
  let workloadEnd = 0;
  let cluster: Awaited<ReturnType<typeof ChaosCluster.start>> | undefined;
  let etcd: Awaited<ReturnType<typeof startEtcd>> | undefined;
  try {
    log(`chaos: seed ${opts.seed}; ${net.summary}; files under ${dir}`);
    const stores = names.filter((n) => n !== "sched");
    if (opts.target === "etcd") {
      etcd = await startEtcd({ net, dir, names: stores, now });
    } else {
      cluster = await ChaosCluster.start({
        net,
        http,
        stores: opts.stores,
        dir,
        storeFlags: opts.storeFlags,
        secretFile: secret!.file,
        now,
      });
      await waitReplicated(new Admin(http, cluster.url("sched")), Math.min(opts.stores, 3));
    }
    const target = cluster ?? etcd!;
    log(`chaos: cluster up (${stores.map((s) => `${s}=${target.url(s)}`).join(" ")})`);

    const keys = keyNames(opts.keys);
    const workload = {
      clients: opts.clients,
      keys,
      stores,
      endpoint: (s: string) => target.url(s),
      readFraction: opts.readFraction,
      client: opts.target === "etcd" ? new EtcdRegister(http) : new MrkvRegister(http),
      recorder,
      seed: opts.seed,
      now,
    };
    t0.at = performance.now();
    const clientsDone = runClients(workload, stop.signal);
    const injector = new FaultInjector({
      cluster: target,
      net,
      ...(cluster ? { admin: new Admin(http, cluster.url("sched")) } : {}),
      http,
      rand: seededRandom(opts.seed),
      now,
      log,
      keys,
      watchLeaders: opts.target === "mrkv",
    });
    try {
      events = await injector.run({
        kinds: faults,
        leadInMs: opts.leadInMs,
        holdMs: opts.holdMs,
        quietMs: opts.quietMs,
        untilMs: opts.durationMs,
        ...(opts.rounds !== undefined ? { count: opts.rounds * faults.length } : {}),
      }, stop.signal);
      const left = opts.durationMs - now();
      if (
        left > 0 && opts.rounds === undefined && !stop.signal.aborted &&
        !events.some((e) => e.fatal)
      ) {
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          stop.signal.addEventListener("abort", () => (clearTimeout(t), r()), { once: true });
        });
      }
    } finally {
      await net.heal().catch(() => {});
      stop.abort();
      await clientsDone;
      workloadEnd = now();
    }
    if (!hooks.signal?.aborted) {
      log("chaos: workload over; final checks (each store: one write, then every key read)");
      checks = await finalChecks(workload, opts.clients, RECOVERY_TIMEOUT_MS);
    }
  } finally {
    hooks.signal?.removeEventListener("abort", onAbort);
    await cluster?.close();
    await etcd?.close();
    await net.close();
  }

  // ---- the verdict ----
  const ops = recorder.ops();
  const historyPath = `${dir}/history.json`;
  await Deno.writeTextFile(
    historyPath,
    historyToJson({ seed: opts.seed, target: opts.target, stores: opts.stores, events }, ops),
  );
  log(`chaos: checking ${ops.length} operations`);
  const { keys: verdicts, anomalies } = checkHistory(ops);
  const result = overall(verdicts);
  if (result === "anomaly") {
    problems.push(
      `not linearizable: ${
        verdicts.filter((k) => k.result === "anomaly").map((k) => k.key).join(", ")
      }`,
    );
  }
  const exits = [...(cluster?.unexpected ?? []), ...(etcd?.unexpected ?? [])];
  for (const x of exits) problems.push(`${x.name} exited on its own (code ${x.code})`);
  for (const e of events) {
    if (e.fatal) problems.push(`${e.kind}: ${e.error?.split("\n")[0]}`);
    else if (e.error) {
      warnings.push(`${e.kind} at ${Math.round(e.start)} ms: ${e.error.split("\n")[0]}`);
    }
  }
  for (const c of checks) {
    if (c.recoveredMs === null) {
      problems.push(`${c.store} did not recover within ${RECOVERY_TIMEOUT_MS / 1000}s`);
    }
  }
  if (hooks.signal?.aborted) problems.push("stopped early (interrupted)");
  const okTimes = ops.filter((o) => o.outcome === "ok" && o.invoke < workloadEnd).map((o) => o.end)
    .sort((a, b) => a - b);
  const writeTimes = ops.filter((o) =>
    o.outcome === "ok" && o.kind === "write" && o.invoke < workloadEnd
  )
    .map((o) => o.end).sort((a, b) => a - b);
  const verdict = problems.length > 0 ? "fail" : result === "unknown" ? "inconclusive" : "pass";
  const keepFiles = opts.keep || verdict !== "pass";
  const report: RunReport = {
    format: "mrkv-chaos-report/1",
    verdict,
    problems,
    warnings,
    config: {
      target: opts.target,
      seed: opts.seed,
      stores: opts.target === "etcd" ? 3 : opts.stores,
      clients: opts.clients,
      keys: opts.keys,
      readFraction: opts.readFraction,
      durationMs: opts.durationMs,
      faults,
      rounds: opts.rounds ?? null,
      holdMs: opts.holdMs,
      quietMs: opts.quietMs,
      net: net.summary,
      storeFlags: opts.storeFlags,
    },
    workloadMs: [0, Math.round(workloadEnd)],
    counts: countOps(ops),
    availability: {
      longestGap: longestGap(okTimes, 0, workloadEnd),
      longestWriteGap: longestGap(writeTimes, 0, workloadEnd),
    },
    faults: faultStats(events, ops),
    checker: { result, keys: verdicts },
    anomalies,
    unexpectedExits: exits,
    finalChecks: checks,
    files: {
      history: historyPath,
      report: `${dir}/report.json`,
      ...(keepFiles ? { logs: `${dir}/logs`, data: `${dir}/data` } : {}),
    },
  };
  await Deno.writeTextFile(`${dir}/report.json`, JSON.stringify(report, null, 2) + "\n");
  if (!keepFiles) {
    await Deno.remove(`${dir}/data`, { recursive: true }).catch(() => {});
    await Deno.remove(`${dir}/logs`, { recursive: true }).catch(() => {});
  }
  return { report, dir };
}

/** Waits until the scheduler knows a region with `voters` voters and a leader. */
async function waitReplicated(admin: Admin, voters: number): Promise<void> {
  await pollUntil(`a region with ${voters} voters and a leader`, async () => {
    const regions = await admin.regions();
    return regions.some((r) =>
      r.leader && r.peers.filter((p) => p.role === "Voter").length === voters
    );
  }, { timeoutMs: 30_000, intervalMs: 200 });
}
