/**
 * TinyKV project 3A's raft tests (leader transfer, membership change, RawNode conf changes),
 * each reproduced as a scenario in our own words on the synchronous test network: messages are
 * delivered until none are left and no ticks happen.
 */
import assert from "node:assert/strict";
import { decodeConfChange, encodeConfChange } from "./codec.ts";
import { MemoryStorage } from "./storage.ts";
import { RawNode } from "./rawnode.ts";
import type { Raft } from "./raft.ts";
import { Network, newTestRaft, nextEnts, nodes } from "./testing/network.ts";
import { type Message, newMessage, type StateType } from "./types.ts";

function msg(m: Partial<Message> & Pick<Message, "type" | "from" | "to">): Message {
  return newMessage(m);
}

function hup(id: number): Message {
  return msg({ type: "MsgHup", from: id, to: id });
}

function prop(to: number, data = new Uint8Array(0)): Message {
  return msg({
    type: "MsgProp",
    from: to,
    to,
    entries: [{ term: 0, index: 0, type: "Normal", data }],
  });
}

function transfer(to: number, transferee: number): Message {
  return msg({ type: "MsgTransferLeader", from: transferee, to });
}

function checkState(r: Raft, state: StateType, lead: number): void {
  assert.equal(r.state, state, `peer ${r.id} state`);
  assert.equal(r.lead, lead, `peer ${r.id} lead`);
}

/** A 3-peer network where 1 was elected. */
function electedNetwork(): Network {
  const nt = new Network([undefined, undefined, undefined]);
  nt.send(hup(1));
  checkState(nt.peer(1), "Leader", 1);
  return nt;
}

Deno.test("3A AddNode: adding peer 2 to a one-peer group makes the membership [1, 2]", () => {
  const r = newTestRaft(1, [1], 10, 1);
  r.addNode(2, false);
  assert.deepEqual(nodes(r), [1, 2]);
});

Deno.test("3A RemoveNode: removing 2 then itself leaves an empty membership without failing", () => {
  const r = newTestRaft(1, [1, 2], 10, 1);
  r.removeNode(2);
  assert.deepEqual(nodes(r), [1]);
  r.removeNode(1);
  assert.deepEqual(nodes(r), []);
});

Deno.test("3A CommitAfterRemoveNode: removing a peer recomputes the commit index at once", () => {
  const s = new MemoryStorage([1, 2]);
  const r = newTestRaft(1, [1, 2], 5, 1, s);
  r.becomeCandidate();
  r.becomeLeader();
  // Propose removing 2: it cannot commit with only the leader's copy.
  const cc = encodeConfChange({ type: "RemoveNode", nodeId: 2 });
  r.step(msg({
    type: "MsgProp",
    from: 1,
    to: 1,
    entries: [{ term: 0, index: 0, type: "ConfChange", data: cc }],
  }));
  assert.deepEqual(nextEnts(r, s), []);
  const ccIndex = r.raftLog.lastIndex();
  // A normal proposal while the conf change is pending is fine.
  r.step(prop(1, new TextEncoder().encode("hello")));
  // 2 acknowledges up to the conf change: the no-op and the conf change commit.
  r.step(msg({ type: "MsgAppResp", from: 2, to: 1, index: ccIndex, term: r.term }));
  const ents = nextEnts(r, s);
  assert.equal(ents.length, 2);
  assert.equal(ents[0]!.type, "Normal");
  assert.equal(ents[0]!.data.byteLength, 0);
  assert.equal(ents[1]!.type, "ConfChange");
  // Applying the removal leaves a quorum of one: "hello" commits with no further message.
  r.removeNode(2);
  const after = nextEnts(r, s);
  assert.equal(after.length, 1);
  assert.equal(after[0]!.type, "Normal");
  assert.equal(new TextDecoder().decode(after[0]!.data), "hello");
});

