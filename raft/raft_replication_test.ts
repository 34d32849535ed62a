/**
 * Log replication and commitment (Raft paper §5.3, §5.4.2): replication to every peer, the
 * current-term commit rule, repair of conflicting follower logs with fast backtracking, flow
 * control (maxSizePerMsg, maxInflightMsgs) and batched appends.
 */
import assert from "node:assert/strict";
import { ProposalDroppedError } from "./errors.ts";
import { MemoryStorage } from "./storage.ts";
import {
  electedNetwork,
  entsWithTerms,
  hup,
  logTerms,
  msg,
  peerWithLog,
  prop,
} from "./testing/helpers.ts";
import { Network, newTestRaft } from "./testing/network.ts";
import type { Message } from "./types.ts";

Deno.test("proposals are replicated to every peer and committed everywhere", () => {
  const nt = electedNetwork(3);
  nt.send(prop(1, "a"), prop(1, "b"));
  for (const id of [1, 2, 3]) {
    const r = nt.peer(id);
    assert.deepEqual(logTerms(r), [1, 1, 1]);
    assert.equal(r.raftLog.committed, 3);
    assert.deepEqual(
      r.raftLog.allEntries().slice(1).map((e) => new TextDecoder().decode(e.data)),
      ["a", "b"],
    );
  }
});

Deno.test("a proposal to a follower is forwarded to the leader", () => {
  const nt = electedNetwork(3);
  nt.send(prop(2, "via follower"));
  assert.equal(nt.peer(1).raftLog.committed, 2);
  assert.equal(new TextDecoder().decode(nt.peer(3).raftLog.allEntries()[1]!.data), "via follower");
});

Deno.test("a proposal with no leader known is dropped with ProposalDroppedError", () => {
  const r = newTestRaft(1, [1, 2, 3], 10, 1);
  assert.throws(() => r.step(prop(1)), ProposalDroppedError);
  r.becomeCandidate();
  assert.throws(() => r.step(prop(1)), ProposalDroppedError);
});

Deno.test("commit rule: an old-term entry on a majority is not committed until a current-term one is (§5.4.2)", () => {
  const s = new MemoryStorage([1, 2]);
  s.append(entsWithTerms(1, 2));
  s.setHardState({ term: 2, vote: 0, commit: 0 });
  const r = newTestRaft(1, [1, 2], 10, 1, s);
  r.becomeCandidate(); // term 3
  r.becomeLeader(); // no-op at index 3, term 3
  r.readMessages();
  for (const [index, committed] of [[1, 0], [2, 0], [3, 3]] as const) {
    r.step(msg({ type: "MsgAppResp", from: 2, to: 1, term: r.term, index }));
    assert.equal(r.raftLog.committed, committed, `after ack of ${index}`);
  }
});

