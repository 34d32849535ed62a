import assert from "node:assert/strict";
import { keyFor, makeTarget, makeValue, type TargetKind } from "./targets.ts";
import { runLoad, type RunOptions, seededRandom } from "./run.ts";
import { FakeServer } from "./_fake_server.ts";

async function withFakes(
  kind: TargetKind,
  n: number,
  failEvery: number,
  fn: (fakes: FakeServer[], data: Map<string, Uint8Array>) => Promise<void>,
): Promise<void> {
  const data = new Map<string, Uint8Array>();
  const fakes = Array.from({ length: n }, () => new FakeServer(kind, data, failEvery));
  try {
    await fn(fakes, data);
  } finally {
    await Promise.all(fakes.map((f) => f.server.shutdown()));
  }
}

function options(kind: TargetKind, fakes: FakeServer[], more: Partial<RunOptions>): RunOptions {
  return {
    target: makeTarget({ kind, value: makeValue(128) }),
    endpoints: fakes.map((f) => f.url),
    writePct: 100,
    concurrency: 4,
    keys: 50,
    durationMs: 30_000,
    prefill: false,
    timeoutMs: 5000,
    seed: 1,
    ...more,
  };
}

for (const kind of ["mrkv", "etcd"] as const) {
  Deno.test(`${kind}: a count-bounded write run sends exactly N puts, round-robin`, async () => {
    // Scenario: 200 writes at concurrency 4 against two endpoints of one fake cluster.
    await withFakes(kind, 2, 0, async (fakes, data) => {
      const r = await runLoad(options(kind, fakes, { requests: 200 }));
      assert.equal(r.stoppedBy, "requests");
      assert.equal(r.attempted, 200);
      assert.equal(r.ops, 200);
      assert.equal(r.writes.count, 200);
      assert.equal(r.reads.count, 0);
      assert.equal(r.errorCount, 0);
      assert.deepEqual(fakes.map((f) => f.counts), [
        { put: 100, get: 0, other: 0 },
        { put: 100, get: 0, other: 0 },
      ]);
      assert.ok(r.opsPerSec > 0);
      assert.ok(r.writes.p50Ms > 0 && r.writes.p50Ms <= r.writes.p99Ms);
      assert.ok(r.writes.p99Ms <= r.writes.maxMs);
      // The value arrived intact, whatever the encoding on the wire.
      const [someKey] = data.keys();
      assert.deepEqual(data.get(someKey!), makeValue(128));
    });
  });

  Deno.test(`${kind}: prefill writes every key once, then reads all hit`, async () => {
    // Scenario: 90% reads after prefill of a 50-key space; no read may miss.
    await withFakes(kind, 3, 0, async (fakes, data) => {
      const r = await runLoad(options(kind, fakes, { writePct: 10, requests: 300, prefill: true }));
      assert.deepEqual(
        { keys: r.prefill?.keys, written: r.prefill?.written, failed: r.prefill?.failed },
        { keys: 50, written: 50, failed: 0 },
      );
      assert.equal(data.size, 50);
      assert.equal(r.ops, 300);
      assert.equal(r.readMisses, 0);
      assert.equal(r.all.count, 300);
      assert.ok(r.all.maxMs === Math.max(r.reads.maxMs, r.writes.maxMs));
      const puts = fakes.reduce((s, f) => s + f.counts.put, 0);
      const gets = fakes.reduce((s, f) => s + f.counts.get, 0);
      assert.equal(puts, 50 + r.writes.count);
      assert.equal(gets, r.reads.count);
      // 10% writes of 300, give or take what a seeded coin gives.
      assert.ok(r.writes.count > 10 && r.writes.count < 60, `writes ${r.writes.count}`);
    });
  });

  Deno.test(`${kind}: reads of absent keys are misses, not errors`, async () => {
    await withFakes(kind, 1, 0, async (fakes) => {
      const r = await runLoad(options(kind, fakes, { writePct: 0, requests: 20 }));
      assert.equal(r.reads.count, 20);
      assert.equal(r.readMisses, 20);
      assert.equal(r.errorCount, 0);
    });
  });

  Deno.test(`${kind}: server errors are counted by kind and kept out of the histograms`, async () => {
    // Scenario: every 4th request fails like a leader change; the run goes on.
    await withFakes(kind, 1, 4, async (fakes) => {
      const r = await runLoad(options(kind, fakes, { requests: 40, concurrency: 1 }));
      assert.equal(r.attempted, 40);
      assert.equal(r.errorCount, 10);
      assert.equal(r.ops, 30);
      assert.equal(r.writes.count, 30);
      assert.equal(r.errors.length, 1);
      assert.equal(r.errors[0]!.kind, kind === "mrkv" ? "503 NotLeader" : "503 grpc 14");
      assert.equal(r.errors[0]!.count, 10);
    });
  });
}

