import assert from "node:assert/strict";
import { FakeServer } from "./_fake_server.ts";
import { LatencyHistogram } from "./histogram.ts";
import {
  checkMatrixResult,
  comparisonTable,
  detailTable,
  matrixCells,
  type MatrixResult,
} from "./matrix.ts";
import type { LoadReport } from "./report.ts";

function cell(writePct: number, concurrency: number, opsPerSec: number): LoadReport {
  const writes = new LatencyHistogram();
  const reads = new LatencyHistogram();
  for (let i = 0; i < 100; i++) {
    if (i < writePct) writes.recordUs(1000 + i);
    else reads.recordUs(500 + i);
  }
  const all = new LatencyHistogram();
  all.merge(writes);
  all.merge(reads);
  return {
    tool: "mrkv-load",
    startedAt: "2026-01-01T00:00:00.000Z",
    options: {
      target: "etcd",
      endpoints: ["http://127.0.0.1:23791"],
      writePct,
      concurrency,
      valueSize: 128,
      keys: 10000,
      durationMs: 10000,
      prefill: writePct < 100,
      timeoutMs: 5000,
      seed: 1,
    },
    result: {
      elapsedMs: 10000,
      attempted: 100,
      ops: 100,
      opsPerSec,
      writes: writes.summary(),
      reads: reads.summary(),
      all: all.summary(),
      readMisses: 0,
      errorCount: 0,
      errors: [],
      stoppedBy: "duration",
    },
  };
}

const etcd: MatrixResult = {
  tool: "mrkv-bench",
  label: "etcd",
  startedAt: "2026-01-01T00:00:00.000Z",
  machine: { cpus: 2, os: "linux", deno: "2.9.6" },
  cells: [cell(100, 1, 500.4), cell(100, 16, 2000), cell(10, 1, 900)],
};

Deno.test("the matrix runs writes first, each at every concurrency", () => {
  assert.deepEqual(matrixCells([100, 10], [1, 16]), [
    { writePct: 100, concurrency: 1 },
    { writePct: 100, concurrency: 16 },
    { writePct: 10, concurrency: 1 },
    { writePct: 10, concurrency: 16 },
  ]);
});

Deno.test("the comparison table has a column pair per system, blank where not measured", () => {
  // Scenario: etcd measured, mrkv still to come.
  const table = comparisonTable([etcd], ["mrkv"]);
  assert.equal(
    table,
    [
      "| workload | conc. | etcd ops/s | etcd p50/p99 ms | mrkv ops/s | mrkv p50/p99 ms |",
      "| --- | --- | ---: | ---: | ---: | ---: |",
      "| 100% writes | 1 | 500 | 1.05 / 1.10 |  |  |",
      "| 100% writes | 16 | 2000 | 1.05 / 1.10 |  |  |",
      "| 90% reads | 1 | 900 | 0.56 / 1.01 |  |  |",
    ].join("\n"),
  );
});

Deno.test("the detail table splits reads and writes", () => {
  const lines = detailTable(etcd).split("\n");
  assert.equal(lines.length, 5);
  assert.equal(
    lines[4],
    "| 90% reads | 1 | 900 | 1.01 / 1.01 / 1.01 / 1.01 | 0.56 / 0.60 / 0.60 / 0.60 | 0 | 0 | – |",
  );
});

Deno.test("saved results are checked before they are tabulated", () => {
  assert.equal(checkMatrixResult(JSON.parse(JSON.stringify(etcd)), "etcd.json").label, "etcd");
  assert.throws(() => checkMatrixResult({ tool: "other" }, "x.json"), /x\.json: not a bench/);
  assert.throws(
    () => checkMatrixResult({ tool: "mrkv-bench", label: "a", cells: [{}] }, "y.json"),
    /y\.json: cell 0 lacks/,
  );
});

Deno.test("bench_compare runs the whole matrix against any endpoints", async () => {
  // Scenario: a 2×2 matrix of 150 ms cells against two fake mrkv stores, saved and tabulated.
  const data = new Map<string, Uint8Array>();
  const fakes = [new FakeServer("mrkv", data), new FakeServer("mrkv", data)];
  const out = await Deno.makeTempFile({ suffix: ".json" });
  try {
    const script = new URL("../bench_compare.ts", import.meta.url).pathname;
    const run = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        script,
        "--target",
        "mrkv",
        "--endpoints",
        fakes.map((f) => f.url).join(","),
        "--duration",
        "150ms",
        "--keys",
        "100",
        "--concurrency",
        "1,4",
        "--pause",
        "0s",
        "--warmup",
        "100ms",
        "--out",
        out,
        "--empty-column",
        "etcd",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(run.stdout);
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, stderr);
    // The warm-up runs first and is not one of the recorded cells.
    assert.match(
      stderr.split("\n")[0]!,
      /\[warm-up\] .*--write-pct 100 --concurrency 16 --duration 100ms/,
    );
    assert.match(stderr, /\[4\/4\]/);
    assert.match(stdout, /\| workload \| conc\. \| mrkv ops\/s \| mrkv p50\/p99 ms \| etcd ops\/s/);
    assert.match(stdout, /\| 90% reads \| 4 \| \d+ \|/);
    const saved = checkMatrixResult(JSON.parse(await Deno.readTextFile(out)), out);
    assert.deepEqual(
      saved.cells.map((c) => [c.options.writePct, c.options.concurrency, c.options.prefill]),
      [[100, 1, false], [100, 4, false], [10, 1, true], [10, 4, true]],
    );
    assert.ok(saved.cells.every((c) => c.result.errorCount === 0 && c.result.ops > 0));
    assert.ok(saved.cells.every((c) => c.result.readMisses === 0));
    assert.ok(saved.cells.every((c) => typeof c.loadAvg1m === "number"));
    assert.ok(fakes.every((f) => f.counts.put > 0 && f.counts.get > 0));
  } finally {
    await Promise.all(fakes.map((f) => f.server.shutdown()));
    await Deno.remove(out);
  }
});
