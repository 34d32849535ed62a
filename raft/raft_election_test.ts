/**
 * Leader election (Raft paper §5.2, §5.4.1): randomized timeouts, winning and losing
 * elections, split votes, the voting rules, and the leader's no-op.
 */
import assert from "node:assert/strict";
import { seededRandom } from "./logger.ts";
import { Raft } from "./raft.ts";
import { MemoryStorage } from "./storage.ts";
import { checkState, entsWithTerms, hup, msg, peerWithLog, tickN } from "./testing/helpers.ts";
import { Network, newTestRaft } from "./testing/network.ts";

Deno.test("randomized election timeout is drawn from [electionTick, 2*electionTick) via the injected rand", () => {
  let next = 0;
  const values = [0, 0.5, 0.999999];
  const r = newTestRaft(1, [1, 2, 3], 10, 1, undefined, { rand: () => values[next++ % 3]! });
  const seen: number[] = [];
  for (let i = 0; i < 3; i++) {
    r.resetRandomizedElectionTimeout();
    seen.push(r.randomizedElectionTimeout);
  }
  // (the constructor consumed one value already)
  assert.deepEqual(seen.sort((a, b) => a - b), [10, 15, 19]);
  const s = newTestRaft(1, [1, 2, 3], 10, 1, undefined, { rand: seededRandom(42) });
  const distinct = new Set<number>();
  for (let i = 0; i < 1000; i++) {
    s.resetRandomizedElectionTimeout();
    assert.ok(s.randomizedElectionTimeout >= 10 && s.randomizedElectionTimeout < 20);
    distinct.add(s.randomizedElectionTimeout);
  }
  assert.equal(distinct.size, 10, "every value in the range occurs");
});

Deno.test("the same seed replays the same election timeouts; different ids differ by default", () => {
  const a = newTestRaft(1, [1, 2, 3], 10, 1, undefined, { rand: seededRandom(7) });
  const b = newTestRaft(1, [1, 2, 3], 10, 1, undefined, { rand: seededRandom(7) });
  const seqA: number[] = [];
  const seqB: number[] = [];
  for (let i = 0; i < 20; i++) {
    a.resetRandomizedElectionTimeout();
    b.resetRandomizedElectionTimeout();
    seqA.push(a.randomizedElectionTimeout);
    seqB.push(b.randomizedElectionTimeout);
  }
  assert.deepEqual(seqA, seqB);
  const c = newTestRaft(2, [1, 2, 3], 10, 1);
  const d = newTestRaft(3, [1, 2, 3], 10, 1);
  const seqC: number[] = [];
  const seqD: number[] = [];
  for (let i = 0; i < 20; i++) {
    c.resetRandomizedElectionTimeout();
    d.resetRandomizedElectionTimeout();
    seqC.push(c.randomizedElectionTimeout);
    seqD.push(d.randomizedElectionTimeout);
  }
  assert.notDeepEqual(seqC, seqD);
});

Deno.test("a follower campaigns exactly when its randomized timeout passes", () => {
  const r = newTestRaft(1, [1, 2, 3], 10, 1);
  const timeout = r.randomizedElectionTimeout;
  tickN(r, timeout - 1);
  assert.equal(r.state, "Follower");
  r.tick();
  assert.equal(r.state, "Candidate");
  assert.equal(r.term, 1);
  const votes = r.readMessages().filter((m) => m.type === "MsgVote");
  assert.deepEqual(votes.map((m) => m.to), [2, 3]);
});

Deno.test("election outcomes: majority wins, minority stays candidate", () => {
  const cases: { peers: (null | undefined)[]; state: string }[] = [
    { peers: [undefined, undefined, undefined], state: "Leader" },
    { peers: [undefined, undefined, null], state: "Leader" },
    { peers: [undefined, null, null], state: "Candidate" },
    { peers: [undefined, null, null, undefined], state: "Candidate" },
    { peers: [undefined, null, null, undefined, undefined], state: "Leader" },
  ];
  for (const [i, c] of cases.entries()) {
    const nt = new Network(c.peers);
    nt.send(hup(1));
    assert.equal(nt.peer(1).state, c.state, `case ${i}`);
    assert.equal(nt.peer(1).term, 1, `case ${i}`);
  }
});

Deno.test("a single-voter group elects itself at once", () => {
  const r = newTestRaft(1, [1], 10, 1);
  r.step(hup(1));
  checkState(r, "Leader", 1);
  assert.equal(r.raftLog.committed, 1, "its no-op commits at once");
});

Deno.test("split vote: two candidates at the same term both lose, then a later election succeeds", () => {
  const nt = new Network([undefined, undefined, undefined, undefined]);
  const r1 = nt.peer(1);
  const r3 = nt.peer(3);
  r1.step(hup(1));
  r3.step(hup(3));
  const m1 = r1.readMessages();
  const m3 = r3.readMessages();
  // 2 hears 1 first and 4 hears 3 first: each candidate gets 2 of 4 votes.
  const order = [
    m1.find((m) => m.to === 2)!,
    m3.find((m) => m.to === 4)!,
    ...m1.filter((m) => m.to !== 2),
    ...m3.filter((m) => m.to !== 4),
  ];
  for (const m of order) nt.send(m);
  // Each got 2 grants and 2 rejections: no majority is possible, both concede.
  for (const id of [1, 2, 3, 4]) assert.notEqual(nt.peer(id).state, "Leader");
  assert.equal(r1.state, "Follower");
  assert.equal(r3.state, "Follower");
  assert.equal(r1.term, 1);
  assert.equal(r3.term, 1);
  // Ticking on: randomized timeouts break the tie and exactly one leader emerges.
  for (let i = 0; i < 100; i++) {
    for (const id of [1, 2, 3, 4]) {
      const p = nt.peer(id);
      p.tick();
      nt.send(...p.readMessages());
    }
    if ([1, 2, 3, 4].some((id) => nt.peer(id).state === "Leader")) break;
  }
  const leaders = [1, 2, 3, 4].filter((id) => nt.peer(id).state === "Leader");
  assert.equal(leaders.length, 1);
  assert.ok(nt.peer(leaders[0]!).term >= 2);
});