Deno.test("a time-bounded run stops near its deadline", async () => {
  // Scenario: 300 ms at concurrency 2, no count bound.
  await withFakes("mrkv", 1, 0, async (fakes) => {
    const r = await runLoad(options("mrkv", fakes, { durationMs: 300, concurrency: 2 }));
    assert.equal(r.stoppedBy, "duration");
    assert.ok(r.elapsedMs >= 300 && r.elapsedMs < 2000, `elapsed ${r.elapsedMs}`);
    assert.ok(r.ops > 0);
  });
});

Deno.test("a rate paces requests at even intervals, whatever the concurrency", async () => {
  // Scenario: 40 requests/s for 500 ms from 4 clients: slots at 0, 25, …, 475 ms, so 20
  // requests at most (a fake server answers in well under a millisecond; unpaced, the same run
  // sends hundreds).
  await withFakes("mrkv", 2, 0, async (fakes) => {
    const t0 = performance.now();
    const r = await runLoad(options("mrkv", fakes, { durationMs: 500, concurrency: 4, rate: 40 }));
    assert.equal(r.stoppedBy, "duration");
    assert.ok(r.attempted <= 20 && r.attempted >= 12, `attempted ${r.attempted}`);
    assert.equal(fakes[0]!.counts.put + fakes[1]!.counts.put, r.attempted);
    assert.ok(performance.now() - t0 >= 450, `took ${performance.now() - t0} ms`);
    assert.ok(r.opsPerSec <= 45, `${r.opsPerSec} ops/s`);
  });
});

Deno.test("an unreachable endpoint gives network errors, bounded and quickly", async () => {
  // Scenario: a port nothing listens on (a server started and shut down at once).
  const dead = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(),
  );
  const url = `http://127.0.0.1:${dead.addr.port}`;
  await dead.shutdown();
  const r = await runLoad({
    ...options("mrkv", [], { requests: 5, concurrency: 1 }),
    endpoints: [url],
  });
  assert.equal(r.ops, 0);
  assert.equal(r.errorCount, 5);
  assert.equal(r.errors[0]?.kind, "network");
});

Deno.test("a slow server trips the per-request timeout", async () => {
  // Scenario: the server answers after 300 ms; the client gives up after 50 ms.
  const slow = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async () => {
    await new Promise((resolve) => setTimeout(resolve, 300));
    return new Response(null, { status: 204 });
  });
  try {
    const r = await runLoad({
      ...options("mrkv", [], { requests: 2, concurrency: 2, timeoutMs: 50 }),
      endpoints: [`http://127.0.0.1:${slow.addr.port}`],
    });
    assert.equal(r.errorCount, 2);
    assert.equal(r.errors[0]?.kind, "timeout");
  } finally {
    await slow.shutdown();
  }
});

Deno.test("the same seed gives the same sequence of keys and operations", () => {
  const a = seededRandom(42);
  const b = seededRandom(42);
  const c = seededRandom(43);
  const seqA = Array.from({ length: 5 }, () => a());
  assert.deepEqual(seqA, Array.from({ length: 5 }, () => b()));
  assert.notDeepEqual(seqA, Array.from({ length: 5 }, () => c()));
  assert.ok(seqA.every((x) => x >= 0 && x < 1));
});

Deno.test("keys are fixed-width so they sort like their indexes", () => {
  assert.equal(keyFor(7), "key0000000007");
  assert.ok(keyFor(9) < keyFor(10));
});
