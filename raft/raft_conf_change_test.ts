/**
 * Single-step membership changes (Raft thesis §4.1, as etcd applies them): one unapplied conf
 * change at a time (`pendingConfIndex`), the new-leader rule, adding and removing peers
 * (including the leader itself), removed peers, and learners.
 */
import assert from "node:assert/strict";
import { decodeConfChange, encodeConfChange } from "./codec.ts";
import { RawNode } from "./rawnode.ts";
import { MemoryStorage } from "./storage.ts";
import {
  checkState,
  electedNetwork,
  entsWithTerms,
  hup,
  msg,
  prop,
  tickN,
} from "./testing/helpers.ts";
import { Network, newTestRaft, nextEnts } from "./testing/network.ts";
import type { ConfChange, Message } from "./types.ts";

function ccProp(to: number, cc: ConfChange): Message {
  return msg({
    type: "MsgProp",
    from: to,
    to,
    entries: [{ term: 0, index: 0, type: "ConfChange", data: encodeConfChange(cc) }],
  });
}

Deno.test("pendingConfIndex: a second conf change while one is unapplied becomes an empty normal entry", () => {
  const nt = electedNetwork(3);
  const lead = nt.peer(1);
  nextEnts(lead, nt.storage.get(1)!); // apply the no-op
  nt.send(ccProp(1, { type: "AddNode", nodeId: 4 }));
  const first = lead.raftLog.lastIndex();
  assert.equal(lead.pendingConfIndex, first);
  nt.send(ccProp(1, { type: "AddNode", nodeId: 5 }));
  const second = lead.raftLog.allEntries().at(-1)!;
  assert.equal(second.type, "Normal");
  assert.equal(second.data.byteLength, 0);
  // Once the first is applied, a new one is accepted.
  nextEnts(lead, nt.storage.get(1)!);
  nt.send(ccProp(1, { type: "AddNode", nodeId: 5 }));
  assert.equal(lead.raftLog.allEntries().at(-1)!.type, "ConfChange");
});

Deno.test("new-leader rule: no conf change before the entries of earlier terms are applied", () => {
  // 1 is elected with an unapplied entry of an earlier term in its log.
  const s = new MemoryStorage([1, 2, 3]);
  s.append(entsWithTerms(1));
  s.setHardState({ term: 1, vote: 0, commit: 0 });
  const lead = newTestRaft(1, [1, 2, 3], 10, 1, s);
  const nt = new Network([lead, undefined, undefined]);
  nt.send(hup(1));
  checkState(lead, "Leader", 1);
  assert.equal(lead.pendingConfIndex, 1, "guards everything before its no-op");
  lead.raftLog.applied = 0;
  nt.isolate(2);
  nt.isolate(3);
  nt.send(ccProp(1, { type: "AddNode", nodeId: 4 }));
  const e = lead.raftLog.allEntries().at(-1)!;
  assert.equal(e.type, "Normal", "refused: turned into an empty entry");
  assert.equal(e.data.byteLength, 0);
  nt.recover();
  nt.send(msg({ type: "MsgBeat", from: 1, to: 1 }));
  nextEnts(lead, s);
  nt.send(ccProp(1, { type: "AddNode", nodeId: 4 }));
  assert.equal(lead.raftLog.allEntries().at(-1)!.type, "ConfChange", "accepted once applied");
});

Deno.test("adding a voter: it receives the log, and the quorum grows", () => {
  const nt = new Network([undefined, undefined, null]);
  // Start with voters 1, 2 only.
  for (const id of [1, 2]) nt.peer(id).removeNode(3);
  nt.send(hup(1));
  const lead = nt.peer(1);
  const p3 = newTestRaft(3, [], 10, 1, new MemoryStorage());
  nt.peers.set(3, p3);
  for (const id of [1, 2]) nt.peer(id).addNode(3, false);
  p3.addNode(1, false);
  p3.addNode(2, false);
  p3.addNode(3, false);
  nt.send(prop(1, "a"));
  assert.equal(p3.raftLog.lastIndex(), lead.raftLog.lastIndex());
  // With 3 voters, 1 alone plus a cut-off 2 and 3 cannot commit.
  nt.isolate(2);
  nt.isolate(3);
  const before = lead.raftLog.committed;
  nt.send(prop(1, "b"));
  assert.equal(lead.raftLog.committed, before);
});

Deno.test("removing a voter shrinks the quorum; its later messages are ignored", () => {
  const nt = electedNetwork(3);
  const lead = nt.peer(1);
  lead.removeNode(3);
  nt.isolate(3);
  nt.send(prop(1, "a"));
  assert.equal(lead.raftLog.committed, lead.raftLog.lastIndex(), "1 and 2 suffice");
  // A response from the removed peer changes nothing (RawNode ignores it altogether).
  const rn = new RawNode({
    id: 1,
    electionTick: 10,
    heartbeatTick: 1,
    storage: new MemoryStorage([1, 2]),
  });
  rn.step(msg({ type: "MsgAppResp", from: 3, to: 1, term: 1, index: 100 }));
  assert.equal(rn.raft.raftLog.committed, 0);
});

