import assert from "node:assert/strict";
import { parseLoadArgs } from "./args.ts";
import { LatencyHistogram } from "./histogram.ts";
import { formatText, toReport } from "./report.ts";
import type { RunResult } from "./run.ts";

function sampleResult(): RunResult {
  const writes = new LatencyHistogram();
  for (let us = 1; us <= 100; us++) writes.recordUs(us * 100);
  return {
    elapsedMs: 2000,
    attempted: 103,
    ops: 100,
    opsPerSec: 50,
    writes: writes.summary(),
    reads: new LatencyHistogram().summary(),
    all: writes.summary(),
    readMisses: 0,
    errorCount: 3,
    errors: [{ kind: "503 NotLeader", count: 3, example: "peer 3 is not the leader" }],
    stoppedBy: "requests",
  };
}

Deno.test("the text report shows throughput, percentiles and errors by kind", () => {
  // Scenario: a write-only run with three NotLeader errors.
  const options = parseLoadArgs(["--seed", "1", "--requests", "103"]);
  assert.ok(!("help" in options));
  const text = formatText(options, sampleResult());
  assert.match(text, /100 ok of 103 requests, 50 ops\/s/);
  assert.match(
    text,
    // Samples 0.1..10 ms; bucketed percentiles err high by under 1/64 (histogram.ts).
    /writes n=100 {2}p50 5\.05 ms {2}p95 9\.60 ms {2}p99 9\.98 ms {2}max 10\.0 ms/,
  );
  assert.match(text, /reads {2}none/);
  assert.match(text, /errors 3\n {2}503 NotLeader: 3 \(e\.g\. peer 3 is not the leader\)/);
});

Deno.test("the JSON report carries the options (minus --json) and the result", () => {
  const options = parseLoadArgs(["--seed", "1", "--json", "--target", "etcd"]);
  assert.ok(!("help" in options));
  const report = JSON.parse(JSON.stringify(toReport(options, sampleResult(), new Date(0))));
  assert.equal(report.tool, "mrkv-load");
  assert.equal(report.startedAt, "1970-01-01T00:00:00.000Z");
  assert.equal(report.options.target, "etcd");
  assert.equal("json" in report.options, false);
  assert.equal(report.result.writes.maxMs, 10);
  assert.equal(report.result.errors[0].kind, "503 NotLeader");
});

Deno.test("with --route leader the text report says how many requests a hint routed", () => {
  const options = parseLoadArgs(["--seed", "1", "--route", "leader"]);
  assert.ok(!("help" in options));
  const routes = { routed: 99, unrouted: 4, ranges: 2, learned: 3, ignored: 1, forgotten: 1 };
  const text = formatText(options, { ...sampleResult(), routes });
  assert.match(
    text,
    /routes 99 of 103 requests went to a leader a hint named; 2 range\(s\) known, 3 hint\(s\) learned, 1 ignored, 1 route\(s\) forgotten\nerrors 3/,
  );
  assert.doesNotMatch(formatText(options, sampleResult()), /routes/);
});
