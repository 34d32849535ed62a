/**
 * A run's report: operations by outcome, availability (overall and per fault), the checker's
 * verdict per key with explanations of anomalies, and what else went wrong (processes that
 * died, a cluster that did not recover). {@link formatReport} prints it for people; the same
 * object is saved as JSON.
 *
 * @module
 */
import { type CheckBudget, checkRegister, DEFAULT_BUDGET } from "./checker.ts";
import type { UnexpectedExit } from "./procs.ts";
import { explainKey, type Explanation } from "./explain.ts";
import type { FaultEvent } from "./inject.ts";
import { byKey, completion, isCheckable, type Op } from "./history.ts";
import type { FinalCheck } from "./workload.ts";

/** Counts by outcome. */
export interface OutcomeCounts {
  ok: number;
  fail: number;
  unknown: number;
}

/** The checker's verdict on one key. */
export interface KeyVerdict {
  readonly key: string;
  readonly result: "ok" | "anomaly" | "unknown";
  /** Operations checked (ok reads and writes that may have happened). */
  readonly ops: number;
  readonly steps: number;
  readonly ms: number;
  readonly reason?: string;
}

/** A fault with what the history says about it. */
export interface FaultStats extends FaultEvent {
  /** Ms from the start until the first ok write invoked after it (through a `live` store). */
  readonly writesBackMs: number | null;
  /** Ms from the heal until the first ok write invoked after it. */
  readonly afterHealMs: number | null;
  /** The longest time without an ok write completing, from the start to the end. */
  readonly longestWriteGapMs: number;
  /** The same for any ok operation. */
  readonly longestGapMs: number;
}

/** A time span without success. */
export interface Gap {
  readonly ms: number;
  /** Where it began (ms since the run started). */
  readonly at: number;
}

/** Everything a run found. */
export interface RunReport {
  readonly format: "mrkv-chaos-report/1";
  readonly verdict: "pass" | "fail" | "inconclusive";
  /** Why the verdict is not pass, one line each. */
  readonly problems: readonly string[];
  readonly warnings: readonly string[];
  readonly config: Readonly<Record<string, unknown>>;
  readonly workloadMs: readonly [number, number];
  readonly counts: { readonly reads: OutcomeCounts; readonly writes: OutcomeCounts };
  readonly availability: { readonly longestGap: Gap; readonly longestWriteGap: Gap };
  readonly faults: readonly FaultStats[];
  readonly checker: { readonly result: KeyVerdict["result"]; readonly keys: readonly KeyVerdict[] };
  readonly anomalies: readonly Explanation[];
  readonly unexpectedExits: readonly UnexpectedExit[];
  readonly finalChecks: readonly FinalCheck[];
  readonly files: Readonly<Record<string, string>>;
}

/** Operation counts by kind and outcome. */
export function countOps(ops: readonly Op[]): RunReport["counts"] {
  const reads = { ok: 0, fail: 0, unknown: 0 };
  const writes = { ok: 0, fail: 0, unknown: 0 };
  for (const op of ops) (op.kind === "read" ? reads : writes)[op.outcome]++;
  return { reads, writes };
}

/** The longest span in [from, to] with none of the (sorted) `times` inside it. */
export function longestGap(times: readonly number[], from: number, to: number): Gap {
  let best: Gap = { ms: 0, at: from };
  let last = from;
  for (const t of [...times.filter((x) => x >= from && x <= to), to]) {
    if (t - last > best.ms) best = { ms: Math.round(t - last), at: Math.round(last) };
    last = Math.max(last, t);
  }
  return best;
}

/** Completion times of ok operations (of one kind, if given), sorted. */
function okTimes(ops: readonly Op[], kind?: "read" | "write", stores?: Set<number>): number[] {
  return ops.filter((o) =>
    o.outcome === "ok" && (!kind || o.kind === kind) && (!stores || stores.has(o.store))
  ).map((o) => o.end).sort((a, b) => a - b);
}

/** What the history says about each fault. */
export function faultStats(events: readonly FaultEvent[], ops: readonly Op[]): FaultStats[] {
  const writes = ops.filter((o) => o.kind === "write" && o.outcome === "ok");
  const firstAfter = (t: number, stores?: Set<number>): number | null => {
    let best: number | null = null;
    for (const w of writes) {
      if (w.invoke < t || (stores && !stores.has(w.store))) continue;
      if (best === null || w.end - t < best) best = Math.round(w.end - t);
    }
    return best;
  };
  const writeTimes = okTimes(ops, "write");
  const allTimes = okTimes(ops);
  return events.map((ev) => {
    const live = ev.live ? new Set(ev.live.map((s) => Number(s.slice(1)))) : undefined;
    const heal = ev.heal ?? ev.start;
    return {
      ...ev,
      writesBackMs: firstAfter(ev.start, live),
      afterHealMs: firstAfter(heal),
      longestWriteGapMs: longestGap(writeTimes, ev.start, ev.end ?? heal).ms,
      longestGapMs: longestGap(allTimes, ev.start, ev.end ?? heal).ms,
    };
  });
}

