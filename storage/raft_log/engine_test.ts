import assert from "node:assert/strict";
import { RaftLogEngine } from "./engine.ts";
import { MemFs } from "./mem_fs.ts";
import { dumpEngine, Model, Workload } from "./_model.ts";

const bytes = (...xs: number[]) => new Uint8Array(xs);
const text = (s: string) => new TextEncoder().encode(s);

Deno.test("raft log: appends, a conflicting suffix, hard state, compaction and removal, read back and after reopening from disk", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-raftlog-" });
  try {
    let log = await RaftLogEngine.open(dir);
    await log.write(log.batch().append(7, 6, [text("a"), text("b"), text("c"), text("d")]));
    await log.write(
      log.batch().putHardState(7, { term: 6, vote: 2, commit: 7 }).append(9, 6, [
        text("x"),
      ]),
    );
    assert.deepEqual(log.bounds(7), { first: 6, last: 9 });
    // A new leader's entries from 8 replace 8 and 9; nothing after them survives.
    await log.write(log.batch().append(7, 8, [text("B")]));
    assert.deepEqual(log.bounds(7), { first: 6, last: 8 });
    assert.deepEqual(
      (await log.entries(7, 0, 100)).map((e) => new TextDecoder().decode(e)),
      ["a", "b", "B"],
    );
    assert.deepEqual(await log.entries(7, 7, 8), [text("b")]);
    assert.deepEqual(log.hardState(7), { term: 6, vote: 2, commit: 7 });
    // Compaction drops a prefix; clean drops a region (entries and hard state).
    await log.write(log.batch().compact(7, 6).clean(9));
    assert.deepEqual(log.bounds(7), { first: 7, last: 8 });
    assert.equal(log.bounds(9), undefined);
    assert.equal(log.hardState(9), undefined);
    assert.deepEqual(log.regionIds(), [7]);
    // An append past the end leaves a hole, which reads refuse (a store cleans first).
    await log.write(log.batch().append(7, 20, [text("z")]));
    assert.deepEqual(log.bounds(7), { first: 7, last: 20 });
    await assert.rejects(log.entries(7, 7, 21), /no entry 9 between entries/);
    await log.write(log.batch().clean(7).putHardState(7, { term: 7, vote: 0, commit: 19 }));
    await log.write(log.batch().append(7, 20, [text("z")]));
    assert.deepEqual(log.bounds(7), { first: 20, last: 20 });
    assert.deepEqual(log.hardState(7), { term: 7, vote: 0, commit: 19 });
    await log.write(log.batch().append(7, 21, [bytes(), bytes(0, 0, 0)]));
    const before = await dumpEngine(log);
    await log.close();

    log = await RaftLogEngine.open(dir);
    assert.equal(await dumpEngine(log), before, "the reopened log holds the same");
    assert.equal(log.recovery.truncated.length, 0);
    assert.deepEqual(await log.entries(7, 20, 23), [text("z"), bytes(), bytes(0, 0, 0)]);
    await log.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("raft log: writes made while one is in flight share one file write and one fdatasync", async () => {
  const log = await RaftLogEngine.openInMemory();
  try {
    const writes = Array.from(
      { length: 20 },
      (_, i) => log.write(log.batch().append(i + 1, 1, [text(`entry ${i}`)])),
    );
    await Promise.all(writes);
    // The first write goes alone; the 19 queued behind it go together.
    assert.equal(log.stats.batches, 20);
    assert.equal(log.stats.writes, 2);
    assert.equal(log.stats.syncs, 2);
    assert.equal(log.regionIds().length, 20);
  } finally {
    await log.close();
  }
});

Deno.test("raft log: an unsynced write is durable only once a later write syncs", async () => {
  const fs = new MemFs();
  const log = await RaftLogEngine.openFs(fs);
  await log.write(log.batch().append(1, 1, [text("synced")]));
  await log.write(log.batch().compact(1, 1).append(2, 1, [text("not yet")]), { sync: false });
  const lost = await RaftLogEngine.openFs(fs.crashImage({ dir: "durable" }));
  assert.deepEqual(lost.bounds(1), { first: 1, last: 1 });
  assert.equal(lost.bounds(2), undefined);
  await lost.close();
  await log.sync();
  const kept = await RaftLogEngine.openFs(fs.crashImage({ dir: "durable" }));
  assert.equal(kept.bounds(1), undefined);
  assert.deepEqual(kept.bounds(2), { first: 1, last: 1 });
  await kept.close();
  await log.close();
});

Deno.test("raft log: values are checked before they are queued", async () => {
  const log = await RaftLogEngine.openInMemory();
  try {
    assert.throws(() => log.batch().append(-1, 1, [text("x")]), RangeError);
    assert.throws(() => log.batch().append(1, 2 ** 53, [text("x")]), RangeError);
    assert.throws(() => log.batch().putHardState(1, { term: 1.5, vote: 0, commit: 0 }), RangeError);
  } finally {
    await log.close();
  }
});

Deno.test("raft log: after a failed write the engine refuses writes until reopened", async () => {
  const fs = new MemFs();
  const log = await RaftLogEngine.openFs(fs);
  await log.write(log.batch().append(1, 1, [text("a")]));
  log.beforeWrite = () => {
    throw new Error("disk on fire");
  };
  await assert.rejects(log.write(log.batch().append(1, 2, [text("b")])), /disk on fire/);
  log.beforeWrite = undefined;
  await assert.rejects(log.write(log.batch().append(1, 2, [text("b")])), /refuses writes/);
  await log.close();
  const again = await RaftLogEngine.openFs(fs);
  assert.deepEqual(again.bounds(1), { first: 1, last: 1 });
  await again.write(again.batch().append(1, 2, [text("b")]));
  assert.deepEqual(again.bounds(1), { first: 1, last: 2 });
  await again.close();
});

Deno.test("raft log: garbage collection deletes dead files, rewrites live records, squeezes the rewrite queue, and the log reads the same before and after reopening", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-raftlog-gc-" });
  const policy = {
    segmentBytes: 4096,
    purgeThresholdBytes: 32 * 1024,
    rewriteRatio: 0.5,
    squeezeMinBytes: 8 * 1024,
    copyBatchBytes: 1024,
  };
  try {
    const log = await RaftLogEngine.open(dir, policy);
    const model = new Model();
    const work = new Workload(7, 8, 300);
    for (let i = 0; i < 600; i++) {
      const batch = log.batch();
      model.apply(work.fill(batch));
      await log.write(batch);
      if (i % 50 === 49) assert.equal(await dumpEngine(log), model.dump(), `after batch ${i}`);
    }
    await log.gcIdle();
    const { gc } = log.stats;
    assert.ok(gc.deletedFiles + gc.rewrittenFiles > 20, `files collected: ${JSON.stringify(gc)}`);
    assert.ok(gc.rewrittenFiles > 0, `some files were rewritten: ${JSON.stringify(gc)}`);
    assert.ok(gc.squeezes > 0, `the rewrite queue was squeezed: ${JSON.stringify(gc)}`);
    const files = log.files();
    const total = [...files.append, ...files.rewrite].reduce((n, f) => n + f.bytes, 0);
    assert.ok(total < 64 * 1024, `space is reclaimed: ${total} bytes in files`);
    assert.equal(await dumpEngine(log), model.dump());
    await log.close();
    const again = await RaftLogEngine.open(dir, policy);
    assert.equal(await dumpEngine(again), model.dump(), "replay after GC gives the same log");
    await again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
