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

    // Compaction refuses a term that does not match the log, and anything outside it.
    assert.equal(ps.compactTo(7, 5), undefined);
    assert.equal(ps.compactTo(9, 7), undefined);
    assert.equal(ps.compactTo(5, 5), undefined);
    assert.equal(ps.firstIndex(), 6);
    assert.deepEqual(ps.compactTo(7, 6), { lo: 6, hi: 8 });
    assert.equal(ps.firstIndex(), 8);
    assert.equal(ps.term(7), 6);
    assert.equal(ps.logBytes(), 100);

    // The truncated index is persisted first; the entries below it are deleted later. A restart
    // between the two loads exactly the live log.
    wb = engine.batch();
    wb.putApplyState(9, ps.applyState);
    await engine.write(wb);
    const early = await PeerStorage.load(engine, region);
    assert.equal(early.firstIndex(), 8);
    assert.equal(early.lastIndex(), 8);
    await engine.deleteRaftLog(9, 6, 8);
    assert.deepEqual(
      await engine.raftLogBounds(9),
      { first: 8, last: 8 },
      "entries 6..7 are gone from disk",
    );
    const again = await PeerStorage.load(engine, region);
    assert.equal(again.firstIndex(), 8);
    assert.equal(again.lastIndex(), 8);
    assert.equal(again.logBytes(), 100);
  } finally {
    engine.close();
  }
});

Deno.test("peer storage: a conflicting append cut after any engine commit leaves one consistent log", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-append-crash-" });
  try {
    // 30 old entries of term 6 at 6..35; a new leader (term 7) replaces everything from 11 with
    // 10 entries. Commits of 7 mutations, cut after each one in turn.
    for (let cut = 1;; cut++) {
      const engine = await KvEngine.open(`${dir}/${cut}`, { commitLimits: { maxMutations: 7 } });
      const ps = new PeerStorage(region, { term: 6, vote: 0, commit: 5 }, {
        appliedIndex: 5,
        truncatedIndex: 5,
        truncatedTerm: 5,
      }, []);
      let wb = engine.batch();
      ps.append(Array.from({ length: 30 }, (_, i) => entry(i + 6, 6)), wb);
      wb.putApplyState(9, ps.applyState);
      await engine.write(wb);
      let commits = 0;
      engine.afterCommit = () => {
        if (++commits === cut) throw new Error("cut");
      };
      wb = engine.batch();
      ps.append(Array.from({ length: 10 }, (_, i) => entry(i + 11, 7)), wb);
      const finished = await engine.write(wb).then(() => true, () => false);
      engine.close();
      const reopened = await KvEngine.open(`${dir}/${cut}`);
      const loaded = await PeerStorage.load(reopened, region);
      const terms = loaded.entries(6, loaded.lastIndex() + 1, Infinity).map((e) => e.term);
      reopened.close();
      // Either a prefix of the old log or the old log up to 10 and a prefix of the new entries:
      // never an old entry after a new one.
      const firstNew = terms.indexOf(7);
      const oldPart = firstNew < 0 ? terms : terms.slice(0, firstNew);
      assert.ok(oldPart.every((t) => t === 6), `cut ${cut}: ${terms}`);
      if (firstNew >= 0) {
        assert.equal(firstNew, 5, `cut ${cut}: new entries start at 11: ${terms}`);
        assert.ok(terms.slice(firstNew).every((t) => t === 7), `cut ${cut}: ${terms}`);
      }
      if (finished) {
        assert.deepEqual(terms, [6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]);
        assert.ok(cut > 3, "the append took several commits");
        break;
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