Deno.test("a leader removing itself steps down; the others elect a new leader", () => {
  const nt = electedNetwork(3);
  for (const id of [1, 2, 3]) nt.peer(id).removeNode(1);
  checkState(nt.peer(1), "Follower", 0);
  // 1 never campaigns again, whatever the ticks.
  tickN(nt.peer(1), 100);
  assert.equal(nt.peer(1).state, "Follower");
  assert.deepEqual(nt.peer(1).readMessages(), []);
  nt.send(hup(2));
  checkState(nt.peer(2), "Leader", 2);
});

Deno.test("a peer removed from its own configuration ignores MsgTimeoutNow", () => {
  const nt = electedNetwork(3);
  nt.peer(3).removeNode(3);
  nt.peer(3).step(msg({ type: "MsgTimeoutNow", from: 1, to: 3, term: 1 }));
  assert.equal(nt.peer(3).state, "Follower");
  assert.equal(nt.peer(3).term, 1);
});

Deno.test("a conf change is committed and applied through RawNode; a new one may follow", () => {
  const s = new MemoryStorage([1]);
  const rn = new RawNode({ id: 1, electionTick: 10, heartbeatTick: 1, storage: s });
  rn.campaign();
  const cycle = () => {
    const rd = rn.ready();
    s.append(rd.entries);
    for (const e of rd.committedEntries) {
      if (e.type === "ConfChange") rn.applyConfChange(decodeConfChange(e.data));
    }
    rn.advance(rd);
  };
  cycle();
  rn.proposeConfChange({ type: "AddLearnerNode", nodeId: 2 });
  cycle();
  assert.deepEqual(rn.raft.trk.confState(), { voters: [1], learners: [2] });
  rn.proposeConfChange({ type: "AddNode", nodeId: 2 });
  cycle();
  assert.deepEqual(rn.raft.trk.confState(), { voters: [1, 2], learners: [] });
});

Deno.test("learners receive the log but do not count toward commit", () => {
  const nt = electedNetwork(2);
  const lead = nt.peer(1);
  const learner = newTestRaft(3, [], 10, 1, new MemoryStorage([1, 2], [3]));
  nt.peers.set(3, learner);
  lead.addNode(3, true);
  nt.peer(2).addNode(3, true);
  nt.isolate(2);
  nt.send(prop(1, "a"));
  assert.equal(learner.raftLog.lastIndex(), lead.raftLog.lastIndex(), "learner got the entry");
  assert.equal(lead.raftLog.committed, 1, "the learner's ack does not commit");
  nt.recover();
  nt.send(msg({ type: "MsgBeat", from: 1, to: 1 }));
  assert.equal(lead.raftLog.committed, lead.raftLog.lastIndex());
});

Deno.test("learners never campaign, and their votes are not counted", () => {
  const learner = newTestRaft(3, [], 10, 1, new MemoryStorage([1, 2], [3]));
  assert.equal(learner.isLearner, true);
  tickN(learner, 100);
  assert.equal(learner.state, "Follower");
  assert.deepEqual(learner.readMessages(), []);
  learner.step(msg({ type: "MsgTimeoutNow", from: 1, to: 3, term: 0 }));
  assert.equal(learner.state, "Follower");
  // A candidate whose config lists 3 as learner does not count 3's vote.
  const c = newTestRaft(1, [], 10, 1, new MemoryStorage([1, 2], [3]));
  c.step(hup(1)); // votes for itself: 1 of the 2 voters
  c.step(msg({ type: "MsgVoteResp", from: 3, to: 1, term: c.term }));
  assert.equal(c.state, "Candidate");
  c.step(msg({ type: "MsgVoteResp", from: 2, to: 1, term: c.term }));
  assert.equal(c.state, "Leader");
});

Deno.test("promoting a learner makes it a voter that counts and may campaign", () => {
  const nt = new Network([
    newTestRaft(1, [], 10, 1, new MemoryStorage([1, 2], [3])),
    newTestRaft(2, [], 10, 1, new MemoryStorage([1, 2], [3])),
    newTestRaft(3, [], 10, 1, new MemoryStorage([1, 2], [3])),
  ]);
  nt.send(hup(1));
  for (const id of [1, 2, 3]) nt.peer(id).addNode(3, false);
  assert.equal(nt.peer(3).isLearner, false);
  nt.isolate(2);
  nt.send(prop(1, "a"));
  assert.equal(
    nt.peer(1).raftLog.committed,
    nt.peer(1).raftLog.lastIndex(),
    "1 and 3 are a quorum",
  );
  nt.recover();
  nt.send(hup(3));
  checkState(nt.peer(3), "Leader", 3);
});

Deno.test("adding an existing voter, or re-adding a learner, changes nothing", () => {
  const r = newTestRaft(1, [], 10, 1, new MemoryStorage([1, 2], [3]));
  r.addNode(2, false);
  r.addNode(3, true);
  r.addNode(2, true); // no demotion in single-step changes
  assert.deepEqual(r.trk.confState(), { voters: [1, 2], learners: [3] });
});

Deno.test("a proposal on a leader that was removed from the configuration is dropped", () => {
  const nt = electedNetwork(3);
  const lead = nt.peer(1);
  lead.trk.progress.delete(1);
  lead.trk.voters.delete(1);
  assert.throws(() => lead.step(prop(1, "x")), { name: "ProposalDroppedError" });
});
