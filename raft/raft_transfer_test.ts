/**
 * Leader transfer (Raft thesis §3.10) beyond the TinyKV 3A cases in tinykv_3a_test.ts:
 * proposals dropped meanwhile, the one-election-timeout deadline, repeated requests, learners,
 * removal of the transferee, and the transferee's campaign skipping PreVote and the lease.
 */
import assert from "node:assert/strict";
import { ProposalDroppedError } from "./errors.ts";
import { CAMPAIGN_TRANSFER } from "./raft.ts";
import {
  checkState,
  electedNetwork,
  hup,
  logTerms,
  msg,
  peerWithLog,
  prop,
  tickN,
  transferMsg,
} from "./testing/helpers.ts";
import { Network, newTestRaft, nextEnts } from "./testing/network.ts";
import { bytesEqual } from "./types.ts";

Deno.test("proposals are dropped while a transfer is in progress", () => {
  const nt = electedNetwork(3);
  nt.isolate(3);
  nt.send(transferMsg(1, 3));
  const lead = nt.peer(1);
  assert.equal(lead.leadTransferee, 3);
  const last = lead.raftLog.lastIndex();
  assert.throws(() => lead.step(prop(1, "x")), ProposalDroppedError);
  assert.equal(lead.raftLog.lastIndex(), last);
});

Deno.test("a transfer that does not finish within one election timeout is abandoned", () => {
  const nt = electedNetwork(3);
  nt.isolate(3);
  nt.send(transferMsg(1, 3));
  const lead = nt.peer(1);
  tickN(lead, lead.electionTimeout - 1);
  assert.equal(lead.leadTransferee, 3);
  lead.tick();
  assert.equal(lead.leadTransferee, 0);
  checkState(lead, "Leader", 1);
  // Proposals are accepted again.
  lead.readMessages();
  lead.step(prop(1, "x"));
  assert.equal(lead.raftLog.allEntries().at(-1)!.data.byteLength, 1);
});

Deno.test("repeating a transfer to the same peer is a no-op and does not extend the deadline", () => {
  const nt = electedNetwork(3);
  nt.isolate(3);
  nt.send(transferMsg(1, 3));
  const lead = nt.peer(1);
  tickN(lead, lead.electionTimeout - 2);
  nt.send(transferMsg(1, 3));
  assert.equal(lead.leadTransferee, 3);
  tickN(lead, 2);
  assert.equal(lead.leadTransferee, 0, "still abandoned on the original deadline");
});

Deno.test("a transfer to a learner is ignored", () => {
  const nt = electedNetwork(3);
  const lead = nt.peer(1);
  lead.addNode(4, true);
  nt.send(transferMsg(1, 4));
  assert.equal(lead.leadTransferee, 0);
  checkState(lead, "Leader", 1);
});

Deno.test("removing the transferee aborts the pending transfer", () => {
  const nt = electedNetwork(3);
  nt.isolate(3);
  nt.send(transferMsg(1, 3));
  const lead = nt.peer(1);
  assert.equal(lead.leadTransferee, 3);
  lead.removeNode(3);
  assert.equal(lead.leadTransferee, 0);
  lead.step(prop(1, "x")); // accepted again
});

Deno.test("a follower with no known leader drops a transfer request", () => {
  const r = newTestRaft(2, [1, 2, 3], 10, 1);
  r.step(transferMsg(2, 3));
  assert.deepEqual(r.readMessages(), []);
});

Deno.test("the transferee campaigns at once, skipping PreVote, and voters grant it inside their lease", () => {
  const nt = electedNetwork(3, { preVote: true, checkQuorum: true });
  const lead = nt.peer(1);
  nt.delivered = [];
  nt.send(transferMsg(1, 2));
  checkState(nt.peer(2), "Leader", 2);
  checkState(lead, "Follower", 2);
  assert.equal(nt.peer(2).term, 2);
  const votes = nt.delivered.filter((m) => m.type === "MsgVote" || m.type === "MsgPreVote");
  assert.ok(votes.every((m) => m.type === "MsgVote" && bytesEqual(m.context, CAMPAIGN_TRANSFER)));
  // Without the transfer marker, the same vote would be ignored inside the lease.
  const r3 = nt.peer(3);
  r3.step(msg({ type: "MsgVote", from: 1, to: 3, term: 3, index: 100, logTerm: 2 }));
  assert.equal(r3.term, 2, "lease holds: the vote is ignored");
  assert.deepEqual(r3.readMessages(), []);
});

Deno.test("a transfer while the transferee is already up to date sends MsgTimeoutNow at once", () => {
  const nt = electedNetwork(3);
  const lead = nt.peer(1);
  lead.step(transferMsg(1, 2));
  const out = lead.readMessages();
  assert.deepEqual(out.map((m) => [m.type, m.to]), [["MsgTimeoutNow", 2]]);
});

Deno.test("after a transfer completes the new leader serves proposals", () => {
  const nt = electedNetwork(3);
  nt.send(transferMsg(1, 3));
  checkState(nt.peer(3), "Leader", 3);
  nt.send(prop(3, "after transfer"));
  for (const id of [1, 2, 3]) {
    assert.equal(nt.peer(id).raftLog.committed, nt.peer(3).raftLog.lastIndex());
  }
});

Deno.test("catch-up in one exchange: a transfer to a peer that needs a snapshot completes with no ticks", () => {
  const nt = electedNetwork(3);
  nt.isolate(3);
  for (let i = 0; i < 5; i++) nt.send(prop(1, `e${i}`));
  const lead = nt.peer(1);
  const s = nt.storage.get(1)!;
  nextEnts(lead, s);
  s.createSnapshot(lead.raftLog.applied, { voters: [1, 2, 3], learners: [] }, new Uint8Array());
  s.compact(lead.raftLog.applied);
  nt.recover();
  nt.delivered = [];
  nt.send(transferMsg(1, 3)); // one send: no ticks, no heartbeat
  checkState(lead, "Follower", 3);
  checkState(nt.peer(3), "Leader", 3);
  assert.ok(nt.delivered.some((m) => m.type === "MsgSnap"));
  assert.ok(nt.delivered.some((m) => m.type === "MsgTimeoutNow"));
});

Deno.test("catch-up in one exchange: a transfer to a peer with a long divergent log completes with no ticks", () => {
  // 3 holds a long uncommitted suffix of an old term that the leader must overwrite first.
  const voters = [1, 2, 3];
  const lead = peerWithLog(1, voters, [1, 1, 2, ...Array(10).fill(3)]);
  const p2 = peerWithLog(2, voters, [1, 1, 2, ...Array(10).fill(3)]);
  const p3 = peerWithLog(3, voters, [1, 1, ...Array(30).fill(2)]);
  const nt = new Network([lead, p2, p3]);
  nt.isolate(3);
  nt.send(hup(1));
  checkState(lead, "Leader", 1);
  nt.send(prop(1, "x"));
  nt.recover();
  nt.send(transferMsg(1, 3));
  checkState(nt.peer(3), "Leader", 3);
  assert.deepEqual(logTerms(p3).slice(0, lead.raftLog.lastIndex()), logTerms(lead));
});