Deno.test("a peer votes at most once per term, and repeats its vote to the same candidate", () => {
  const r = newTestRaft(1, [1, 2, 3], 10, 1);
  r.step(msg({ type: "MsgVote", from: 2, to: 1, term: 1 }));
  r.step(msg({ type: "MsgVote", from: 3, to: 1, term: 1 }));
  r.step(msg({ type: "MsgVote", from: 2, to: 1, term: 1 }));
  const resps = r.readMessages();
  assert.deepEqual(resps.map((m) => [m.to, m.reject]), [[2, false], [3, true], [2, false]]);
  assert.equal(r.vote, 2);
});

Deno.test("voting rule: grant only to a candidate whose log is at least as up to date (§5.4.1)", () => {
  // Voter log: terms [1, 2] (last index 2, last term 2).
  const cases: { index: number; logTerm: number; reject: boolean }[] = [
    { index: 1, logTerm: 1, reject: true }, // older last term
    { index: 3, logTerm: 1, reject: true }, // longer but older last term
    { index: 1, logTerm: 2, reject: true }, // same term, shorter
    { index: 2, logTerm: 2, reject: false }, // identical
    { index: 3, logTerm: 2, reject: false }, // same term, longer
    { index: 1, logTerm: 3, reject: false }, // newer last term, shorter
  ];
  for (const [i, c] of cases.entries()) {
    const r = peerWithLog(1, [1, 2], [1, 2]);
    r.step(msg({ type: "MsgVote", from: 2, to: 1, term: 3, index: c.index, logTerm: c.logTerm }));
    const [resp] = r.readMessages();
    assert.equal(resp!.type, "MsgVoteResp", `case ${i}`);
    assert.equal(resp!.reject, c.reject, `case ${i}`);
  }
});

Deno.test("a follower that knows a leader does not vote for another candidate in its term", () => {
  const r = newTestRaft(1, [1, 2, 3], 10, 1);
  r.becomeFollower(2, 2);
  r.step(msg({ type: "MsgVote", from: 3, to: 1, term: 2, index: 5, logTerm: 2 }));
  assert.equal(r.readMessages()[0]!.reject, true);
});

Deno.test("messages from an older term are ignored; a higher term turns a leader into a follower", () => {
  const nt = new Network([undefined, undefined, undefined]);
  nt.send(hup(1));
  const r = nt.peer(1);
  const before = r.raftLog.lastIndex();
  r.step(msg({ type: "MsgApp", from: 2, to: 1, term: 0 + r.term - 1, index: 5, logTerm: 9 }));
  checkState(r, "Leader", 1);
  assert.equal(r.raftLog.lastIndex(), before);
  r.step(msg({ type: "MsgApp", from: 3, to: 1, term: r.term + 1, index: 0, logTerm: 0 }));
  checkState(r, "Follower", 3);
});

Deno.test("a candidate that hears from a leader of its term becomes its follower", () => {
  const r = newTestRaft(1, [1, 2, 3], 10, 1);
  r.becomeCandidate();
  r.step(msg({ type: "MsgHeartbeat", from: 2, to: 1, term: r.term }));
  checkState(r, "Follower", 2);
  assert.equal(r.term, 1);
});

Deno.test("a candidate rejected by a majority returns to follower", () => {
  const r = newTestRaft(1, [1, 2, 3], 10, 1);
  r.becomeCandidate();
  r.step(msg({ type: "MsgVoteResp", from: 2, to: 1, term: 1, reject: true }));
  assert.equal(r.state, "Candidate");
  r.step(msg({ type: "MsgVoteResp", from: 3, to: 1, term: 1, reject: true }));
  assert.equal(r.state, "Follower");
});

Deno.test("a new leader appends an empty no-op entry of its term, which commits everything before it", () => {
  const nt = new Network([
    peerWithLog(1, [1, 2, 3], [1, 1]),
    peerWithLog(2, [1, 2, 3], [1, 1]),
    peerWithLog(3, [1, 2, 3], [1]),
  ]);
  nt.send(hup(1));
  const r = nt.peer(1);
  checkState(r, "Leader", 1);
  const last = r.raftLog.allEntries().at(-1)!;
  assert.equal(last.index, 3);
  assert.equal(last.term, r.term);
  assert.equal(last.type, "Normal");
  assert.equal(last.data.byteLength, 0);
  for (const id of [1, 2, 3]) assert.equal(nt.peer(id).raftLog.committed, 3);
});

Deno.test("a peer restarts with its persisted term and vote and does not vote twice", () => {
  const s = new MemoryStorage([1, 2, 3]);
  s.append(entsWithTerms(1));
  s.setHardState({ term: 4, vote: 2, commit: 1 });
  const r = new Raft({ id: 1, electionTick: 10, heartbeatTick: 1, storage: s });
  assert.equal(r.term, 4);
  assert.equal(r.vote, 2);
  assert.equal(r.raftLog.committed, 1);
  r.step(msg({ type: "MsgVote", from: 3, to: 1, term: 4, index: 5, logTerm: 4 }));
  assert.equal(r.readMessages()[0]!.reject, true);
});
