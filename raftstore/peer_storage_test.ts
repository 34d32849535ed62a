import assert from "node:assert/strict";
import { CompactedError, decodeEntry, type Entry, UnavailableError } from "../raft/mod.ts";
import { KvEngine } from "../storage/mod.ts";
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

Deno.test("peer storage: appends replace a conflicting suffix on disk and in memory, compaction drops a prefix, sizes follow", async () => {
  const engine = await KvEngine.openInMemory();
  try {
    const ps = new PeerStorage(region, { term: 5, vote: 0, commit: 5 }, {
      appliedIndex: 5,
      truncatedIndex: 5,
      truncatedTerm: 5,
    }, []);
    assert.deepEqual(ps.initialState().confState, { voters: [1], learners: [2] });
    let wb = engine.batch();
    ps.append([6, 7, 8, 9].map((i) => entry(i, 6)), wb);
    await engine.write(wb);
    assert.equal(ps.lastIndex(), 9);
    assert.equal(ps.logBytes(), 40);

    // A new leader's entries from index 8 replace 8 and 9 (and nothing after survives).
    wb = engine.batch();
    ps.append([entry(8, 7, 100)], wb);
    await engine.write(wb);
    assert.equal(ps.lastIndex(), 8);
    assert.equal(ps.term(8), 7);
    assert.equal(ps.logBytes(), 120);
    const onDisk = (await engine.raftEntries(9, 6, 100)).map(decodeEntry);
    assert.deepEqual(onDisk.map((e) => [e.index, e.term]), [[6, 6], [7, 6], [8, 7]]);

    // Raft's view of the edges.
    assert.equal(ps.term(5), 5, "the truncated entry's term is kept");
    assert.throws(() => ps.term(4), CompactedError);
    assert.throws(() => ps.term(9), UnavailableError);
    assert.throws(() => ps.entries(5, 7, Infinity), CompactedError);
    assert.throws(() => ps.entries(6, 10, Infinity), UnavailableError);
    assert.equal(ps.entries(6, 9, 1).length, 1, "at least one entry even past maxSize");

    wb = engine.batch();
    ps.compactTo(7, 6, wb);
    await engine.write(wb);
    assert.equal(ps.firstIndex(), 8);
    assert.equal(ps.term(7), 6);
    assert.equal(ps.logBytes(), 100);
    assert.deepEqual(
      await engine.raftLogBounds(9),
      { first: 8, last: 8 },
      "entries 6..7 are gone from disk",
    );

    // A restart reloads exactly the live log from the engine.
    wb = engine.batch();
    wb.putApplyState(9, ps.applyState);
    await engine.write(wb);
    const again = await PeerStorage.load(engine, region);
    assert.equal(again.firstIndex(), 8);
    assert.equal(again.lastIndex(), 8);
    assert.equal(again.logBytes(), 100);
  } finally {
    engine.close();
  }
});
