/**
 * PreVote (thesis §9.6) and CheckQuorum (thesis §6.2 / §4.2.3): a partitioned peer that
 * rejoins does not disrupt a healthy leader, and a leader that lost its quorum steps down.
 * Both are switchable.
 */
import assert from "node:assert/strict";
import type { Raft } from "./raft.ts";
import { checkState, electedNetwork, hup, msg, prop } from "./testing/helpers.ts";
import { Network, type NetworkOptions } from "./testing/network.ts";

/** Ticks every peer once and delivers whatever that produces. */
function tickAll(nt: Network, n: number): void {
  for (let i = 0; i < n; i++) nt.tickAll();
}

/** Isolates 3, lets it time out repeatedly, then heals the partition. */
function partitionAndRejoin(opts: NetworkOptions): { nt: Network; lead: Raft; termBefore: number } {
  const nt = electedNetwork(3, opts);
  const lead = nt.peer(1);
  const termBefore = lead.term;
  nt.isolate(3);
  const r3 = nt.peer(3);
  for (let i = 0; i < 100; i++) nt.tickAll();
  assert.equal(r3.state === "Leader", false);
  nt.recover();
  tickAll(nt, 30);
  return { nt, lead, termBefore };
}

Deno.test("PreVote: an isolated peer does not inflate its term, and rejoining does not disrupt the leader", () => {
  const { nt, lead, termBefore } = partitionAndRejoin({ preVote: true });
  assert.equal(nt.peer(3).term, termBefore, "pre-elections never bumped the term");
  checkState(lead, "Leader", 1);
  assert.equal(lead.term, termBefore);
  checkState(nt.peer(3), "Follower", 1);
});

Deno.test("PreVote + CheckQuorum (mrkv's default): rejoining does not disrupt the leader", () => {
  const { nt, lead, termBefore } = partitionAndRejoin({ preVote: true, checkQuorum: true });
  checkState(lead, "Leader", 1);
  assert.equal(lead.term, termBefore);
  checkState(nt.peer(3), "Follower", 1);
});

Deno.test("without PreVote or CheckQuorum, a rejoining peer with a higher term does disrupt the leader", () => {
  const { nt, lead, termBefore } = partitionAndRejoin({});
  assert.ok(nt.peer(3).term > termBefore + 1 || lead.term > termBefore, "terms moved on");
  assert.ok(lead.term > termBefore, "the old leader was deposed");
});

Deno.test("PreVote: a pre-candidate keeps its term and vote; winning the pre-vote starts a real election", () => {
  const nt = new Network([undefined, undefined, undefined], { preVote: true });
  const r1 = nt.peer(1);
  r1.step(hup(1));
  assert.equal(r1.state, "PreCandidate");
  assert.equal(r1.term, 0);
  assert.equal(r1.vote, 0);
  const out = r1.readMessages();
  assert.ok(out.every((m) => m.type === "MsgPreVote" && m.term === 1));
  nt.send(...out);
  checkState(r1, "Leader", 1);
  assert.equal(r1.term, 1);
  // The voters did not change term on the pre-vote itself, only on the real vote.
  assert.equal(nt.peer(2).term, 1);
});

Deno.test("PreVote: a pre-candidate with a stale log loses and returns to follower", () => {
  const nt = electedNetwork(3, { preVote: true });
  nt.isolate(3);
  nt.send(prop(1, "a"));
  nt.recover();
  // 3 lacks the entry: 1 and 2 reject its pre-vote.
  const r3 = nt.peer(3);
  r3.becomeFollower(r3.term, 0); // forget the leader, as after a timeout
  r3.step(hup(3));
  nt.flush(3);
  assert.equal(r3.state, "Follower");
  checkState(nt.peer(1), "Leader", 1);
  assert.equal(nt.peer(1).term, 1);
});

Deno.test("CheckQuorum: a leader that has not heard from a quorum for an election timeout steps down", () => {
  const nt = electedNetwork(3, { checkQuorum: true });
  const lead = nt.peer(1);
  nt.isolate(1);
  for (let i = 0; i < lead.electionTimeout; i++) {
    lead.tick();
    nt.flush(1);
  }
  assert.equal(lead.state, "Leader", "first check: peers were active before");
  for (let i = 0; i < lead.electionTimeout; i++) {
    lead.tick();
    nt.flush(1);
  }
  checkState(lead, "Follower", 0);
});

Deno.test("CheckQuorum: a leader hearing from its quorum stays leader", () => {
  const nt = electedNetwork(3, { checkQuorum: true });
  tickAll(nt, 50);
  checkState(nt.peer(1), "Leader", 1);
  assert.equal(nt.peer(1).term, 1);
});

Deno.test("CheckQuorum lease: a follower that heard from the leader recently ignores a higher-term vote", () => {
  const nt = electedNetwork(3, { checkQuorum: true });
  const r2 = nt.peer(2);
  r2.step(msg({ type: "MsgVote", from: 3, to: 2, term: 5, index: 99, logTerm: 9 }));
  assert.equal(r2.term, 1);
  assert.deepEqual(r2.readMessages(), []);
  // After an election timeout without the leader, the lease has expired.
  for (let i = 0; i < r2.electionTimeout; i++) r2.electionElapsed++;
  r2.step(msg({ type: "MsgVote", from: 3, to: 2, term: 5, index: 99, logTerm: 9 }));
  assert.equal(r2.term, 5);
  assert.equal(r2.readMessages()[0]!.reject, false);
});

Deno.test("a stale leader that rejoins learns the new term from a follower and steps down", () => {
  const nt = electedNetwork(3, { preVote: true, checkQuorum: true });
  const old = nt.peer(1);
  nt.isolate(1);
  // 2 and 3 elect 2 after their leases expire.
  for (let i = 0; i < 40 && nt.peer(2).state !== "Leader" && nt.peer(3).state !== "Leader"; i++) {
    for (const id of [2, 3]) {
      nt.peer(id).tick();
      nt.flush(id);
    }
  }
  const newLead = [2, 3].find((id) => nt.peer(id).state === "Leader")!;
  assert.ok(newLead);
  nt.recover();
  // The old leader's heartbeat at the old term is answered with the new term.
  nt.send(msg({ type: "MsgBeat", from: 1, to: 1 }));
  assert.equal(old.state, "Follower");
  assert.equal(old.term, nt.peer(newLead).term);
});
