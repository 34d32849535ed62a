/**
 * One write, stage by stage: runs the load tool against a running cluster (one writer by
 * default) and prints, per store, the mean time of each stage of a write's path from the stores'
 * `/metrics` (client and forwarded writes, propose → apply, a Ready pass's writes, the Raft log
 * write with its `fdatasync`, one Raft batch until acknowledged) and the stores' CPU per write.
 * docs/benchmarks.md ("One write, stage by stage") reads its output.
 *
 * ```sh
 * deno task start &    # or any cluster whose stores serve /metrics without a credential
 * deno run -A tools/write_stages.ts --endpoints http://127.0.0.1:20161,http://127.0.0.1:20162,http://127.0.0.1:20163
 * ```
 *
 * @module
 */
import { parseToolArgs, usageExit } from "./_cli.ts";
import { LoadArgError, parseLoadArgs, runLoad, targetFor } from "./load/mod.ts";
import { parseSamples, type Samples, stagesTable, storeStages } from "./load/stages.ts";

const NAME = "write_stages";
const { values } = parseToolArgs({
  name: NAME,
  usage: `Usage: deno run -A tools/write_stages.ts [flags]

  --endpoints URL,...   the stores (default: the playground's three)
  --concurrency N       writers (default 1)
  --duration D          length of the run (default 10s)
  --value-size BYTES    value size (default 128)
  --route MODE          endpoints (default) or leader, as in tools/load.ts
  --help, --version`,
  options: {
    endpoints: { type: "string" },
    concurrency: { type: "string", default: "1" },
    duration: { type: "string", default: "10s" },
    "value-size": { type: "string", default: "128" },
    route: { type: "string", default: "endpoints" },
  },
});

let options;
try {
  options = parseLoadArgs([
    "--target",
    "mrkv",
    "--write-pct",
    "100",
    "--concurrency",
    values.concurrency,
    "--duration",
    values.duration,
    "--value-size",
    values["value-size"],
    "--route",
    values.route,
    ...(values.endpoints ? ["--endpoints", values.endpoints] : []),
  ]);
} catch (e) {
  if (e instanceof LoadArgError) usageExit(NAME, e.message);
  throw e;
}
if ("help" in options) throw new Error("unreachable: --help is never passed");

async function metrics(endpoint: string): Promise<Samples> {
  const res = await fetch(`${endpoint}/metrics`, { signal: AbortSignal.timeout(5_000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${endpoint}/metrics answered ${res.status}: ${text.slice(0, 200)}`);
  return parseSamples(text);
}

let before: Samples[];
try {
  before = await Promise.all(options.endpoints.map(metrics));
} catch (e) {
  console.error(`${NAME}: ${(e as Error).message}`);
  Deno.exit(1);
}
const loadAvg = Deno.loadavg()[0] ?? 0;
const result = await runLoad({
  ...options,
  target: targetFor(options),
});
const after = await Promise.all(options.endpoints.map(metrics));
console.log(
  `${result.opsPerSec.toFixed(0)} writes/s at ${options.concurrency} writer(s), p50 ` +
    `${result.all.p50Ms} ms, p99 ${result.all.p99Ms} ms, ${result.errorCount} errors ` +
    `(1-minute load average ${loadAvg.toFixed(1)} at the start)\n`,
);
console.log(stagesTable(options.endpoints.map((name, i) => ({
  name,
  stages: storeStages(before[i]!, after[i]!),
}))));
