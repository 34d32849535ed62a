/**
 * RawNode and the Ready/advance protocol: what a Ready contains and when, hard state only on
 * change, single-voter commit in the same Ready, restart from storage, local messages from the
 * network, status and transport reports.
 */
import assert from "node:assert/strict";
import { ProposalDroppedError } from "./errors.ts";
import { RawNode } from "./rawnode.ts";
import { MemoryStorage } from "./storage.ts";
import { ent, msg } from "./testing/helpers.ts";
import type { Snapshot } from "./types.ts";

function newNode(voters: number[] = [1], id = 1, storage = new MemoryStorage(voters)): RawNode {
  return new RawNode({ id, electionTick: 10, heartbeatTick: 1, storage });
}

/** Persists a Ready the way an application does (no sending, no applying). */
function persist(rn: RawNode, s: MemoryStorage) {
  const rd = rn.ready();
  if (rd.snapshot) s.applySnapshot(rd.snapshot);
  s.append(rd.entries);
  if (rd.hardState) s.setHardState(rd.hardState);
  rn.advance(rd);
  return rd;
}

Deno.test("a fresh node has nothing ready; the hard state is reported only when it changes", () => {
  const s = new MemoryStorage([1, 2]);
  const rn = newNode([1, 2], 1, s);
  assert.equal(rn.hasReady(), false);
  rn.campaign();
  assert.equal(rn.hasReady(), true);
  const rd = persist(rn, s);
  assert.deepEqual(rd.hardState, { term: 1, vote: 1, commit: 0 });
  assert.equal(rd.mustSync, true);
  assert.deepEqual(rd.softState, { lead: 0, raftState: "Candidate" });
  assert.equal(rd.messages.length, 1);
  assert.equal(rn.hasReady(), false);
  // A heartbeat that changes nothing durable yields a Ready without hard state.
  rn.step(msg({ type: "MsgHeartbeat", from: 2, to: 1, term: 1, commit: 0 }));
  const rd2 = persist(rn, s);
  assert.equal(rd2.hardState, undefined);
  assert.equal(rd2.mustSync, false);
  assert.deepEqual(rd2.softState, { lead: 2, raftState: "Follower" });
});

Deno.test("single voter: a proposal is committed in the same Ready that carries it", () => {
  const s = new MemoryStorage([1]);
  const rn = newNode([1], 1, s);
  rn.campaign();
  persist(rn, s);
  rn.propose(new TextEncoder().encode("x"));
  const rd = rn.ready();
  assert.equal(rd.entries.length, 1);
  assert.equal(rd.committedEntries.length, 1);
  assert.equal(rd.entries[0]!.index, rd.committedEntries[0]!.index);
  assert.equal(rd.hardState?.commit, rd.entries[0]!.index);
  s.append(rd.entries);
  rn.advance(rd);
  assert.equal(rn.hasReady(), false);
  assert.equal(rn.status().applied, 2);
});

Deno.test("entries and committed entries are handed out again until advance; messages only once", () => {
  const s = new MemoryStorage([1, 2]);
  const rn = newNode([1, 2], 1, s);
  rn.campaign();
  persist(rn, s);
  rn.step(msg({ type: "MsgVoteResp", from: 2, to: 1, term: 1 }));
  const rd1 = rn.ready();
  assert.equal(rd1.entries.length, 1);
  assert.ok(rd1.messages.length > 0);
  const rd2 = rn.ready();
  assert.deepEqual(rd2.entries, rd1.entries);
  assert.equal(rd2.messages.length, 0);
  s.append(rd2.entries);
  rn.advance(rd2);
  assert.equal(rn.hasReady(), false);
});

Deno.test("restart: committed entries resume after the applied index given in the config", () => {
  const s = new MemoryStorage([1]);
  const rn = newNode([1], 1, s);
  rn.campaign();
  persist(rn, s);
  for (const d of ["a", "b", "c"]) {
    rn.propose(new TextEncoder().encode(d));
    persist(rn, s);
  }
  const restarted = new RawNode({
    id: 1,
    electionTick: 10,
    heartbeatTick: 1,
    storage: s,
    applied: 2,
  });
  const rd = restarted.ready();
  assert.deepEqual(rd.committedEntries.map((e) => new TextDecoder().decode(e.data)), ["b", "c"]);
  assert.equal(rd.entries.length, 0);
  assert.equal(rd.hardState, undefined, "the persisted hard state is not reported again");
});

Deno.test("local message types and responses from unknown peers are ignored when stepped from the network", () => {
  const rn = newNode([1, 2, 3]);
  rn.step(msg({ type: "MsgHup", from: 2, to: 1 }));
  assert.equal(rn.raft.state, "Follower");
  rn.step(msg({ type: "MsgBeat", from: 2, to: 1 }));
  rn.step(msg({ type: "MsgVoteResp", from: 9, to: 1, term: 5 }));
  assert.equal(rn.raft.term, 0);
  assert.equal(rn.hasReady(), false);
});

