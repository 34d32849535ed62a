/**
 * A data dir of the previous version — raft entries and hard states in Deno KV, with the
 * leftovers a crash could leave there — moves to the log engine on open; a migration cut short
 * at any step finishes when run again.
 */
import assert from "node:assert/strict";
import { KvEngine } from "../engine.ts";
import { Keys } from "../keys.ts";
import { RaftLogEngine } from "./engine.ts";
import { MemFs } from "./mem_fs.ts";
import { migrateRaftLog, RaftLogMissingError, raftLogMoved } from "./migrate.ts";

const e = (n: number) => new Uint8Array([n, n, n]);

/** An old-layout engine: region 3 with a live log 6..10, a leftover below it and a fragment past it. */
async function oldLayout(): Promise<KvEngine> {
  const kv = await KvEngine.openInMemory();
  const wb = kv.batch();
  wb.putApplyState(3, { appliedIndex: 8, truncatedIndex: 5, truncatedTerm: 5 });
  wb.putHardState(3, { term: 7, vote: 2, commit: 9 });
  for (const i of [4, 6, 7, 8, 9, 10, 13]) wb.putRaftEntry(3, i, e(i));
  wb.putApplyState(4, { appliedIndex: 5, truncatedIndex: 5, truncatedTerm: 5 });
  wb.putHardState(4, { term: 5, vote: 0, commit: 5 });
  wb.putApplyState(5, { appliedIndex: 5, truncatedIndex: 5, truncatedTerm: 5 });
  await kv.write(wb);
  return kv;
}

async function assertMigrated(kv: KvEngine, log: RaftLogEngine): Promise<void> {
  assert.deepEqual(log.regionIds(), [3, 4]);
  assert.deepEqual(log.bounds(3), { first: 6, last: 10 });
  assert.deepEqual(await log.entries(3, 6, 11), [6, 7, 8, 9, 10].map(e));
  assert.deepEqual(log.hardState(3), { term: 7, vote: 2, commit: 9 });
  assert.deepEqual(log.hardState(4), { term: 5, vote: 0, commit: 5 });
  assert.equal(log.bounds(4), undefined);
  for (const id of [3, 4, 5]) {
    assert.equal(await kv.raftLogBounds(id), undefined, `no raft entries of ${id} in Deno KV`);
    assert.equal(await kv.hardState(id), undefined, `no hard state of ${id} in Deno KV`);
  }
  assert.deepEqual(await kv.applyState(3), {
    appliedIndex: 8,
    truncatedIndex: 5,
    truncatedTerm: 5,
  });
  assert.equal(
    new TextDecoder().decode((await kv.getRecord(Keys.raftLogMoved()))!),
    "done",
  );
}

Deno.test("migration: raft entries and hard states move from Deno KV to the log engine, leftovers stay behind, and it runs once", async () => {
  const kv = await oldLayout();
  const log = await RaftLogEngine.openInMemory();
  try {
    const report = await migrateRaftLog(kv, log);
    assert.deepEqual(report, { regions: 2, entries: 5, ran: true });
    await assertMigrated(kv, log);
    assert.equal((await migrateRaftLog(kv, log)).ran, false, "a migrated dir is left alone");
    // A new store has nothing to move and is marked at once.
    const fresh = await KvEngine.openInMemory();
    assert.deepEqual(await migrateRaftLog(fresh, log), { regions: 0, entries: 0, ran: true });
    assert.equal((await migrateRaftLog(fresh, log)).ran, false);
    fresh.close();
  } finally {
    kv.close();
    await log.close();
  }
});

Deno.test("migration: cut short at every log write and every Deno KV commit, it finishes when run again", async () => {
  for (let cut = 1;; cut++) {
    const kv = await oldLayout();
    const fs = new MemFs();
    let log = await RaftLogEngine.openFs(fs);
    let steps = 0;
    const step = () => {
      if (++steps === cut) throw new Error("cut");
    };
    log.beforeWrite = step;
    kv.beforeCommit = step;
    const finished = await migrateRaftLog(kv, log).then(() => true, () => false);
    kv.beforeCommit = undefined;
    // A crash: what the log had not synced is gone.
    await log.close();
    log = await RaftLogEngine.openFs(fs.crashImage({ dir: "durable" }));
    const again = await KvEngine.openInMemory();
    // Deno KV in memory cannot be reopened: carry its committed state over as it is.
    for await (const entry of kv.rawKv.list({ prefix: [] })) {
      await again.rawKv.set(entry.key, entry.value);
    }
    kv.close();
    await migrateRaftLog(again, log);
    await assertMigrated(again, log);
    again.close();
    await log.close();
    if (finished) {
      assert.ok(cut > 5, "the migration took several steps");
      break;
    }
  }
});

Deno.test("migration: a mark this version does not know is refused, and leaves the data as it was", async () => {
  const kv = await oldLayout();
  const log = await RaftLogEngine.openInMemory();
  try {
    assert.equal(await raftLogMoved(kv), false, "an old layout has not moved yet");
    await kv.write(kv.batch().put(Keys.raftLogMoved(), new TextEncoder().encode("v3")));
    await assert.rejects(raftLogMoved(kv), RaftLogMissingError);
    await assert.rejects(migrateRaftLog(kv, log), /"v3", which this version does not know/);
    assert.deepEqual(log.regionIds(), [], "nothing was copied");
    assert.deepEqual(await kv.raftLogBounds(3), { first: 4, last: 13 }, "nothing was deleted");
    await kv.write(kv.batch().delete(Keys.raftLogMoved()));
    await migrateRaftLog(kv, log);
    assert.equal(await raftLogMoved(kv), true);
  } finally {
    kv.close();
    await log.close();
  }
});