Deno.test("3A LeaderTransferToUpToDateNode: leadership goes to 2 and back to 1", () => {
  const nt = electedNetwork();
  nt.send(transfer(1, 2));
  checkState(nt.peer(1), "Follower", 2);
  // A proposal to the old leader, now a follower: forwarded or dropped, either is fine.
  nt.send(prop(1));
  nt.send(transfer(2, 1));
  checkState(nt.peer(1), "Leader", 1);
});

Deno.test("3A LeaderTransferToUpToDateNodeFromFollower: followers forward the request", () => {
  const nt = electedNetwork();
  nt.send(transfer(2, 2)); // to follower 2, which is also the transferee
  checkState(nt.peer(1), "Follower", 2);
  nt.send(prop(1));
  nt.send(transfer(1, 1)); // to follower 1, the transferee
  checkState(nt.peer(1), "Leader", 1);
});

Deno.test("3A LeaderTransferToSlowFollower: the leader catches 3 up, then hands over", () => {
  const nt = electedNetwork();
  nt.isolate(3);
  nt.send(prop(1));
  nt.recover();
  assert.equal(nt.peer(1).trk.progress.get(3)!.match, 1);
  nt.send(transfer(1, 3));
  checkState(nt.peer(1), "Follower", 3);
});

Deno.test("3A LeaderTransferAfterSnapshot: the leader catches 3 up by snapshot, then hands over", () => {
  const nt = electedNetwork();
  nt.isolate(3);
  nt.send(prop(1));
  const lead = nt.peer(1);
  const s = nt.storage.get(1)!;
  nextEnts(lead, s);
  s.createSnapshot(lead.raftLog.applied, { voters: nodes(lead), learners: [] }, new Uint8Array());
  s.compact(lead.raftLog.applied);
  nt.recover();
  assert.equal(lead.trk.progress.get(3)!.match, 1);
  nt.send(transfer(1, 3));
  // The reference steps a heartbeat response "to trigger a snapshot".
  nt.send(msg({ type: "MsgHeartbeatResp", from: 3, to: 1, term: lead.term }));
  checkState(lead, "Follower", 3);
});

Deno.test("3A LeaderTransferToSelf: a transfer to the leader itself is a no-op", () => {
  const nt = electedNetwork();
  nt.send(transfer(1, 1));
  checkState(nt.peer(1), "Leader", 1);
});

Deno.test("3A LeaderTransferToNonExistingNode: a transfer to a non-member is a no-op", () => {
  const nt = electedNetwork();
  nt.send(transfer(1, 4));
  checkState(nt.peer(1), "Leader", 1);
});

Deno.test("3A LeaderTransferReceiveHigherTermVote: a pending transfer does not stop a step-down", () => {
  const nt = electedNetwork();
  nt.isolate(3);
  nt.send(transfer(1, 3)); // pending: 3 is unreachable
  assert.equal(nt.peer(1).leadTransferee, 3);
  nt.send(msg({ type: "MsgHup", from: 2, to: 2, index: 1, term: 2 }));
  checkState(nt.peer(1), "Follower", 2);
});

Deno.test("3A LeaderTransferRemoveNode: a transfer to a removed peer is a no-op", () => {
  const nt = electedNetwork();
  nt.peer(1).removeNode(3);
  nt.send(transfer(1, 3));
  checkState(nt.peer(1), "Leader", 1);
  assert.equal(nt.peer(1).leadTransferee, 0);
});

Deno.test("3A LeaderTransferBack: a transfer to the leader cancels a pending one", () => {
  const nt = electedNetwork();
  nt.isolate(3);
  nt.send(transfer(1, 3));
  assert.equal(nt.peer(1).leadTransferee, 3);
  nt.send(transfer(1, 1));
  checkState(nt.peer(1), "Leader", 1);
  assert.equal(nt.peer(1).leadTransferee, 0);
});

Deno.test("3A LeaderTransferSecondTransferToAnotherNode: a second request replaces the first", () => {
  const nt = electedNetwork();
  nt.isolate(3);
  nt.send(transfer(1, 3));
  assert.equal(nt.peer(1).leadTransferee, 3);
  nt.send(transfer(1, 2));
  checkState(nt.peer(1), "Follower", 2);
});

