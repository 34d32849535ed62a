import assert from "node:assert/strict";
import { CompactedError, type Entry, UnavailableError } from "../raft/mod.ts";
import { CorruptionError, KvEngine, MemFs, RaftLogEngine } from "../storage/mod.ts";
import type { Region } from "../proto/metapb.ts";
import { PeerStorage } from "./peer_storage.ts";

const region: Region = {
  id: 9,
  startKey: new Uint8Array(),
  endKey: new Uint8Array(),
  epoch: { confVer: 1, version: 1 },
  peers: [{ id: 1, storeId: 1, role: "Voter" }, { id: 2, storeId: 2, role: "Learner" }],
};

const entry = (index: number, term: number, size = 10): Entry => ({
  index,
  term,
  type: "Normal",
  data: new Uint8Array(size),
});

const fresh = () =>
  new PeerStorage(region, { term: 5, vote: 0, commit: 5 }, {
    appliedIndex: 5,
    truncatedIndex: 5,
    truncatedTerm: 5,
  }, []);

Deno.test("peer storage: appends replace a conflicting suffix in the log and in memory, compaction drops a prefix, sizes follow", async () => {
  const engine = await KvEngine.openInMemory();
  const log = await RaftLogEngine.openInMemory();
  try {
    const ps = fresh();
    assert.deepEqual(ps.initialState().confState, { voters: [1], learners: [2] });
    let lb = log.batch();
    ps.append([6, 7, 8, 9].map((i) => entry(i, 6)), lb);
    ps.setHardState({ term: 6, vote: 1, commit: 7 }, lb);
    await log.write(lb);
    assert.equal(ps.lastIndex(), 9);
    assert.equal(ps.logBytes(), 40);

    // A new leader's entries from index 8 replace 8 and 9 (and nothing after survives).
    lb = log.batch();
    ps.append([entry(8, 7, 100)], lb);
    await log.write(lb);
    assert.equal(ps.lastIndex(), 8);
    assert.equal(ps.term(8), 7);
    assert.equal(ps.logBytes(), 120);
    assert.deepEqual(log.bounds(9), { first: 6, last: 8 });

    // Raft's view of the edges.
    assert.equal(ps.term(5), 5, "the truncated entry's term is kept");
    assert.throws(() => ps.term(4), CompactedError);
    assert.throws(() => ps.term(9), UnavailableError);
    assert.throws(() => ps.entries(5, 7, Infinity), CompactedError);
    assert.throws(() => ps.entries(6, 10, Infinity), UnavailableError);
    assert.equal(ps.entries(6, 9, 1).length, 1, "at least one entry even past maxSize");

    // Compaction refuses a term that does not match the log, and anything outside it.
    assert.equal(ps.compactTo(7, 5), undefined);
    assert.equal(ps.compactTo(9, 7), undefined);
    assert.equal(ps.compactTo(5, 5), undefined);
    assert.equal(ps.firstIndex(), 6);
    assert.deepEqual(ps.compactTo(7, 6), { lo: 6, hi: 8 });
    assert.equal(ps.firstIndex(), 8);
    assert.equal(ps.term(7), 6);
    assert.equal(ps.logBytes(), 100);

    // The truncated index is persisted first; the log drops the entries below it later. A
    // restart between the two loads exactly the live log.
    await engine.write(engine.batch().putApplyState(9, { ...ps.applyState, appliedIndex: 7 }));
    const early = await PeerStorage.load(engine, log, region);
    assert.equal(early.firstIndex(), 8);
    assert.equal(early.lastIndex(), 8);
    assert.deepEqual(early.hardState, { term: 6, vote: 1, commit: 7 });
    await log.write(log.batch().compact(9, 7));
    assert.deepEqual(log.bounds(9), { first: 8, last: 8 }, "entries 6..7 are gone from the log");
    const again = await PeerStorage.load(engine, log, region);
    assert.equal(again.firstIndex(), 8);
    assert.equal(again.lastIndex(), 8);
    assert.equal(again.logBytes(), 100);
    assert.equal(again.term(8), 7);
  } finally {
    engine.close();
    await log.close();
  }
});

Deno.test("peer storage: a conflicting append cut at any byte leaves the old log or the new one, never a mix", async () => {
  const engine = await KvEngine.openInMemory();
  try {
    await engine.write(engine.batch().putApplyState(9, fresh().applyState));
    const fs = new MemFs();
    const log = await RaftLogEngine.openFs(fs);
    const ps = fresh();
    let lb = log.batch();
    ps.append(Array.from({ length: 30 }, (_, i) => entry(i + 6, 6)), lb);
    await log.write(lb);
    // A new leader (term 7) replaces everything from 11 with 10 entries; the write is cut.
    lb = log.batch();
    ps.append(Array.from({ length: 10 }, (_, i) => entry(i + 11, 7)), lb);
    await log.write(lb, { sync: false });
    await log.close();
    const outcomes = new Set<string>();
    for (let keep = 0;; keep++) {
      const image = fs.crashImage({ dir: "durable", keep: (_, n) => Math.min(n, keep) });
      const reopened = await RaftLogEngine.openFs(image);
      const loaded = await PeerStorage.load(engine, reopened, region);
      const terms = loaded.entries(6, loaded.lastIndex() + 1, Infinity).map((e) => e.term);
      await reopened.close();
      const old = terms.length === 30 && terms.every((t) => t === 6);
      const now = terms.join() === [...Array(5).fill(6), ...Array(10).fill(7)].join();
      assert.ok(old || now, `keeping ${keep} unsynced bytes: ${terms}`);
      outcomes.add(old ? "old" : "new");
      if (now) break;
    }
    assert.deepEqual([...outcomes], ["old", "new"]);
  } finally {
    engine.close();
  }
});

Deno.test("peer storage: loading after a crash between the log write and the Deno KV write of a pass", async () => {
  const engine = await KvEngine.openInMemory();
  const log = await RaftLogEngine.openInMemory();
  try {
    // Deno KV's apply landed, the log's hard state of the same pass did not: the commit index
    // moves up to what was applied (it was committed, and its entries are in the log).
    await engine.write(
      engine.batch().putApplyState(9, { appliedIndex: 8, truncatedIndex: 5, truncatedTerm: 5 }),
    );
    const lb = log.batch();
    fresh().append([6, 7, 8].map((i) => entry(i, 6)), lb);
    lb.putHardState(9, { term: 6, vote: 1, commit: 6 });
    await log.write(lb);
    const ps = await PeerStorage.load(engine, log, region);
    assert.deepEqual(ps.hardState, { term: 6, vote: 1, commit: 8 });

    // A region created by a split whose first hard state was lost starts from its truncated
    // entry, as the lost hard state said.
    await engine.write(
      engine.batch().putApplyState(10, { appliedIndex: 5, truncatedIndex: 5, truncatedTerm: 5 }),
    );
    const split = await PeerStorage.load(engine, log, { ...region, id: 10 });
    assert.deepEqual(split.hardState, { term: 5, vote: 0, commit: 5 });
    assert.equal(split.lastIndex(), 5);

    // Entries missing between the truncated index and the log's first entry are corruption.
    await engine.write(
      engine.batch().putApplyState(11, { appliedIndex: 5, truncatedIndex: 5, truncatedTerm: 5 }),
    );
    await log.write(log.batch().append(11, 8, [new Uint8Array(1)]));
    await assert.rejects(
      PeerStorage.load(engine, log, { ...region, id: 11 }),
      (e) => e instanceof CorruptionError && /entries 6\.\.7 are missing/.test(e.message),
    );
  } finally {
    engine.close();
    await log.close();
  }
});
