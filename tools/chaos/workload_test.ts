import assert from "node:assert/strict";
import { HistoryRecorder } from "./history.ts";
import type { OpResult, RegisterClient } from "./register.ts";
import { finalChecks, keyNames, runClients, type WorkloadOptions } from "./workload.ts";

/** An in-memory register per key; `failFirst` answers that many operations with unknown. */
class FakeRegister implements RegisterClient {
  readonly data = new Map<string, string>();
  readonly calls: { endpoint: string; key: string; value?: string }[] = [];
  constructor(public failFirst = 0) {}

  async write(endpoint: string, key: string, value: string): Promise<OpResult> {
    await new Promise((r) => setTimeout(r, 1));
    this.calls.push({ endpoint, key, value });
    if (this.failFirst-- > 0) return { outcome: "unknown", value: null, error: "timeout" };
    this.data.set(key, value);
    return { outcome: "ok", value: null };
  }

  async read(endpoint: string, key: string): Promise<OpResult> {
    await new Promise((r) => setTimeout(r, 1));
    this.calls.push({ endpoint, key });
    if (this.failFirst-- > 0) return { outcome: "fail", value: null, error: "503 NoLeader" };
    return { outcome: "ok", value: this.data.get(key) ?? null };
  }
}

function options(client: RegisterClient, recorder: HistoryRecorder): WorkloadOptions {
  const t0 = performance.now();
  return {
    clients: 5,
    keys: keyNames(4),
    stores: ["s1", "s2", "s3"],
    endpoint: (s) => `http://${s}`,
    readFraction: 0.5,
    client,
    recorder,
    seed: 3,
    now: () => performance.now() - t0,
  };
}

Deno.test("key names sort like their indexes", () => {
  assert.deepEqual(keyNames(3), ["k00", "k01", "k02"]);
  assert.equal(keyNames(20)[19], "k19");
  assert.equal(keyNames(150)[7], "k007");
});

Deno.test("clients are bound round-robin, write unique values and record every operation", async () => {
  const fake = new FakeRegister();
  const recorder = new HistoryRecorder();
  const stop = new AbortController();
  const done = runClients(options(fake, recorder), stop.signal);
  // Run until enough operations happened (polled: a loaded machine may be slow to get there).
  const deadline = Date.now() + 10_000;
  while (fake.calls.length <= 25 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  stop.abort();
  await done;
  const ops = recorder.ops();
  assert.ok(ops.length > 20, `only ${ops.length} ops`);
  assert.equal(ops.length, fake.calls.length);
  for (const op of ops) {
    assert.equal(op.store, (op.client % 3) + 1, "client i talks to store i mod 3");
    assert.ok(op.invoke <= op.end);
    assert.equal(op.outcome, "ok");
  }
  const values = ops.filter((o) => o.kind === "write").map((o) => o.value);
  assert.equal(new Set(values).size, values.length, "every written value is unique");
  assert.ok(values.every((v) => /^c[0-4]-\d+$/.test(v!)));
  assert.ok(ops.some((o) => o.kind === "read") && values.length > 0);
  // Per client, operations run one at a time.
  for (let c = 0; c < 5; c++) {
    const mine = ops.filter((o) => o.client === c);
    for (let i = 1; i < mine.length; i++) assert.ok(mine[i]!.invoke >= mine[i - 1]!.end);
  }
});

Deno.test("final checks retry each store until a write and every key's read succeed", async () => {
  const fake = new FakeRegister(4);
  const recorder = new HistoryRecorder();
  const checks = await finalChecks(options(fake, recorder), 100, 5_000);
  assert.deepEqual(checks.map((c) => [c.store, c.recoveredMs !== null]), [
    ["s1", true],
    ["s2", true],
    ["s3", true],
  ]);
  const ops = recorder.ops();
  assert.equal(ops.filter((o) => o.outcome !== "ok").length, 4);
  assert.deepEqual([...new Set(ops.map((o) => o.client))].sort(), [100, 101, 102]);
  for (const store of [1, 2, 3]) {
    const reads = ops.filter((o) => o.store === store && o.kind === "read" && o.outcome === "ok");
    assert.deepEqual(reads.map((o) => o.key), keyNames(4));
  }

  const never = new FakeRegister(Infinity);
  const failed = await finalChecks(options(never, new HistoryRecorder()), 100, 300);
  assert.ok(
    failed.every((c) => c.recoveredMs === null && /write k0\d: unknown/.test(c.lastError!)),
  );
});