Deno.test("3A TransferNonMember: a peer outside its own configuration never becomes leader", () => {
  const r = newTestRaft(1, [2, 3, 4], 5, 1);
  r.step(msg({ type: "MsgTimeoutNow", from: 2, to: 1, term: r.term }));
  r.step(msg({ type: "MsgVoteResp", from: 2, to: 1, term: r.term }));
  r.step(msg({ type: "MsgVoteResp", from: 3, to: 1, term: r.term }));
  assert.equal(r.state, "Follower");
  // And it is not ticked into an election either.
  for (let i = 0; i < 50; i++) r.tick();
  assert.equal(r.state, "Follower");
  assert.equal(r.readMessages().length, 0);
});

Deno.test("3A RawNodeProposeAndConfChange: hard state only when changed; proposals land in the log", () => {
  const s = new MemoryStorage([1]);
  const rn = new RawNode({ id: 1, electionTick: 10, heartbeatTick: 1, storage: s });
  let rd = rn.ready();
  s.append(rd.entries);
  rn.advance(rd);
  rd = rn.ready();
  assert.equal(rd.hardState, undefined);
  assert.equal(rd.entries.length, 0);
  rn.campaign();
  rd = rn.ready();
  assert.ok(rd.softState);
  assert.equal(rd.softState.lead, 1);
  rn.propose(new TextEncoder().encode("somedata"));
  const cc = { type: "AddNode", nodeId: 1 } as const;
  rn.proposeConfChange(cc);
  const ents = rn.raft.raftLog.unstable.entries;
  const [a, b] = ents.slice(-2);
  assert.equal(new TextDecoder().decode(a!.data), "somedata");
  assert.equal(b!.type, "ConfChange");
  assert.deepEqual(b!.data, encodeConfChange(cc));
});

Deno.test("3A RawNodeProposeAddDuplicateNode: adding an existing peer is harmless; re-proposal after apply", () => {
  const s = new MemoryStorage([1]);
  const rn = new RawNode({ id: 1, electionTick: 10, heartbeatTick: 1, storage: s });
  let rd = rn.ready();
  s.append(rd.entries);
  rn.advance(rd);
  rn.campaign();
  for (;;) {
    rd = rn.ready();
    s.append(rd.entries);
    if (rd.hardState) s.setHardState(rd.hardState);
    rn.advance(rd);
    if (rd.softState?.lead === 1) break;
  }
  const proposeAndApply = (cc: { type: "AddNode"; nodeId: number }) => {
    rn.proposeConfChange(cc);
    const rd = rn.ready();
    s.append(rd.entries);
    if (rd.hardState) s.setHardState(rd.hardState);
    // Single voter: the proposal is committed in the Ready that carries it.
    assert.ok(
      rd.committedEntries.some((e) => e.type === "ConfChange"),
      "committed in the same Ready",
    );
    for (const e of rd.committedEntries) {
      if (e.type === "ConfChange") rn.applyConfChange(decodeConfChange(e.data));
    }
    rn.advance(rd);
  };
  const cc1 = { type: "AddNode", nodeId: 1 } as const;
  proposeAndApply(cc1);
  proposeAndApply(cc1); // duplicate: a harmless no-op
  const cc2 = { type: "AddNode", nodeId: 2 } as const;
  proposeAndApply(cc2);
  const last = s.lastIndex();
  const ents = s.entries(last - 2, last + 1, Infinity);
  assert.equal(ents.length, 3);
  assert.ok(ents.every((e) => e.type === "ConfChange"), "all three are conf changes");
  assert.deepEqual(ents[0]!.data, encodeConfChange(cc1));
  assert.deepEqual(ents[2]!.data, encodeConfChange(cc2));
  assert.deepEqual(rn.raft.trk.confState(), { voters: [1, 2], learners: [] });
});
