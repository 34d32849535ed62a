/**
 * Runs the benchmark matrix of docs/benchmarks.md against one system and prints it side by
 * side with earlier runs: 128-byte values, 100% writes and 90% reads (prefilled), concurrency 1, 16, 64,
 * 10 s per cell. Every cell is one in-process run of the load tool (tools/load.ts), with the
 * same flags it would get on the command line.
 *
 * ```sh
 * tools/etcd_cluster.sh start
 * deno run -A tools/bench_compare.ts --target etcd --out bench-results/etcd.json
 * tools/etcd_cluster.sh stop
 * deno task start &   # the mrkv playground: scheduler + 3 stores
 * deno run -A tools/bench_compare.ts --target mrkv --out bench-results/mrkv.json \
 *     --compare bench-results/etcd.json
 * deno run -A tools/bench_compare.ts --compare a.json --compare b.json   # tables only
 * ```
 *
 * Flags: --target, --endpoints, --route, --duration, --value-size, --keys, --timeout as in
 * tools/load.ts; --label NAME (column name, default the target), --concurrency 1,16,64,
 * --write-pct 100,10, --pause D between cells (default 2s), --warmup D (default 5s: writes at 16
 * clients before the first cell, not recorded: a freshly started Deno process is slower until
 * its hot code is compiled, which would count against the first cell, one writer, on mrkv alone),
 * --out FILE (save this run as JSON),
 * --compare FILE (repeatable; earlier runs to put beside this one), --empty-column NAME
 * (repeatable; a blank column to fill in later), --help, --version.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseDuration } from "../config/config.ts";
import { versionLine } from "../telemetry/mod.ts";
import {
  LoadArgError,
  type LoadReport,
  parseLoadArgs,
  runLoad,
  targetFor,
  toReport,
} from "./load/mod.ts";
import {
  checkMatrixResult,
  comparisonTable,
  detailTable,
  matrixCells,
  type MatrixResult,
} from "./load/matrix.ts";

function fail(message: string): never {
  console.error(`bench_compare: ${message}`);
  Deno.exit(2);
}

function duration(flag: string, text: string): number {
  try {
    return parseDuration(text);
  } catch (e) {
    fail(`invalid value for ${flag}: ${(e as Error).message}`);
  }
}

function list(flag: string, text: string): number[] {
  const values = text.split(",").map((s) => Number(s.trim()));
  if (values.length === 0 || values.some((v) => !Number.isSafeInteger(v))) {
    fail(`invalid value for ${flag}: "${text}" is not a comma-separated list of whole numbers`);
  }
  return values;
}

if (Deno.args.includes("--version") || Deno.args.includes("-V")) {
  console.log(versionLine("bench_compare"));
  Deno.exit(0);
}

let values;
try {
  ({ values } = parseArgs({
    args: Deno.args,
    options: {
      target: { type: "string" },
      endpoints: { type: "string" },
      route: { type: "string" },
      label: { type: "string" },
      duration: { type: "string", default: "10s" },
      "value-size": { type: "string", default: "128" },
      keys: { type: "string", default: "10000" },
      timeout: { type: "string", default: "5s" },
      concurrency: { type: "string", default: "1,16,64" },
      "write-pct": { type: "string", default: "100,10" },
      pause: { type: "string", default: "2s" },
      warmup: { type: "string", default: "5s" },
      out: { type: "string" },
      compare: { type: "string", multiple: true, default: [] },
      "empty-column": { type: "string", multiple: true, default: [] },
      help: { type: "boolean" },
    },
    strict: true,
  }));
} catch (e) {
  fail((e as Error).message.split("\n")[0]!);
}
if (values.help) {
  const doc = await Deno.readTextFile(new URL(import.meta.url));
  const text = /\/\*\*([\s\S]*?)\*\//.exec(doc)![1]!.replace(/^ \* ?/gm, "").trim();
  console.log(
    `usage: deno run -A tools/bench_compare.ts [flags]\n\n${text.replace(/@module$/, "")}`,
  );
  Deno.exit(0);
}

const earlier: MatrixResult[] = [];
for (const file of values.compare) {
  try {
    earlier.push(checkMatrixResult(JSON.parse(await Deno.readTextFile(file)), file));
  } catch (e) {
    fail(`cannot use --compare ${file}: ${(e as Error).message}`);
  }
}

let current: MatrixResult | undefined;
if (values.target !== undefined || values.endpoints !== undefined) {
  const target = values.target ?? "mrkv";
  const label = values.label ?? target;
  const pauseMs = duration("--pause", values.pause);
  const warmupMs = duration("--warmup", values.warmup);
  const cells = matrixCells(
    list("--write-pct", values["write-pct"]),
    list("--concurrency", values.concurrency),
  );
  const stop = new AbortController();
  Deno.addSignalListener("SIGINT", () => stop.abort());
  const reports: LoadReport[] = [];
  const startedAt = new Date();
  const warmup = { writePct: 100, concurrency: 16, warmup: true };
  for (const cell of [...(warmupMs > 0 ? [warmup] : []), ...cells]) {
    if (stop.signal.aborted) break;
    const isWarmup = "warmup" in cell;
    const args = [
      "--target",
      target,
      "--write-pct",
      String(cell.writePct),
      "--concurrency",
      String(cell.concurrency),
      "--duration",
      isWarmup ? `${warmupMs}ms` : values.duration,
      "--value-size",
      values["value-size"],
      "--keys",
      values.keys,
      "--timeout",
      values.timeout,
      "--seed",
      String(isWarmup ? 999 : 1000 + reports.length),
      ...(values.endpoints ? ["--endpoints", values.endpoints] : []),
      ...(values.route ? ["--route", values.route] : []),
      ...(cell.writePct < 100 ? ["--prefill"] : []),
    ];
    let options;
    try {
      options = parseLoadArgs(args);
    } catch (e) {
      if (e instanceof LoadArgError) fail(e.message);
      throw e;
    }
    if ("help" in options) throw new Error("unreachable: --help is never passed");
    const n = reports.length + 1;
    console.error(
      `bench_compare: [${isWarmup ? "warm-up" : `${n}/${cells.length}`}] tools/load.ts ` +
        args.join(" "),
    );
    const cellStart = new Date();
    // The machine is shared: keep its load beside the numbers it may have skewed.
    const loadAvg1m = Deno.loadavg()[0];
    const result = await runLoad({
      ...options,
      target: targetFor(options),
      stop: stop.signal,
    });
    console.error(
      `bench_compare:   ${result.opsPerSec.toFixed(0)} ops/s, p50 ${result.all.p50Ms} ms, ` +
        `p99 ${result.all.p99Ms} ms, ${result.errorCount} errors (load average was ${loadAvg1m})`,
    );
    if (isWarmup) continue;
    reports.push({ ...toReport(options, result, cellStart), loadAvg1m });
    if (reports.length < cells.length && pauseMs > 0) {
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }
  current = {
    tool: "mrkv-bench",
    label,
    startedAt: startedAt.toISOString(),
    machine: {
      cpus: navigator.hardwareConcurrency,
      os: `${Deno.build.os} ${Deno.osRelease()} ${Deno.build.arch}`,
      deno: Deno.version.deno,
    },
    cells: reports,
  };
  if (values.out) {
    const dir = values.out.replace(/\/[^/]*$/, "");
    if (dir !== values.out) await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(values.out, JSON.stringify(current, null, 2) + "\n");
    console.error(`bench_compare: saved ${values.out}`);
  }
}

const all = [...earlier, ...(current ? [current] : [])];
if (all.length === 0) fail("nothing to do: give --target/--endpoints to run, or --compare FILE");
console.log(comparisonTable(all, values["empty-column"]));
for (const r of all) {
  console.log(
    `\n${r.label} in detail (${r.startedAt}, ${r.machine.cpus} CPUs, ${r.machine.os}):\n`,
  );
  console.log(detailTable(r));
}
