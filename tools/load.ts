/**
 * The load tool: drives an mrkv cluster (KV API) or etcd (v3 JSON gateway) with a mix of
 * writes and reads and prints throughput, errors by kind, and read/write latency percentiles.
 *
 * ```sh
 * deno run -A tools/load.ts --target mrkv --write-pct 100 --concurrency 16 --duration 10s
 * deno run -A tools/load.ts --target etcd --write-pct 10 --prefill --concurrency 64 --json
 * deno run -A tools/load.ts --help
 * ```
 *
 * Exit codes: 0 when at least one operation succeeded, 1 when none did, 2 on bad flags.
 * Ctrl-C stops issuing requests and prints the report of what ran so far.
 *
 * @module
 */
import {
  formatText,
  LoadArgError,
  loadUsage,
  parseLoadArgs,
  runLoad,
  targetFor,
  toReport,
} from "./load/mod.ts";
import { versionLine } from "../telemetry/mod.ts";

async function main(args: string[]): Promise<number> {
  if (args.includes("--version") || args.includes("-V")) {
    console.log(versionLine("load"));
    return 0;
  }
  let options;
  try {
    options = parseLoadArgs(args);
  } catch (e) {
    if (e instanceof LoadArgError) {
      console.error(`load: ${e.message}`);
      return 2;
    }
    throw e;
  }
  if ("help" in options) {
    console.log(loadUsage());
    return 0;
  }

  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  const startedAt = new Date();
  try {
    const result = await runLoad({
      ...options,
      target: targetFor(options),
      stop: stop.signal,
    });
    console.log(
      options.json
        ? JSON.stringify(toReport(options, result, startedAt))
        : formatText(options, result),
    );
    return result.ops > 0 ? 0 : 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
