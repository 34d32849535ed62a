/** Progress states, the in-flight window, and the tracker's quorum arithmetic. */
import assert from "node:assert/strict";
import { Inflights, Progress, ProgressTracker } from "./progress.ts";

Deno.test("inflights: bounded window, freed in order, wraps around", () => {
  const w = new Inflights(3);
  w.add(1);
  w.add(2);
  w.add(3);
  assert.equal(w.full(), true);
  assert.throws(() => w.add(4));
  w.freeLE(2);
  assert.equal(w.count(), 1);
  w.add(5);
  w.add(6);
  assert.equal(w.full(), true);
  w.freeFirstOne();
  assert.equal(w.count(), 2);
  w.freeLE(100);
  assert.equal(w.count(), 0);
});

Deno.test("progress: probe pauses after one send; replicate pauses when the window is full", () => {
  const p = new Progress({ next: 5, maxInflight: 2 });
  assert.equal(p.isPaused(), false);
  p.probeSent = true;
  assert.equal(p.isPaused(), true);
  assert.equal(p.maybeUpdate(4), true);
  assert.equal(p.isPaused(), false);
  p.becomeReplicate();
  assert.equal(p.next, 5);
  p.inflights.add(5);
  p.inflights.add(6);
  assert.equal(p.isPaused(), true);
  p.becomeSnapshot(10);
  assert.equal(p.isPaused(), true);
  p.becomeProbe();
  assert.equal(p.next, 11, "after a snapshot, probe from just past it");
});

Deno.test("progress: maybeDecrTo ignores stale rejections and uses the hint", () => {
  const p = new Progress({ next: 10, maxInflight: 4 });
  p.match = 3;
  assert.equal(p.maybeDecrTo(5, 2), false, "probe: not the index we sent");
  assert.equal(p.maybeDecrTo(9, 6), true);
  assert.equal(p.next, 7);
  assert.equal(p.maybeDecrTo(6, 0), true);
  assert.equal(p.next, 4, "never below match + 1");
  p.becomeReplicate();
  assert.equal(p.maybeDecrTo(3, 0), false, "replicate: rejection of a matched index is stale");
  p.next = 9;
  assert.equal(p.maybeDecrTo(8, 0), true);
  assert.equal(p.next, 4);
});

Deno.test("tracker: committed index is the quorum-th highest voter match; learners ignored", () => {
  const t = new ProgressTracker(8);
  const add = (id: number, match: number, learner = false) => {
    const p = new Progress({ next: match + 1, match, maxInflight: 8, isLearner: learner });
    t.progress.set(id, p);
    (learner ? t.learners : t.voters).add(id);
  };
  add(1, 5);
  add(2, 3);
  add(3, 1);
  add(4, 9, true);
  assert.equal(t.committed(), 3);
  add(5, 4);
  assert.equal(t.committed(), 3, "4 voters need 3");
  add(6, 4);
  assert.equal(t.committed(), 4);
  assert.equal(new ProgressTracker(1).committed(), 0, "no voters, nothing committed");
});

Deno.test("tracker: vote tallies count only voters' first votes", () => {
  const t = new ProgressTracker(8);
  for (const id of [1, 2, 3, 4]) t.voters.add(id);
  t.recordVote(1, true);
  t.recordVote(9, true);
  assert.equal(t.tallyVotes().result, "Pending");
  t.recordVote(2, false);
  t.recordVote(2, true); // only the first counts
  t.recordVote(3, false);
  assert.equal(t.tallyVotes().result, "Lost", "1 granted + 1 missing < 3");
  t.resetVotes();
  for (const id of [1, 2, 3]) t.recordVote(id, true);
  assert.equal(t.tallyVotes().result, "Won");
});