Deno.test("figure 8: an old-term entry on a majority is not committed, so it may be overwritten safely", () => {
  // Five peers, one entry per MsgApp so that an old-term entry can reach a majority alone.
  const nt = new Network([undefined, undefined, undefined, undefined, undefined], {
    configure: (c) => {
      c.maxSizePerMsg = 1;
    },
  });
  nt.send(hup(1)); // term 1, no-op at 1 everywhere
  // (a) 1 writes index 2 (term 1) to 2 only.
  for (const id of [3, 4, 5]) nt.isolate(id);
  nt.send(prop(1, "old"));
  nt.recover();
  // (b) 5 wins term 2 with 3 and 4 (1 and 2 refuse: their logs are longer, but they learn the
  // term), and its no-op (index 2, term 2) reaches nobody.
  nt.ignore("MsgApp");
  nt.send(hup(5));
  assert.equal(nt.peer(5).state, "Leader");
  nt.recover();
  // (c) 1 wins term 3 with 2, 3, 4 and copies index 2 (term 1) to 3 and 4 — a majority holds
  // it — but its own no-op (term 3) gets no further than 2: after the first append to each
  // peer (3 and 4 reject it), appends carrying term-3 entries are lost.
  nt.isolate(5);
  const probed = new Set<number>();
  nt.msgHook = (m) => {
    if (m.type !== "MsgApp" || !m.entries.some((e) => e.term === 3)) return true;
    if (probed.has(m.to)) return false;
    probed.add(m.to);
    return true;
  };
  nt.send(hup(1));
  const lead = nt.peer(1);
  assert.equal(lead.state, "Leader");
  assert.deepEqual(logTerms(nt.peer(3)), [1, 1]);
  assert.equal(lead.raftLog.committed, 1, "index 2 is of an older term: not committed");
  // (d) 1 is cut off; 5 (last term 2) wins term 4 and overwrites index 2 everywhere. That is
  // safe only because index 2 was never committed.
  nt.msgHook = undefined;
  nt.recover();
  nt.isolate(1);
  const p5 = nt.peer(5);
  p5.becomeFollower(p5.term, 0); // 5 restarts (it still believed it led term 2)
  for (let i = 0; i < 3 && p5.state !== "Leader"; i++) nt.send(hup(5));
  assert.equal(p5.state, "Leader");
  assert.ok(p5.term > lead.term);
  for (const id of [2, 3, 4, 5]) {
    assert.deepEqual(
      logTerms(nt.peer(id)).slice(0, 2),
      [1, 2],
      `peer ${id}: ${logTerms(nt.peer(id))}`,
    );
  }
});

Deno.test("log repair: conflicting or missing follower entries are replaced by the leader's", () => {
  // Leader log (term 4 leader): [1,1,1,4,4,5,5,6,6,6] like figure 7 of the Raft paper.
  const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  const followers = [
    [1, 1, 1, 4, 4, 5, 5, 6, 6], // missing one
    [1, 1, 1, 4], // missing many
    [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], // one extra
    [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], // extra uncommitted from term 7
    [1, 1, 1, 4, 4, 4, 4], // extra from term 4
    [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], // extra from terms 2, 3
  ];
  for (const [i, f] of followers.entries()) {
    const lead = peerWithLog(1, [1, 2, 3], leaderTerms);
    const follower = peerWithLog(2, [1, 2, 3], f);
    // The leader needs a vote: the third peer has an empty log and higher term than all.
    const nt = new Network([lead, follower, null]);
    lead.term = Math.max(...f, 6);
    lead.becomeCandidate();
    lead.becomeLeader();
    lead.bcastAppend();
    nt.send(...lead.readMessages());
    nt.send(prop(1, "x"));
    assert.deepEqual(logTerms(follower), logTerms(lead), `case ${i}`);
    assert.equal(follower.raftLog.committed, lead.raftLog.lastIndex(), `case ${i}`);
  }
});

Deno.test("fast backtracking: a long divergent follower suffix is skipped a term at a time", () => {
  // Follower has 50 entries of term 2 and 50 of term 3 after a common prefix; the leader's
  // entries after the prefix are all term 4. Probing one index at a time would take ~100
  // rejections; with the hint it takes a handful.
  const common = [1, 1, 1];
  const leaderTerms = [...common, ...Array(20).fill(4)];
  const followerTerms = [...common, ...Array(50).fill(2), ...Array(50).fill(3)];
  const lead = peerWithLog(1, [1, 2], leaderTerms);
  const follower = peerWithLog(2, [1, 2], followerTerms);
  lead.term = 4;
  lead.becomeCandidate();
  lead.becomeLeader();
  lead.bcastAppend();
  const nt = new Network([lead, follower]);
  nt.send(...lead.readMessages());
  const rejections = nt.delivered.filter((m) => m.type === "MsgAppResp" && m.reject);
  assert.ok(rejections.length <= 3, `took ${rejections.length} rejections`);
  assert.deepEqual(logTerms(follower), logTerms(lead));
});

