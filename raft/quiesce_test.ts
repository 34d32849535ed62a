/**
 * Quiescence (quiesce.ts): when a leader may quiesce its group, what a quiesce heartbeat does to
 * a follower that matches and to one that does not, and how a woken peer's timers restart.
 */
import assert from "node:assert/strict";
import type { Raft } from "./raft.ts";
import { isQuiesceMessage, quiesce, quiesceBlocker, stepQuiesce, wake } from "./quiesce.ts";
import { hup, msg, prop } from "./testing/helpers.ts";
import { Network, nextEnts } from "./testing/network.ts";
import { RawNodeCluster } from "./testing/cluster.ts";
import { ccLearner, ccV2, LEAVE_JOINT } from "./testing/conf.ts";
import type { Message } from "./types.ts";

/**
 * A 3-peer group (CheckQuorum and PreVote on) where peer 1 leads and every peer has persisted
 * and applied everything; quiesce heartbeats are held back for the test to deliver by hand.
 */
function idleGroup(): { nt: Network; held: Message[]; settle: () => void } {
  const nt = new Network([undefined, undefined, undefined], { checkQuorum: true, preVote: true });
  const held: Message[] = [];
  nt.msgHook = (m) => {
    if (!isQuiesceMessage(m)) return true;
    held.push(m);
    return false;
  };
  const settle = () => {
    for (const id of [1, 2, 3]) nextEnts(nt.peer(id), nt.storage.get(id)!);
  };
  nt.send(hup(1));
  nt.send(prop(1, "a"));
  settle();
  // A heartbeat round brings every follower's commit index up to date.
  nt.send(msg({ type: "MsgBeat", from: 1, to: 1 }));
  settle();
  return { nt, held, settle };
}

Deno.test("an idle leader with caught-up followers quiesces; followers adopt its commit silently", () => {
  const { nt, held } = idleGroup();
  const lead = nt.peer(1);
  assert.equal(quiesceBlocker(lead), undefined);
  assert.ok(quiesce(lead));
  nt.flush(1);
  assert.equal(held.length, 2, "one quiesce heartbeat per follower");
  for (const m of held) {
    assert.equal(m.index, lead.raftLog.lastIndex());
    assert.equal(m.logTerm, lead.term);
    assert.equal(m.commit, lead.raftLog.committed);
    const f = nt.peer(m.to);
    f.electionElapsed = 5;
    assert.ok(stepQuiesce(f, m), `follower ${m.to} quiesces`);
    assert.equal(f.electionElapsed, 0);
    assert.equal(f.raftLog.committed, lead.raftLog.committed);
    assert.deepEqual(f.readMessages(), [], "a quiescing follower does not answer");
  }
});

Deno.test("a leader does not quiesce with work in flight or a follower behind", () => {
  const { nt, settle } = idleGroup();
  const lead = nt.peer(1);
  assert.match(quiesceBlocker(nt.peer(2))!, /not the leader/);

  // A proposal not yet persisted, then persisted but not committed (followers cut off).
  nt.cut(1, 2);
  nt.cut(1, 3);
  nt.send(prop(1, "b"));
  assert.match(quiesceBlocker(lead)!, /not persisted/);
  nextEnts(lead, nt.storage.get(1)!);
  assert.match(quiesceBlocker(lead)!, /not committed/);
  assert.equal(quiesce(lead), false);
  assert.deepEqual(lead.readMessages().filter(isQuiesceMessage), []);

  // Peer 3 stays behind: no quiescing, unless it is known down (and 1 and 2 are a quorum).
  nt.recover();
  nt.cut(1, 3);
  nt.send(msg({ type: "MsgBeat", from: 1, to: 1 }));
  settle();
  assert.match(quiesceBlocker(lead)!, /peer 3 is not caught up/);
  assert.equal(quiesceBlocker(lead, (id) => id === 3), undefined);
  assert.match(quiesceBlocker(lead, (id) => id !== 1)!, /no quorum/);
  assert.ok(quiesce(lead, (id) => id === 3));
  assert.deepEqual(lead.readMessages().filter(isQuiesceMessage).map((m) => m.to), [2]);

  // A read waiting for its heartbeat round (peer 2's answer does not come back).
  nt.cut(1, 2);
  nt.send(msg({
    type: "MsgReadIndex",
    from: 1,
    to: 1,
    entries: [{ term: 0, index: 0, type: "Normal", data: new TextEncoder().encode("r") }],
  }));
  assert.match(quiesceBlocker(lead, (id) => id === 3)!, /reads are waiting/);
});