/** Runs the checker on every key; returns verdicts and explanations of anomalies. */
export function checkHistory(
  ops: readonly Op[],
  budget: CheckBudget = DEFAULT_BUDGET,
): { keys: KeyVerdict[]; anomalies: Explanation[] } {
  const keys: KeyVerdict[] = [];
  const anomalies: Explanation[] = [];
  const sorted = [...byKey(ops)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [key, keyOps] of sorted) {
    const checkable = keyOps.filter(isCheckable).map((o) => ({
      id: o.id,
      kind: o.kind,
      value: o.value,
      invoke: o.invoke,
      complete: completion(o),
    }));
    const started = performance.now();
    const res = checkRegister(checkable, budget);
    const ms = Math.round(performance.now() - started);
    keys.push({
      key,
      result: res.result,
      ops: checkable.length,
      steps: res.steps,
      ms,
      ...(res.result === "unknown" ? { reason: res.reason } : {}),
    });
    if (res.result === "anomaly") anomalies.push(...explainKey(key, keyOps, res.stuck));
  }
  return { keys, anomalies };
}

/** The overall checker result: any anomaly wins, then any unknown. */
export function overall(keys: readonly KeyVerdict[]): KeyVerdict["result"] {
  if (keys.some((k) => k.result === "anomaly")) return "anomaly";
  if (keys.some((k) => k.result === "unknown")) return "unknown";
  return "ok";
}

const s = (ms: number | null | undefined) =>
  ms === null || ms === undefined ? "never" : `${(ms / 1000).toFixed(2)}s`;

/** The report as text for a terminal. */
export function formatReport(r: RunReport): string {
  const c = r.config;
  const lines: string[] = [];
  lines.push(
    `chaos run: target ${c.target}, seed ${c.seed}, ${c.stores} stores, ${c.clients} clients, ${c.keys} keys, ${
      s(r.workloadMs[1] - r.workloadMs[0])
    } of workload, ${c.net}`,
  );
  const { reads, writes } = r.counts;
  lines.push(
    `ops: writes ok ${writes.ok}, fail ${writes.fail}, unknown ${writes.unknown}; reads ok ${reads.ok}, fail ${reads.fail}, unknown ${reads.unknown} (failed and unknown reads are not checked)`,
  );
  const a = r.availability;
  lines.push(
    `availability: longest gap without any ok op ${s(a.longestGap.ms)} (from ${
      s(a.longestGap.at)
    }); without an ok write ${s(a.longestWriteGap.ms)} (from ${s(a.longestWriteGap.at)})`,
  );
  if (r.faults.length > 0) {
    lines.push("faults (times since the run started; 'writes back' = first ok write invoked after");
    lines.push(
      "the start, through a store expected to serve; 'leader' = every region with a quorum",
    );
    lines.push("on that side has a leader there):");
  }
  for (const f of r.faults) {
    const parts = [
      `${s(f.start)} ${f.kind}: ${f.description}`,
      `  healed ${s(f.heal)}; writes back ${s(f.writesBackMs)}, after heal ${
        s(f.afterHealMs)
      }, longest gap ${s(f.longestGapMs)} (writes ${s(f.longestWriteGapMs)})${
        f.leaderReadyMs === undefined
          ? ""
          : f.quorumRegions === 0
          ? ", leader n/a (no region has a voter quorum on the serving side)"
          : `, leader ${s(f.leaderReadyMs)}${
            f.quorumRegions !== undefined ? ` (${f.quorumRegions} region(s))` : ""
          }`
      }${f.live ? ` (serving side: ${f.live.join(",")})` : ""}`,
    ];
    if (f.regions) parts.push(`  regions before: ${f.regions}`);
    if (f.error) parts.push(`  error: ${f.error.split("\n")[0]}`);
    lines.push(...parts.map((p) => `  ${p}`));
  }
  const minority = r.faults.filter((f) => f.kind === "split-sched-minority");
  if (minority.length > 0) {
    lines.push(
      `majority without the scheduler (split-sched-minority): ${
        minority.map((f) =>
          `leader ${f.quorumRegions === 0 ? "n/a" : s(f.leaderReadyMs)}, writes ${
            s(f.writesBackMs)
          } (fault held ${s((f.heal ?? f.start) - f.start)})`
        ).join("; ")
      }`,
    );
  }
  const bad = r.checker.keys.filter((k) => k.result !== "ok");
  const total = r.checker.keys.reduce((n, k) => n + k.ops, 0);
  lines.push(
    `checker: ${
      r.checker.result === "ok" ? "linearizable" : r.checker.result
    } (${r.checker.keys.length} keys, ${total} ops checked${
      bad.length
        ? `; not ok: ${
          bad.map((k) => `${k.key} ${k.result}${k.reason ? ` (${k.reason})` : ""}`).join(", ")
        }`
        : ""
    })`,
  );
  for (const e of r.anomalies) {
    lines.push(`  ANOMALY ${e.kind}${e.confirmed ? "" : " (not confirmed alone)"}: ${e.text}`);
  }
  for (const x of r.unexpectedExits) {
    lines.push(
      `  ${x.name} exited on its own at ${s(x.at)} (code ${x.code}${
        x.signal ? `, ${x.signal}` : ""
      }):`,
    );
    lines.push(...x.tail.split("\n").slice(-8).map((l) => `    | ${l}`));
  }
  for (const f of r.finalChecks) {
    if (f.recoveredMs === null) lines.push(`  ${f.store} did not recover: ${f.lastError ?? "?"}`);
  }
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  lines.push(
    `verdict: ${r.verdict.toUpperCase()}${r.problems.length ? ` — ${r.problems.join("; ")}` : ""}`,
  );
  for (const [what, path] of Object.entries(r.files)) lines.push(`${what}: ${path}`);
  return lines.join("\n");
}