Deno.test("a rejection carries the follower's hint: last index at or before the probe with term <= probe term", () => {
  const r = peerWithLog(2, [1, 2], [1, 1, 2, 2, 3, 3]);
  r.step(msg({ type: "MsgApp", from: 1, to: 2, term: 5, index: 6, logTerm: 4 }));
  let [resp] = r.readMessages();
  assert.equal(resp!.reject, true);
  assert.deepEqual([resp!.rejectHint, resp!.logTerm], [6, 3]);
  r.step(msg({ type: "MsgApp", from: 1, to: 2, term: 5, index: 9, logTerm: 4 }));
  [resp] = r.readMessages();
  assert.deepEqual([resp!.rejectHint, resp!.logTerm], [6, 3], "probe past the end");
  r.step(msg({ type: "MsgApp", from: 1, to: 2, term: 5, index: 5, logTerm: 2 }));
  [resp] = r.readMessages();
  assert.deepEqual([resp!.rejectHint, resp!.logTerm], [4, 2]);
});

Deno.test("a stale or duplicated append never truncates entries a newer append added", () => {
  const r = newTestRaft(2, [1, 2], 10, 1);
  const appA: Message = msg({
    type: "MsgApp",
    from: 1,
    to: 2,
    term: 1,
    index: 0,
    logTerm: 0,
    entries: entsWithTerms(1),
  });
  const appB = msg({
    type: "MsgApp",
    from: 1,
    to: 2,
    term: 1,
    index: 1,
    logTerm: 1,
    entries: [entsWithTerms(1, 1)[1]!],
  });
  r.step(appA);
  r.step(appB);
  r.step(appA); // duplicate, delivered late
  assert.deepEqual(logTerms(r), [1, 1]);
});

Deno.test("maxSizePerMsg bounds the entries of one MsgApp (at least one entry is always sent)", () => {
  const nt = new Network([undefined, undefined], {
    configure: (c) => {
      c.maxSizePerMsg = 300;
    },
  });
  nt.send(hup(1));
  const lead = nt.peer(1);
  nt.isolate(2);
  for (let i = 0; i < 10; i++) nt.send(prop(1, new Uint8Array(100)));
  nt.recover();
  nt.delivered = [];
  lead.trk.progress.get(2)!.becomeProbe();
  lead.sendAppend(2);
  nt.send(...lead.readMessages());
  const apps = nt.delivered.filter((m) => m.type === "MsgApp" && m.entries.length > 0);
  assert.ok(apps.length >= 4, `${apps.length} appends`);
  for (const m of apps) {
    const size = m.entries.reduce((n, e) => n + e.data.byteLength + 16, 0);
    assert.ok(size <= 300 || m.entries.length === 1, `append of ${size} bytes`);
  }
  assert.equal(nt.peer(2).raftLog.lastIndex(), lead.raftLog.lastIndex());
  // A single entry larger than the limit still goes out.
  nt.send(prop(1, new Uint8Array(1000)));
  assert.equal(nt.peer(2).raftLog.lastIndex(), lead.raftLog.lastIndex());
});

Deno.test("maxInflightMsgs: at most that many appends in flight; a heartbeat response frees one slot", () => {
  const nt = new Network([undefined, undefined], {
    configure: (c) => {
      c.maxInflightMsgs = 3;
    },
  });
  nt.send(hup(1));
  const lead = nt.peer(1);
  assert.equal(lead.trk.progress.get(2)!.state, "Replicate");
  // Proposals go out but no acknowledgement comes back.
  nt.ignore("MsgAppResp");
  nt.delivered = [];
  for (let i = 0; i < 10; i++) nt.send(prop(1, "x"));
  const apps = nt.delivered.filter((m) => m.type === "MsgApp" && m.to === 2);
  assert.equal(apps.length, 3);
  assert.ok(lead.trk.progress.get(2)!.inflights.full());
  nt.delivered = [];
  lead.step(msg({ type: "MsgHeartbeatResp", from: 2, to: 1, term: lead.term }));
  nt.send(...lead.readMessages());
  assert.equal(nt.delivered.filter((m) => m.type === "MsgApp").length, 1);
  // Once acknowledgements flow again, the follower catches up.
  nt.recover();
  lead.step(msg({ type: "MsgHeartbeatResp", from: 2, to: 1, term: lead.term }));
  nt.send(...lead.readMessages());
  assert.equal(nt.peer(2).raftLog.lastIndex(), lead.raftLog.lastIndex());
});