Deno.test("a leader transferring leadership or not heard from its followers lately stays awake", () => {
  const { nt } = idleGroup();
  const lead = nt.peer(1);
  lead.leadTransferee = 2;
  assert.match(quiesceBlocker(lead)!, /transfer/);
  lead.leadTransferee = 0;
  for (const [id, pr] of lead.trk.progress) if (id !== 1) pr.recentActive = false;
  assert.match(quiesceBlocker(lead)!, /not heard from lately/);
});

Deno.test("a follower whose log does not end where the leader's does answers the quiesce as a heartbeat", () => {
  const { nt, held, settle } = idleGroup();
  const lead = nt.peer(1);
  const f3 = nt.peer(3);
  // A quiesce from an earlier point, delivered after the leader appended another entry that
  // reached peer 3: it no longer matches.
  assert.ok(quiesce(lead));
  nt.flush(1);
  const stale = held.find((m) => m.to === 3)!;
  nt.send(prop(1, "c"));
  settle();
  assert.equal(stepQuiesce(f3, stale), false);
  const out = f3.readMessages();
  assert.deepEqual(out.map((m) => m.type), ["MsgHeartbeatResp"], "the answer wakes the leader");

  // A quiesce of another term is refused the same way.
  const other: Message = { ...stale, term: stale.term + 1 };
  assert.equal(stepQuiesce(nt.peer(2), other), false);
});

Deno.test("a woken leader starts a fresh quorum check and heartbeats at once", () => {
  const { nt } = idleGroup();
  const lead = nt.peer(1);
  lead.electionElapsed = 7;
  wake(lead, 1000);
  assert.equal(lead.electionElapsed, 0);
  for (const [id, pr] of lead.trk.progress) if (id !== 1) assert.equal(pr.recentActive, false);
  assert.deepEqual(
    lead.readMessages().map((m) => `${m.type}>${m.to}`).sort(),
    ["MsgHeartbeat>2", "MsgHeartbeat>3"],
  );
});

/** Asks `voter` for a pre-vote from peer `from`, whose log is as long as the leader's. */
function preVoteAnswer(nt: Network, from: number, voter: Raft): Message | undefined {
  voter.readMessages();
  const f = nt.peer(from);
  voter.step(msg({
    type: "MsgPreVote",
    from,
    to: voter.id,
    term: f.term + 1,
    index: f.raftLog.lastIndex(),
    logTerm: f.raftLog.lastTerm(),
  }));
  return voter.readMessages()[0];
}

Deno.test("a woken follower keeps refusing votes until an election timeout of real time without its leader", () => {
  const { nt } = idleGroup();
  const f2 = nt.peer(2);
  // Asleep since the quiesce (its timer stopped at 0); woken 3 ticks' worth later: the leader
  // was heard from within an election timeout, so the pre-vote is ignored (no answer at all).
  wake(f2, 3);
  assert.equal(f2.electionElapsed, 3);
  assert.equal(preVoteAnswer(nt, 3, f2), undefined);
  // Woken after a long silence: it grants, and campaigns within its randomized timeout.
  wake(f2, 10_000);
  assert.equal(f2.electionElapsed, f2.electionTimeout, "capped at the election timeout");
  const ans = preVoteAnswer(nt, 3, f2);
  assert.equal(ans?.type, "MsgPreVoteResp");
  assert.equal(ans?.reject, false);
  let ticks = 0;
  while (f2.state === "Follower" && ticks < f2.electionTimeout) {
    f2.tick();
    ticks++;
  }
  assert.equal(f2.state, "PreCandidate", `campaigned after ${ticks} more ticks`);
  // Waking never moves a timer back.
  const f3 = nt.peer(3);
  f3.electionElapsed = 6;
  wake(f3, 2);
  assert.equal(f3.electionElapsed, 6);
});

Deno.test("a leader in a joint configuration stays awake until it has left it", () => {
  const c = new RawNodeCluster([1, 2, 3], { checkQuorum: true, preVote: true });
  c.campaign(1);
  assert.ok(c.propose(1, "a"));
  assert.ok(c.proposeConfChange(1, ccV2("JointExplicit", ccLearner(3))));
  assert.ok(c.raft(1).trk.isJoint());
  assert.equal(quiesceBlocker(c.raft(1)), "a joint configuration is in force");
  assert.ok(!quiesce(c.raft(1)));
  assert.ok(c.proposeConfChange(1, LEAVE_JOINT));
  assert.ok(!c.raft(1).trk.isJoint());
  assert.notEqual(quiesceBlocker(c.raft(1)), "a joint configuration is in force");
});
