/** MemoryStorage: terms and entries around the compaction point, append/truncate, snapshots. */
import assert from "node:assert/strict";
import {
  CompactedError,
  SnapshotOutOfDateError,
  SnapshotTemporarilyUnavailableError,
  UnavailableError,
} from "./errors.ts";
import { MemoryStorage } from "./storage.ts";
import { ent } from "./testing/helpers.ts";

/** Storage compacted to 3, holding entries 4 and 5 (terms 4, 5). */
function compactedStorage(): MemoryStorage {
  const s = new MemoryStorage();
  s.append([ent(1, 1), ent(2, 2), ent(3, 3), ent(4, 4), ent(5, 5)]);
  s.createSnapshot(3, { voters: [1], learners: [] }, new Uint8Array());
  s.compact(3);
  return s;
}

Deno.test("term: the compaction point's term is kept; older is compacted, newer unavailable", () => {
  const s = compactedStorage();
  assert.throws(() => s.term(2), CompactedError);
  assert.equal(s.term(3), 3);
  assert.equal(s.term(5), 5);
  assert.throws(() => s.term(6), UnavailableError);
  assert.equal(s.firstIndex(), 4);
  assert.equal(s.lastIndex(), 5);
});

Deno.test("entries: bounds are checked and maxSize limits the result to at least one entry", () => {
  const s = compactedStorage();
  assert.throws(() => s.entries(3, 5, Infinity), CompactedError);
  assert.throws(() => s.entries(4, 7, Infinity), UnavailableError);
  assert.deepEqual(s.entries(4, 6, Infinity).map((e) => e.index), [4, 5]);
  assert.deepEqual(s.entries(4, 6, 1).map((e) => e.index), [4]);
  assert.deepEqual(s.entries(4, 6, 33).map((e) => e.index), [4, 5]);
});

Deno.test("append truncates a conflicting suffix, skips compacted entries, and refuses a gap", () => {
  const s = compactedStorage();
  s.append([ent(5, 6), ent(6, 6)]);
  assert.deepEqual([s.term(5), s.term(6)], [6, 6]);
  s.append([ent(2, 2), ent(3, 3), ent(4, 4)]); // partly compacted: only 4 is used, truncating 5, 6
  assert.equal(s.lastIndex(), 4);
  assert.throws(() => s.append([ent(9, 9)]), /missing log entries/);
});

Deno.test("snapshots: create, compact, apply; older snapshots are refused; unavailable on demand", () => {
  const s = compactedStorage();
  assert.equal(s.snapshot().metadata.index, 3);
  assert.throws(
    () => s.createSnapshot(2, { voters: [], learners: [] }, new Uint8Array()),
    SnapshotOutOfDateError,
  );
  assert.throws(() => s.compact(2), CompactedError);
  s.applySnapshot({
    metadata: { index: 10, term: 7, confState: { voters: [1, 2], learners: [3] } },
    data: new Uint8Array(),
  });
  assert.equal(s.firstIndex(), 11);
  assert.equal(s.lastIndex(), 10);
  assert.equal(s.term(10), 7);
  assert.deepEqual(s.initialState().confState, { voters: [1, 2], learners: [3] });
  assert.throws(
    () =>
      s.applySnapshot({
        metadata: { index: 9, term: 7, confState: { voters: [], learners: [] } },
        data: new Uint8Array(),
      }),
    SnapshotOutOfDateError,
  );
  s.snapshotUnavailable = true;
  assert.throws(() => s.snapshot(), SnapshotTemporarilyUnavailableError);
});

Deno.test("initialState returns the persisted hard state and configuration", () => {
  const s = new MemoryStorage([1, 2, 3]);
  s.setHardState({ term: 3, vote: 2, commit: 0 });
  assert.deepEqual(s.initialState(), {
    hardState: { term: 3, vote: 2, commit: 0 },
    confState: { voters: [1, 2, 3], learners: [] },
  });
  s.setConfState({ voters: [1], learners: [] });
  assert.deepEqual(s.initialState().confState, { voters: [1], learners: [] });
});