Deno.test("batched appends: many proposals in one step go out as one MsgApp per follower", () => {
  const nt = electedNetwork(3);
  const lead = nt.peer(1);
  lead.step(msg({
    type: "MsgProp",
    from: 1,
    to: 1,
    entries: Array.from(
      { length: 100 },
      () => ({ term: 0, index: 0, type: "Normal" as const, data: new Uint8Array(8) }),
    ),
  }));
  const apps = lead.readMessages().filter((m) => m.type === "MsgApp");
  assert.equal(apps.length, 2);
  for (const m of apps) assert.equal(m.entries.length, 100);
  nt.send(...apps);
  assert.equal(lead.raftLog.committed, 101);
});

Deno.test("probe state sends one append at a time; replicate state pipelines", () => {
  const nt = electedNetwork(2);
  const lead = nt.peer(1);
  const pr = lead.trk.progress.get(2)!;
  pr.becomeProbe();
  nt.ignore("MsgAppResp");
  nt.delivered = [];
  nt.send(prop(1, "a"), prop(1, "b"), prop(1, "c"));
  assert.equal(nt.delivered.filter((m) => m.type === "MsgApp").length, 1, "probe: one in flight");
  pr.becomeReplicate();
  nt.delivered = [];
  nt.send(prop(1, "d"), prop(1, "e"));
  assert.equal(nt.delivered.filter((m) => m.type === "MsgApp").length, 2, "replicate: pipelined");
});

Deno.test("MsgUnreachable sends a replicating follower back to probe", () => {
  const nt = electedNetwork(2);
  const lead = nt.peer(1);
  assert.equal(lead.trk.progress.get(2)!.state, "Replicate");
  lead.step(msg({ type: "MsgUnreachable", from: 2, to: 1 }));
  assert.equal(lead.trk.progress.get(2)!.state, "Probe");
});

Deno.test("heartbeats carry a commit index capped at what the follower is known to have", () => {
  const nt = electedNetwork(3);
  nt.isolate(3);
  nt.send(prop(1, "a"));
  const lead = nt.peer(1);
  assert.equal(lead.raftLog.committed, 2);
  lead.step(msg({ type: "MsgBeat", from: 1, to: 1 }));
  const hbs = lead.readMessages().filter((m) => m.type === "MsgHeartbeat");
  assert.deepEqual(hbs.map((m) => [m.to, m.commit]), [[2, 2], [3, 1]]);
});

Deno.test("a follower's commit index follows the leader's, never past its own log", () => {
  const nt = electedNetwork(3);
  nt.isolate(3);
  nt.send(prop(1, "a"));
  // 2 learns the new commit index from the leader's follow-up append.
  assert.equal(nt.peer(2).raftLog.committed, 2);
  assert.equal(nt.peer(3).raftLog.committed, 1);
  nt.recover();
  // A heartbeat never moves 3's commit index past what it holds...
  const hb = msg({ type: "MsgHeartbeat", from: 1, to: 3, term: nt.peer(1).term, commit: 1 });
  nt.peer(3).step(hb);
  nt.peer(3).readMessages();
  assert.equal(nt.peer(3).raftLog.committed, 1);
  // ...and once it has the entry, it learns the commit.
  nt.send(msg({ type: "MsgBeat", from: 1, to: 1 }));
  assert.equal(nt.peer(3).raftLog.committed, 2);
});
