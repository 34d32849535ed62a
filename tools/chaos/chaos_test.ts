/**
 * The CI-sized chaos run: 3 stores in network namespaces, 16 clients, one round of every fault
 * kind (short holds), then the linearizability check. Fails on any anomaly, on a store that
 * dies or does not come back, and on a fault kind that could not be injected.
 *
 * Without root, `ip` or `iptables` the test is ignored with the reason printed, unless
 * `MRKV_CHAOS_REQUIRE_NETNS=1` (set by CI) makes that a failure. `MRKV_CHAOS_SEED` picks the
 * seed (default 1); the report and, on failure, the history, logs and data stay in the
 * printed directory.
 */
import assert from "node:assert/strict";
import { type ChaosOptions, formatReport, runChaos } from "./mod.ts";
import { CHAOS_DEFAULTS } from "./args.ts";
import { FAULT_KINDS } from "./faults.ts";
import { netnsUnavailable } from "./netns.ts";

const unavailable = await netnsUnavailable();
const required = Deno.env.get("MRKV_CHAOS_REQUIRE_NETNS") === "1";
if (unavailable && !required) {
  console.warn(
    `chaos_test: IGNORED — the fault suite needs network namespaces: ${unavailable}. ` +
      "Run as root with iproute2 and iptables (CI sets MRKV_CHAOS_REQUIRE_NETNS=1).",
  );
}

Deno.test({
  name: "chaos: one round of every fault on 3 stores keeps the history linearizable",
  ignore: unavailable !== undefined && !required,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    if (unavailable) throw new Error(`MRKV_CHAOS_REQUIRE_NETNS=1 but ${unavailable}`);
    const seed = Number(Deno.env.get("MRKV_CHAOS_SEED") ?? "1");
    const options: ChaosOptions = {
      target: "mrkv",
      seed,
      durationMs: 150_000, // a cap: the run ends after one round of faults
      rounds: 1,
      stores: 3,
      clients: 16,
      keys: 20,
      readFraction: 0.5,
      faults: FAULT_KINDS,
      holdMs: [1_500, 2_500],
      quietMs: 1_500,
      leadInMs: 1_500,
      keep: false,
      requireNetns: true,
      storeFlags: CHAOS_DEFAULTS.storeFlags,
      json: false,
    };
    const started = performance.now();
    const { report, dir } = await runChaos(options, { log: (l) => console.log(l) });
    const text = formatReport(report);
    console.log(text);
    console.log(`chaos_test: ${((performance.now() - started) / 1000).toFixed(1)} s in all`);

    const missing = FAULT_KINDS.filter((k) => !report.faults.some((f) => f.kind === k && !f.error));
    assert.deepEqual(missing, [], `fault kinds not injected cleanly (files: ${dir}):\n${text}`);
    assert.equal(report.verdict, "pass", `chaos run failed (files: ${dir}):\n${text}`);
    // A pass leaves only the history and the report; remove them too.
    await Deno.remove(dir, { recursive: true });
  },
});
