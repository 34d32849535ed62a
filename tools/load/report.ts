/**
 * Turns a run's options and result into the text report or the JSON object the CLI prints.
 *
 * @module
 */
import type { LoadOptions } from "./args.ts";
import type { LatencySummary } from "./histogram.ts";
import type { RunResult } from "./run.ts";

/** The JSON document of one run: the options that shaped it and what came out. */
export interface LoadReport {
  readonly tool: "mrkv-load";
  readonly startedAt: string;
  readonly options: Omit<LoadOptions, "json">;
  readonly result: RunResult;
  /** 1-minute load average of the machine when the run started (set by bench_compare). */
  readonly loadAvg1m?: number;
}

/** Builds the JSON report (see {@link LoadReport}). */
export function toReport(options: LoadOptions, result: RunResult, startedAt: Date): LoadReport {
  const { json: _json, ...rest } = options;
  return { tool: "mrkv-load", startedAt: startedAt.toISOString(), options: rest, result };
}

const ms = (v: number) => v.toFixed(v < 10 ? 2 : 1);

function latencyLine(name: string, s: LatencySummary): string {
  if (s.count === 0) return `  ${name.padEnd(6)} none`;
  return `  ${name.padEnd(6)} n=${s.count}  p50 ${ms(s.p50Ms)} ms  p95 ${ms(s.p95Ms)} ms  ` +
    `p99 ${ms(s.p99Ms)} ms  max ${ms(s.maxMs)} ms  mean ${ms(s.meanMs)} ms`;
}

/** The human-readable report. */
export function formatText(options: LoadOptions, result: RunResult): string {
  const lines: string[] = [];
  lines.push(
    `target ${options.target} at ${options.endpoints.join(", ")}`,
    `workload ${options.writePct}% writes, ${options.valueSize}-byte values, ` +
      `${options.keys} keys, concurrency ${options.concurrency}` +
      (options.rate === undefined ? "" : `, at most ${options.rate} requests/s`) +
      `, seed ${options.seed}`,
  );
  const p = result.prefill;
  if (p) {
    lines.push(
      `prefill ${p.written}/${p.keys} keys in ${(p.elapsedMs / 1000).toFixed(1)} s` +
        (p.failed > 0 ? `, ${p.failed} FAILED` : ""),
    );
    for (const e of p.errors) lines.push(`  prefill error ${e.kind}: ${e.count} (${e.example})`);
  }
  lines.push(
    `ran ${(result.elapsedMs / 1000).toFixed(2)} s (stopped by ${result.stoppedBy}): ` +
      `${result.ops} ok of ${result.attempted} requests, ${result.opsPerSec.toFixed(0)} ops/s`,
    latencyLine("writes", result.writes),
    latencyLine("reads", result.reads) +
      (result.reads.count > 0 ? `  misses ${result.readMisses}` : ""),
  );
  const r = result.routes;
  if (r) {
    lines.push(
      `routes ${r.routed} of ${r.routed + r.unrouted} requests went to a leader a hint named; ` +
        `${r.ranges} range(s) known, ${r.learned} hint(s) learned, ${r.ignored} ignored, ` +
        `${r.forgotten} route(s) forgotten`,
    );
  }
  lines.push(`errors ${result.errorCount}`);
  for (const e of result.errors) lines.push(`  ${e.kind}: ${e.count} (e.g. ${e.example})`);
  return lines.join("\n");
}
