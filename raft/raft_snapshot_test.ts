/**
 * Log compaction and snapshots (Raft paper §7): a leader sends its snapshot when a follower
 * needs compacted entries, copes with a snapshot that is temporarily unavailable, tracks the
 * snapshot's fate, and followers install, ignore or fast-forward on snapshots.
 */
import assert from "node:assert/strict";
import { MemoryStorage } from "./storage.ts";
import { checkState, electedNetwork, hup, msg, prop } from "./testing/helpers.ts";
import { Network, newTestRaft, nextEnts, nodes } from "./testing/network.ts";
import type { Snapshot } from "./types.ts";

/** Elects 1 in a 3-peer network, lets 3 fall behind, and compacts the leader's log. */
function laggingFollowerWithCompactedLeader(): Network {
  const nt = electedNetwork(3);
  nt.isolate(3);
  for (let i = 0; i < 5; i++) nt.send(prop(1, `e${i}`));
  const lead = nt.peer(1);
  const s = nt.storage.get(1)!;
  nextEnts(lead, s);
  s.createSnapshot(
    lead.raftLog.applied,
    { voters: nodes(lead), learners: [] },
    new Uint8Array([7]),
  );
  s.compact(lead.raftLog.applied);
  nt.recover();
  return nt;
}

Deno.test("a follower that needs compacted entries gets the snapshot, then normal appends", () => {
  const nt = laggingFollowerWithCompactedLeader();
  const lead = nt.peer(1);
  nt.delivered = [];
  nt.send(msg({ type: "MsgBeat", from: 1, to: 1 }));
  const snaps = nt.delivered.filter((m) => m.type === "MsgSnap");
  assert.equal(snaps.length, 1);
  assert.equal(snaps[0]!.snapshot!.metadata.index, 6);
  const f = nt.peer(3);
  assert.equal(f.raftLog.committed, 6);
  assert.deepEqual(f.raftLog.unstable.snapshot?.data, new Uint8Array([7]));
  const pr = lead.trk.progress.get(3)!;
  assert.equal(pr.match, 6);
  assert.equal(pr.state, "Replicate");
  nt.send(prop(1, "after"));
  assert.equal(f.raftLog.lastIndex(), 7);
  assert.equal(f.raftLog.committed, 7);
});

Deno.test("snapshot temporarily unavailable: nothing is sent, progress stays Probe, a later try succeeds", () => {
  const nt = laggingFollowerWithCompactedLeader();
  const lead = nt.peer(1);
  const s = nt.storage.get(1)!;
  s.snapshotUnavailable = true;
  nt.delivered = [];
  nt.send(msg({ type: "MsgBeat", from: 1, to: 1 }));
  assert.equal(nt.delivered.filter((m) => m.type === "MsgSnap").length, 0);
  const pr = lead.trk.progress.get(3)!;
  assert.equal(pr.state, "Probe");
  assert.equal(pr.match, 1);
  // The next heartbeat response retries once the snapshot is ready.
  s.snapshotUnavailable = false;
  nt.send(msg({ type: "MsgBeat", from: 1, to: 1 }));
  assert.equal(nt.delivered.filter((m) => m.type === "MsgSnap").length, 1);
  assert.equal(nt.peer(3).raftLog.committed, 6);
});

Deno.test("a snapshot reported failed is sent again; one reported finished resumes probing after it", () => {
  const nt = laggingFollowerWithCompactedLeader();
  const lead = nt.peer(1);
  nt.ignore("MsgSnap");
  nt.send(msg({ type: "MsgBeat", from: 1, to: 1 }));
  const pr = lead.trk.progress.get(3)!;
  assert.equal(pr.state, "Snapshot");
  assert.equal(pr.pendingSnapshot, 6);
  assert.ok(pr.isPaused(), "nothing else is sent while a snapshot is in flight");
  lead.step(msg({ type: "MsgSnapStatus", from: 3, to: 1, reject: true }));
  assert.equal(pr.state, "Probe");
  assert.equal(pr.next, 2, "failed: back to probing from the last match");
  assert.ok(pr.probeSent, "waits for a heartbeat response before probing again");
  nt.recover();
  nt.send(msg({ type: "MsgBeat", from: 1, to: 1 }));
  assert.equal(nt.peer(3).raftLog.committed, 6);
  // Finish: probing resumes right after the snapshot.
  const nt2 = laggingFollowerWithCompactedLeader();
  const lead2 = nt2.peer(1);
  nt2.ignore("MsgSnap");
  nt2.send(msg({ type: "MsgBeat", from: 1, to: 1 }));
  lead2.step(msg({ type: "MsgSnapStatus", from: 3, to: 1 }));
  const pr2 = lead2.trk.progress.get(3)!;
  assert.equal(pr2.state, "Probe");
  assert.equal(pr2.next, 7);
});

