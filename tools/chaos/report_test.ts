import assert from "node:assert/strict";
import type { Op } from "./history.ts";
import type { FaultEvent } from "./inject.ts";
import {
  checkHistory,
  countOps,
  faultStats,
  formatReport,
  longestGap,
  overall,
  type RunReport,
} from "./report.ts";

let id = 0;
function op(over: Partial<Op>): Op {
  return {
    id: id++,
    client: 0,
    store: 1,
    key: "k00",
    kind: "write",
    value: `c0-${id}`,
    invoke: 0,
    end: 1,
    outcome: "ok",
    ...over,
  };
}

Deno.test("the longest gap between successes, edges included", () => {
  assert.deepEqual(longestGap([1, 2, 10, 11], 0, 12), { ms: 8, at: 2 });
  assert.deepEqual(longestGap([], 0, 5), { ms: 5, at: 0 });
  assert.deepEqual(longestGap([1, 50], 10, 20), { ms: 10, at: 10 });
});

Deno.test("per fault: when writes came back on the serving side and after the heal", () => {
  const ops = [
    op({ store: 1, invoke: 900, end: 1_000 }),
    // During the fault: s1 (cut off) fails, s2 serves at 1,400.
    op({ store: 1, invoke: 1_100, end: 3_100, outcome: "unknown", error: "timeout" }),
    op({ store: 2, invoke: 1_050, end: 1_400 }),
    op({ store: 3, invoke: 1_200, end: 1_300, kind: "read", value: null }),
    // After the heal at 2,000: s1 at 2,250.
    op({ store: 1, invoke: 2_100, end: 2_250 }),
  ];
  const ev: FaultEvent = {
    kind: "isolate-store",
    description: "s1 isolated",
    start: 1_000,
    heal: 2_000,
    end: 3_000,
    live: ["s2", "s3"],
  };
  const [f] = faultStats([ev], ops);
  assert.equal(f!.writesBackMs, 400);
  assert.equal(f!.afterHealMs, 250);
  assert.equal(f!.longestWriteGapMs, 850); // 1,400 .. 2,250
  assert.equal(f!.longestGapMs, 850); // the read at 1,300 falls in the earlier gap
  assert.deepEqual(countOps(ops), {
    reads: { ok: 1, fail: 0, unknown: 0 },
    writes: { ok: 3, fail: 0, unknown: 1 },
  });
});

Deno.test("the checker runs per key and anomalies come with explanations", () => {
  const ops = [
    op({ key: "k00", value: "a", invoke: 0, end: 1 }),
    op({ key: "k00", kind: "read", value: "a", invoke: 2, end: 3 }),
    op({ key: "k01", value: "b", invoke: 0, end: 1 }),
    op({ key: "k01", value: "c", invoke: 2, end: 3 }),
    op({ key: "k01", kind: "read", value: "b", invoke: 4, end: 5 }),
    op({ key: "k02", kind: "read", value: null, invoke: 0, end: 1, outcome: "fail" }),
  ];
  const { keys, anomalies } = checkHistory(ops);
  assert.deepEqual(keys.map((k) => [k.key, k.result, k.ops]), [
    ["k00", "ok", 2],
    ["k01", "anomaly", 3],
    ["k02", "ok", 0],
  ]);
  assert.equal(overall(keys), "anomaly");
  assert.equal(anomalies.length, 1);
  assert.equal(anomalies[0]!.kind, "stale-read");
  assert.equal(overall(checkHistory(ops, { maxSteps: 0, maxMs: 1 }).keys), "unknown");
});

Deno.test("the text report shows the verdict, each fault and each anomaly", () => {
  const report: RunReport = {
    format: "mrkv-chaos-report/1",
    verdict: "fail",
    problems: ["not linearizable: k01"],
    warnings: [],
    config: { target: "mrkv", seed: 1, stores: 3, clients: 2, keys: 2, net: "netns" },
    workloadMs: [0, 10_000],
    counts: { reads: { ok: 1, fail: 0, unknown: 0 }, writes: { ok: 2, fail: 1, unknown: 0 } },
    availability: { longestGap: { ms: 100, at: 5 }, longestWriteGap: { ms: 200, at: 5 } },
    faults: [{
      kind: "split-sched-minority",
      description: "{sched,s1} | {s2,s3}",
      start: 1_000,
      heal: 3_000,
      live: ["s2", "s3"],
      leaderReadyMs: null,
      writesBackMs: null,
      afterHealMs: 300,
      longestWriteGapMs: 2_300,
      longestGapMs: 2_000,
    }],
    checker: {
      result: "anomaly",
      keys: [{ key: "k01", result: "anomaly", ops: 3, steps: 4, ms: 0 }],
    },
    anomalies: [{
      key: "k01",
      kind: "stale-read",
      text: "k01: proof",
      opIds: [1],
      confirmed: true,
    }],
    unexpectedExits: [],
    finalChecks: [{ store: "s1", recoveredMs: 10 }],
    files: { history: "/tmp/h.json" },
  };
  const text = formatReport(report);
  assert.match(text, /split-sched-minority: \{sched,s1\} \| \{s2,s3\}/);
  assert.match(
    text,
    /writes back never, after heal 0\.30s, longest gap 2\.00s \(writes 2\.30s\), leader never/,
  );
  assert.match(
    text,
    /majority without the scheduler \(split-sched-minority\): leader never, writes never \(fault held 2\.00s\)/,
  );
  assert.match(text, /ANOMALY stale-read: k01: proof/);
  assert.match(text, /verdict: FAIL — not linearizable: k01/);
  assert.match(text, /history: \/tmp\/h\.json/);
});