Deno.test("a proposal without a leader throws ProposalDroppedError", () => {
  const rn = newNode([1, 2, 3]);
  assert.throws(() => rn.propose(new Uint8Array([1])), ProposalDroppedError);
});

Deno.test("status reports progress per peer on the leader, and none elsewhere", () => {
  const s = new MemoryStorage([1, 2]);
  const rn = newNode([1, 2], 1, s);
  assert.deepEqual(rn.status().progress, {});
  rn.campaign();
  rn.step(msg({ type: "MsgVoteResp", from: 2, to: 1, term: 1 }));
  const st = rn.status();
  assert.equal(st.softState.raftState, "Leader");
  assert.deepEqual(st.progress[1], { match: 1, next: 2, state: "Replicate", isLearner: false });
  assert.deepEqual(st.progress[2], { match: 0, next: 1, state: "Probe", isLearner: false });
  assert.equal(st.leadTransferee, 0);
  rn.transferLeader(2);
  assert.equal(rn.status().leadTransferee, 2);
});

Deno.test("reportUnreachable and reportSnapshot update the leader's view of the peer", () => {
  const s = new MemoryStorage([1, 2]);
  const rn = newNode([1, 2], 1, s);
  rn.campaign();
  rn.step(msg({ type: "MsgVoteResp", from: 2, to: 1, term: 1 }));
  rn.step(msg({ type: "MsgAppResp", from: 2, to: 1, term: 1, index: 1 }));
  assert.equal(rn.status().progress[2]!.state, "Replicate");
  rn.reportUnreachable(2);
  assert.equal(rn.status().progress[2]!.state, "Probe");
  rn.raft.trk.progress.get(2)!.becomeSnapshot(5);
  rn.reportSnapshot(2, "Failure");
  assert.equal(rn.status().progress[2]!.state, "Probe");
});

Deno.test("a received snapshot is handed out once for persisting and applying", () => {
  const s = new MemoryStorage([1, 2]);
  const rn = newNode([1, 2], 2, s);
  const snap: Snapshot = {
    metadata: { index: 10, term: 2, confState: { voters: [1, 2], learners: [] } },
    data: new Uint8Array([42]),
  };
  rn.step(msg({ type: "MsgSnap", from: 1, to: 2, term: 2, snapshot: snap }));
  const rd = persist(rn, s);
  assert.deepEqual(rd.snapshot, snap);
  assert.equal(rd.hardState?.commit, 10);
  assert.equal(rd.committedEntries.length, 0);
  assert.equal(rn.hasReady(), false);
  assert.equal(rn.status().applied, 10);
  assert.equal(s.firstIndex(), 11);
});

Deno.test("a proposal while a conf change is pending still reaches the log; readIndex via Ready", () => {
  const s = new MemoryStorage([1]);
  const rn = newNode([1], 1, s);
  rn.campaign();
  persist(rn, s);
  rn.proposeConfChange({ type: "AddNode", nodeId: 2 });
  rn.propose(new TextEncoder().encode("x"));
  const rd = persist(rn, s);
  assert.deepEqual(rd.entries.map((e) => e.type), ["ConfChange", "Normal"]);
  rn.readIndex(new TextEncoder().encode("q"));
  const rd2 = persist(rn, s);
  assert.equal(rd2.readStates.length, 1);
});

Deno.test("a snapshot is not restored while the application applies entries it took in a Ready", () => {
  const s = new MemoryStorage([1, 2]);
  const rn = newNode([1, 2], 2, s);
  rn.step(
    msg({ type: "MsgApp", from: 1, to: 2, term: 1, entries: [ent(1, 1), ent(2, 1)], commit: 2 }),
  );
  const rd = rn.ready();
  assert.equal(rd.committedEntries.length, 2);
  s.append(rd.entries);
  // While those two entries are being applied, a snapshot arrives: switching to it (and to its
  // configuration) now would have the application apply them on top of it. It is deferred.
  const snap: Snapshot = {
    metadata: { index: 10, term: 1, confState: { voters: [1, 2, 3], learners: [] } },
    data: new Uint8Array(),
  };
  rn.step(msg({ type: "MsgSnap", from: 1, to: 2, term: 1, snapshot: snap }));
  assert.equal(rn.raft.raftLog.hasPendingSnapshot(), false);
  assert.deepEqual(rn.raft.trk.confState(), { voters: [1, 2], learners: [] });
  const resp = rn.raft.msgs.find((m) => m.type === "MsgAppResp");
  assert.equal(resp?.index, 2, "the leader learns where the log stands and retries later");
  rn.advance(rd);
  rn.step(msg({ type: "MsgSnap", from: 1, to: 2, term: 1, snapshot: snap }));
  assert.equal(rn.raft.raftLog.hasPendingSnapshot(), true, "restored once applied");
  assert.deepEqual(rn.raft.trk.confState(), { voters: [1, 2, 3], learners: [] });
});
