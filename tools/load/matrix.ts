/**
 * The benchmark matrix of docs/benchmarks.md (write percentages × concurrencies, one load run
 * per cell) and the markdown tables that put several systems side by side.
 *
 * @module
 */
import type { LoadReport } from "./report.ts";

/** One system's run of the whole matrix, as saved by tools/bench_compare.ts. */
export interface MatrixResult {
  readonly tool: "mrkv-bench";
  /** Column name in the tables, e.g. "etcd" or "mrkv". */
  readonly label: string;
  readonly startedAt: string;
  readonly machine: { readonly cpus: number; readonly os: string; readonly deno: string };
  readonly cells: readonly LoadReport[];
}

/** The cells of the matrix, in the order they are run: writes first, then the read mix. */
export function matrixCells(
  writePcts: readonly number[],
  concurrencies: readonly number[],
): { writePct: number; concurrency: number }[] {
  return writePcts.flatMap((writePct) =>
    concurrencies.map((concurrency) => ({ writePct, concurrency }))
  );
}

const workloadName = (writePct: number) =>
  writePct === 100 ? "100% writes" : writePct === 0 ? "100% reads" : `${100 - writePct}% reads`;

const fmtOps = (n: number) => Math.round(n).toString();
const fmtMs = (n: number) => n === 0 ? "–" : n < 10 ? n.toFixed(2) : n.toFixed(1);

function findCell(result: MatrixResult, writePct: number, concurrency: number) {
  return result.cells.find((c) =>
    c.options.writePct === writePct && c.options.concurrency === concurrency
  );
}

function rowKeys(results: readonly MatrixResult[]): { writePct: number; concurrency: number }[] {
  const seen = new Map<string, { writePct: number; concurrency: number }>();
  for (const r of results) {
    for (const c of r.cells) {
      const key = `${c.options.writePct}/${c.options.concurrency}`;
      if (!seen.has(key)) {
        seen.set(key, { writePct: c.options.writePct, concurrency: c.options.concurrency });
      }
    }
  }
  return [...seen.values()].sort((a, b) =>
    b.writePct - a.writePct || a.concurrency - b.concurrency
  );
}

/**
 * The side-by-side table: per cell, each system's throughput and p50/p99 over all operations.
 * `extraLabels` adds empty columns for systems not measured yet (e.g. "mrkv").
 */
export function comparisonTable(
  results: readonly MatrixResult[],
  extraLabels: readonly string[] = [],
): string {
  const labels = [...results.map((r) => r.label), ...extraLabels];
  const header = ["workload", "conc.", ...labels.flatMap((l) => [`${l} ops/s`, `${l} p50/p99 ms`])];
  const lines = [row(header), row(header.map((_, i) => i < 2 ? "---" : "---:"))];
  for (const { writePct, concurrency } of rowKeys(results)) {
    const cells = [workloadName(writePct), String(concurrency)];
    for (const label of labels) {
      const result = results.find((r) => r.label === label);
      const cell = result && findCell(result, writePct, concurrency);
      if (!cell) {
        cells.push("", "");
        continue;
      }
      const r = cell.result;
      const errors = r.errorCount > 0 ? ` (${r.errorCount} err)` : "";
      cells.push(fmtOps(r.opsPerSec) + errors, `${fmtMs(r.all.p50Ms)} / ${fmtMs(r.all.p99Ms)}`);
    }
    lines.push(row(cells));
  }
  return lines.join("\n");
}

/** One system's detail: reads and writes apart, p95 and max, misses and errors. */
export function detailTable(result: MatrixResult): string {
  const header = [
    "workload",
    "conc.",
    "ops/s",
    "write p50 / p95 / p99 / max ms",
    "read p50 / p95 / p99 / max ms",
    "read misses",
    "errors",
    "load avg",
  ];
  const lines = [row(header), row(header.map((_, i) => i < 2 ? "---" : "---:"))];
  const lat = (s: { count: number; p50Ms: number; p95Ms: number; p99Ms: number; maxMs: number }) =>
    s.count === 0 ? "–" : [s.p50Ms, s.p95Ms, s.p99Ms, s.maxMs].map(fmtMs).join(" / ");
  for (const { writePct, concurrency } of rowKeys([result])) {
    const c = findCell(result, writePct, concurrency)!;
    const r = c.result;
    const errors = r.errors.map((e) => `${e.kind}: ${e.count}`).join(", ");
    lines.push(row([
      workloadName(writePct),
      String(concurrency),
      fmtOps(r.opsPerSec),
      lat(r.writes),
      lat(r.reads),
      r.reads.count === 0 ? "–" : String(r.readMisses),
      errors === "" ? "0" : errors,
      c.loadAvg1m === undefined ? "–" : c.loadAvg1m.toFixed(1),
    ]));
  }
  return lines.join("\n");
}

function row(cells: readonly string[]): string {
  return `| ${cells.join(" | ")} |`;
}

/** Checks that parsed JSON is a {@link MatrixResult} enough to tabulate; throws saying why not. */
export function checkMatrixResult(value: unknown, source: string): MatrixResult {
  const v = value as Partial<MatrixResult> | null;
  if (typeof v !== "object" || v === null || v.tool !== "mrkv-bench") {
    throw new Error(`${source}: not a bench_compare result (no "tool": "mrkv-bench")`);
  }
  if (typeof v.label !== "string" || !Array.isArray(v.cells)) {
    throw new Error(`${source}: missing "label" or "cells"`);
  }
  for (const [i, c] of v.cells.entries()) {
    if (
      typeof c?.options?.writePct !== "number" || typeof c?.options?.concurrency !== "number" ||
      typeof c?.result?.opsPerSec !== "number" || typeof c?.result?.all?.p50Ms !== "number"
    ) {
      throw new Error(`${source}: cell ${i} lacks options.writePct/concurrency or result.all`);
    }
  }
  return v as MatrixResult;
}
