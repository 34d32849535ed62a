/**
 * The fault suite: a real mrkv cluster (scheduler + 3 or 5 stores, each in its own network
 * namespace when run as root), clients recording every operation while faults are injected one
 * at a time, then a linearizability check of the history and a report.
 *
 * ```sh
 * deno task chaos --seed 7 --duration 60 --stores 3
 * deno task chaos --faults partition,kill --stores 5 --keep
 * deno task chaos --help
 * ```
 *
 * Exit codes: 0 pass, 1 anomaly or the cluster did not recover, 2 bad flags, 3 inconclusive
 * (the checker ran out of budget on some key). Ctrl-C stops the run early; the cluster and the
 * network are torn down and the partial history is still checked.
 *
 * @module
 */
import { versionLine } from "../telemetry/mod.ts";
import { ChaosArgError, chaosUsage, formatReport, parseChaosArgs, runChaos } from "./chaos/mod.ts";

async function main(args: string[]): Promise<number> {
  if (args.includes("--version") || args.includes("-V")) {
    console.log(versionLine("chaos"));
    return 0;
  }
  let options;
  try {
    options = parseChaosArgs(args);
  } catch (e) {
    if (e instanceof ChaosArgError) {
      console.error(`chaos: ${e.message}`);
      return 2;
    }
    throw e;
  }
  if ("help" in options) {
    console.log(chaosUsage());
    return 0;
  }
  const stop = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    if (++interrupts > 1) {
      console.error("chaos: interrupted twice; tearing down may be incomplete");
      Deno.exit(130);
    }
    console.error("chaos: stopping (Ctrl-C again to abandon the teardown)");
    stop.abort();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const { report } = await runChaos(options, {
      log: (line) => console.error(line),
      signal: stop.signal,
    });
    console.log(options.json ? JSON.stringify(report, null, 2) : formatReport(report));
    return report.verdict === "pass" ? 0 : report.verdict === "inconclusive" ? 3 : 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
