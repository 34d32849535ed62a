/** RaftLog and its unstable tail: conflicts, appends, commit/apply cursors, slicing, restore. */
import assert from "node:assert/strict";
import { CompactedError, RaftInvariantError } from "./errors.ts";
import { RaftLog } from "./log.ts";
import { SILENT_LOGGER } from "./logger.ts";
import { Unstable } from "./log_unstable.ts";
import { MemoryStorage } from "./storage.ts";
import { ent, entsWithTerms } from "./testing/helpers.ts";

function logWith(terms: number[]): RaftLog {
  const l = new RaftLog(new MemoryStorage(), SILENT_LOGGER);
  l.append(entsWithTerms(...terms));
  return l;
}

Deno.test("findConflict: first entry whose term differs or that is missing; 0 if all present", () => {
  const l = logWith([1, 2, 3]);
  assert.equal(l.findConflict([]), 0);
  assert.equal(l.findConflict([ent(1, 1), ent(2, 2), ent(3, 3)]), 0);
  assert.equal(l.findConflict([ent(2, 2), ent(3, 3), ent(4, 4)]), 4);
  assert.equal(l.findConflict([ent(2, 2), ent(3, 4)]), 3);
  assert.equal(l.findConflict([ent(1, 4)]), 1);
});

Deno.test("maybeAppend: rejects on mismatch, keeps matching entries, truncates at the first conflict", () => {
  const l = logWith([1, 2, 3]);
  l.commitTo(1);
  assert.equal(l.maybeAppend(3, 2, 3, [ent(4, 4)]), undefined, "previous term mismatch");
  assert.equal(l.maybeAppend(3, 3, 3, [ent(4, 4)]), 4);
  assert.equal(l.committed, 3);
  assert.equal(l.maybeAppend(1, 1, 3, [ent(2, 2)]), 2, "stale append keeps the rest");
  assert.equal(l.lastIndex(), 4);
  assert.equal(l.maybeAppend(3, 3, 10, [ent(4, 5), ent(5, 5)]), 5);
  assert.deepEqual(l.allEntries().map((e) => e.term), [1, 2, 3, 5, 5]);
  assert.equal(l.committed, 5, "commit is capped at the last new entry");
  assert.throws(
    () => l.maybeAppend(0, 0, 5, [ent(1, 9)]),
    RaftInvariantError,
    "never truncate committed",
  );
});

Deno.test("isUpToDate compares last term first, then last index", () => {
  const l = logWith([1, 2, 3]);
  assert.equal(l.isUpToDate(2, 4), true);
  assert.equal(l.isUpToDate(3, 3), true);
  assert.equal(l.isUpToDate(4, 3), true);
  assert.equal(l.isUpToDate(2, 3), false);
  assert.equal(l.isUpToDate(9, 2), false);
});

Deno.test("maybeCommit only commits an index whose entry is of the given term", () => {
  const l = logWith([1, 2, 2]);
  assert.equal(l.maybeCommit(3, 1), false);
  assert.equal(l.maybeCommit(3, 2), true);
  assert.equal(l.committed, 3);
  assert.equal(l.maybeCommit(2, 2), false, "never decreases");
});

Deno.test("nextEnts spans storage and the unstable tail; appliedTo moves the cursor", () => {
  const s = new MemoryStorage();
  s.append(entsWithTerms(1, 1));
  const l = new RaftLog(s, SILENT_LOGGER);
  l.append([ent(3, 2), ent(4, 2)]);
  l.commitTo(3);
  assert.deepEqual(l.nextEnts().map((e) => e.index), [1, 2, 3]);
  l.appliedTo(2);
  assert.deepEqual(l.nextEnts().map((e) => e.index), [3]);
  assert.throws(() => l.appliedTo(4), RaftInvariantError);
});

Deno.test("slice and term across compaction; findConflictByTerm", () => {
  const s = new MemoryStorage();
  s.append(entsWithTerms(1, 1, 2, 2, 3));
  s.compact(2);
  const l = new RaftLog(s, SILENT_LOGGER);
  assert.throws(() => l.slice(2, 4, Infinity), CompactedError);
  assert.equal(l.term(2), 1);
  assert.throws(() => l.term(1), CompactedError);
  assert.equal(l.term(9), 0);
  assert.deepEqual(l.slice(3, 6, Infinity).map((e) => e.index), [3, 4, 5]);
  assert.deepEqual(l.findConflictByTerm(5, 2), { index: 4, term: 2 });
  assert.deepEqual(l.findConflictByTerm(5, 1), { index: 2, term: 1 });
  assert.deepEqual(l.findConflictByTerm(5, 0), { index: 1, term: 0 }, "compacted: term unknown");
});

Deno.test("restore resets the log to the snapshot", () => {
  const l = logWith([1, 1]);
  l.restore({
    metadata: { index: 10, term: 4, confState: { voters: [1], learners: [] } },
    data: new Uint8Array(),
  });
  assert.equal(l.committed, 10);
  assert.equal(l.firstIndex(), 11);
  assert.equal(l.lastIndex(), 10);
  assert.equal(l.lastTerm(), 4);
  assert.equal(l.hasPendingSnapshot(), true);
});

Deno.test("unstable: stableTo drops persisted entries unless they were replaced", () => {
  const u = new Unstable(5);
  u.truncateAndAppend([ent(5, 1), ent(6, 1), ent(7, 1)]);
  u.stableTo(6, 2); // wrong term: ignored
  assert.equal(u.offset, 5);
  u.stableTo(6, 1);
  assert.equal(u.offset, 7);
  assert.deepEqual(u.entries.map((e) => e.index), [7]);
  u.truncateAndAppend([ent(6, 3)]); // rewinds before the offset
  assert.equal(u.offset, 6);
  assert.deepEqual(u.entries.map((e) => e.term), [3]);
  u.truncateAndAppend([ent(7, 3), ent(8, 3)]);
  u.truncateAndAppend([ent(8, 4)]); // truncates in the middle
  assert.deepEqual(u.entries.map((e) => `${e.index}/${e.term}`), ["6/3", "7/3", "8/4"]);
});