Deno.test("a follower ignores a snapshot older than its commit index", () => {
  const r = newTestRaft(2, [1, 2], 10, 1);
  const snap: Snapshot = {
    metadata: { index: 5, term: 2, confState: { voters: [1, 2], learners: [] } },
    data: new Uint8Array(),
  };
  r.step(msg({ type: "MsgSnap", from: 1, to: 2, term: 2, snapshot: snap }));
  assert.equal(r.raftLog.committed, 5);
  r.readMessages();
  const older: Snapshot = { ...snap, metadata: { ...snap.metadata, index: 3 } };
  r.step(msg({ type: "MsgSnap", from: 1, to: 2, term: 2, snapshot: older }));
  assert.equal(r.raftLog.committed, 5);
  assert.equal(r.raftLog.unstable.snapshot!.metadata.index, 5);
  const [resp] = r.readMessages();
  assert.equal(resp!.index, 5, "answers with its commit index");
});

Deno.test("a follower whose log already matches the snapshot's last entry only advances its commit", () => {
  const nt = electedNetwork(2);
  nt.send(prop(1, "a"), prop(1, "b"));
  const f = nt.peer(2);
  const snap: Snapshot = {
    metadata: { index: 3, term: 1, confState: { voters: [1, 2], learners: [] } },
    data: new Uint8Array(),
  };
  f.raftLog.committed = 2;
  f.step(msg({ type: "MsgSnap", from: 1, to: 2, term: 1, snapshot: snap }));
  assert.equal(f.raftLog.committed, 3);
  assert.equal(f.raftLog.unstable.snapshot, undefined, "no restore");
  assert.equal(f.raftLog.lastIndex(), 3);
});

Deno.test("restoring a snapshot installs its configuration, learners included", () => {
  const r = newTestRaft(3, [1, 2], 10, 1, new MemoryStorage([1, 2]));
  const snap: Snapshot = {
    metadata: { index: 10, term: 3, confState: { voters: [1, 2, 3], learners: [4] } },
    data: new Uint8Array(),
  };
  r.step(msg({ type: "MsgSnap", from: 1, to: 3, term: 3, snapshot: snap }));
  assert.deepEqual(r.trk.confState(), { voters: [1, 2, 3], learners: [4] });
  assert.equal(r.raftLog.lastIndex(), 10);
  assert.equal(r.raftLog.firstIndex(), 11);
  assert.equal(r.raftLog.lastTerm(), 3);
});

Deno.test("a snapshot whose configuration lacks this peer is refused", () => {
  const r = newTestRaft(3, [1, 2, 3], 10, 1);
  const snap: Snapshot = {
    metadata: { index: 10, term: 3, confState: { voters: [1, 2], learners: [] } },
    data: new Uint8Array(),
  };
  r.step(msg({ type: "MsgSnap", from: 1, to: 3, term: 3, snapshot: snap }));
  assert.equal(r.raftLog.lastIndex(), 0);
  assert.equal(r.raftLog.unstable.snapshot, undefined);
});

Deno.test("catch-up in one exchange: an empty new peer is brought up by snapshot with no ticks", () => {
  const nt = laggingFollowerWithCompactedLeader();
  // Peer 3 lost everything: replace it with an empty peer.
  const fresh = newTestRaft(3, [1, 2, 3], 10, 1, new MemoryStorage([1, 2, 3]));
  nt.peers.set(3, fresh);
  nt.send(prop(1, "new"));
  nt.send(msg({ type: "MsgBeat", from: 1, to: 1 }));
  checkState(fresh, "Follower", 1);
  assert.equal(fresh.raftLog.lastIndex(), nt.peer(1).raftLog.lastIndex());
  assert.equal(fresh.raftLog.committed, nt.peer(1).raftLog.committed);
});

Deno.test("a restarted peer recovers the log and commit index it persisted", () => {
  const nt = new Network([undefined, undefined, undefined]);
  nt.send(hup(1));
  nt.send(prop(1, "a"));
  const s = nt.storage.get(2)!;
  const r2 = nt.peer(2);
  nextEnts(r2, s);
  s.setHardState(r2.hardState());
  const restarted = newTestRaft(2, [1, 2, 3], 10, 1, s);
  assert.equal(restarted.raftLog.lastIndex(), 2);
  assert.equal(restarted.raftLog.committed, 2);
  assert.equal(restarted.term, 1);
});
