/**
 * Joint consensus and leadership: a leader demoted or removed by a joint change keeps leading
 * until the joint configuration is left, then steps down; replacing a peer while one node of
 * the old configuration is down; leaving the joint configuration after a leader change (both
 * automatically and explicitly); leader transfer and PreVote in a joint configuration.
 */
import assert from "node:assert/strict";
import { RawNodeCluster } from "./testing/cluster.ts";
import {
  ccAdd as add,
  ccLearner as learner,
  ccRemove as remove,
  ccV2 as v2,
  LEAVE_JOINT as LEAVE,
} from "./testing/conf.ts";
import type { Entry } from "./types.ts";

function elected(opts: { checkQuorum?: boolean; preVote?: boolean } = {}) {
  const c = new RawNodeCluster([1, 2, 3], opts);
  c.campaign(1);
  assert.equal(c.leader(), 1);
  assert.ok(c.propose(1, "a"));
  return c;
}

/** Records node `id`'s role right after it applies each conf change entry. */
function watchRole(c: RawNodeCluster, id: number): string[] {
  const roles: string[] = [];
  c.onApply = (n: number, e: Entry) => {
    if (n === id && e.type !== "Normal") roles.push(c.node(id).rn!.raft.state);
  };
  return roles;
}

/** Ticks until a leader other than `not` exists; returns it. */
function newLeader(c: RawNodeCluster, not: number): number {
  for (let i = 0; i < 200; i++) {
    const l = c.leader();
    if (l !== undefined && l !== not) return l;
    c.tick();
  }
  throw new Error("no new leader");
}

for (
  const [what, change, leaderEnd] of [
    ["demoted", learner(1), "a learner"],
    ["removed", remove(1), "gone"],
  ] as const
) {
  Deno.test(`a leader ${what} by a joint change leads until the leave, then steps down`, () => {
    const c = elected({ checkQuorum: true, preVote: true });
    const roles = watchRole(c, 1);
    assert.ok(c.proposeConfChange(1, v2("Auto", change, add(4))));
    // 1 applied the joint configuration as leader (still an outgoing voter), proposed and
    // committed the leave, and stepped down when it applied it.
    assert.deepEqual(roles, ["Leader", "Follower"]);
    const final = what === "demoted"
      ? { voters: [2, 3, 4], learners: [1] }
      : { voters: [2, 3, 4], learners: [] };
    assert.deepEqual(c.node(2).confState, final);
    const n1 = c.node(1);
    if (leaderEnd === "gone") {
      assert.equal(n1.destroyed, true);
    } else {
      assert.equal(n1.rn!.raft.isLearner, true);
      assert.equal(n1.rn!.raft.promotable(), false);
    }
    const l = newLeader(c, 1);
    assert.ok([2, 3, 4].includes(l));
    assert.ok(c.propose(l, "under the new leader"));
    for (const id of [2, 3, 4]) assert.equal(c.node(id).data.at(-1), "under the new leader");
    if (leaderEnd === "a learner") {
      assert.equal(n1.data.at(-1), "under the new leader", "the learner still gets the log");
      c.tick(100);
      assert.notEqual(n1.rn!.raft.state, "Leader", "a learner never campaigns");
    }
  });
}

Deno.test("replace a peer while one node of the old configuration is down", () => {
  for (const down of [3, 2]) {
    const c = elected();
    c.crash(down);
    // (1 2 4)&(1 2 3): each majority needs only two of its three voters.
    assert.ok(c.proposeConfChange(1, v2("Auto", add(4), remove(3))));
    const final = { voters: [1, 2, 4], learners: [] };
    for (const id of [1, 4]) assert.deepEqual(c.node(id).confState, final, `down ${down}: ${id}`);
    assert.ok(c.propose(1, "after"));
    assert.equal(c.raft(1).raftLog.committed, c.raft(1).raftLog.lastIndex(), `down ${down}`);
    if (down === 2) {
      c.restart(2);
      c.tick(4);
      assert.deepEqual(c.node(2).confState, final);
      assert.equal(c.node(2).data.at(-1), "after");
    }
  }
});

Deno.test("a new leader leaves the joint configuration its predecessor entered", () => {
  for (const t of ["JointImplicit", "JointExplicit"] as const) {
    const c = elected();
    // 1 crashes right after it applies the joint configuration: its automatic leave proposal
    // never leaves the node.
    c.onApply = (id, e) => {
      if (id === 1 && e.type === "ConfChangeV2") c.crashAfterNextReady(1);
    };
    assert.ok(c.proposeConfChange(1, v2(t, add(4), remove(3))));
    assert.equal(c.node(1).rn, undefined);
    c.onApply = undefined;
    const joint = {
      voters: [1, 2, 4],
      learners: [],
      votersOutgoing: [1, 2, 3],
      learnersNext: [],
      autoLeave: t === "JointImplicit",
    };
    assert.deepEqual(c.node(2).confState, joint, t);
    const l = newLeader(c, 1);
    if (t === "JointExplicit") {
      c.tick(2);
      assert.deepEqual(c.node(l).confState, joint, "explicit: nobody leaves on its own");
      assert.ok(c.proposeConfChange(l, LEAVE));
    } else {
      c.tick(2); // the new leader applies its no-op, then proposes the leave
    }
    const final = { voters: [1, 2, 4], learners: [] };
    for (const id of [2, 4]) assert.deepEqual(c.node(id).confState, final, `${t}: ${id}`);
    // The new leader may have been 3 (an outgoing voter), which steps down with the leave.
    assert.ok(c.propose(c.electLeader(), "after"));
    c.restart(1);
    c.tick(4);
    assert.deepEqual(c.node(1).confState, final, `${t}: 1 catches up after restart`);
    assert.equal(c.node(1).data.at(-1), "after");
  }
});

Deno.test("leader transfer in a joint configuration: to a new voter and to an outgoing one", () => {
  const c = elected();
  assert.ok(c.proposeConfChange(1, v2("JointExplicit", add(4), remove(3))));
  // 4 is only an incoming voter: it must still win the outgoing majority (1 2 3).
  c.transferLeader(1, 4);
  assert.equal(c.leader(), 4);
  // 3 is only an outgoing voter: it may lead until the joint state is left.
  c.transferLeader(4, 3);
  assert.equal(c.leader(), 3);
  assert.ok(c.propose(3, "led by 3"));
  assert.ok(c.proposeConfChange(3, LEAVE));
  assert.equal(c.node(3).destroyed, true, "3 left the configuration and stepped down");
  const l = newLeader(c, 3);
  assert.ok([1, 2, 4].includes(l));
  assert.ok(c.propose(l, "after"));
  for (const id of [1, 2, 4]) assert.equal(c.node(id).data.at(-1), "after");
});

Deno.test("leader transfer in a joint configuration fails without an outgoing majority", () => {
  const c = elected();
  assert.ok(c.proposeConfChange(1, v2("JointExplicit", add(4), add(5), remove(2), remove(3))));
  c.isolate(2);
  c.isolate(3);
  c.transferLeader(1, 4); // 4 wins 1, 4, 5 but neither 2 nor 3
  assert.equal(c.leader(), undefined);
  assert.equal(c.raft(4).state, "Candidate");
  c.heal();
  const l = c.electLeader();
  assert.ok(c.propose(l, "healed"));
});

Deno.test("PreVote in a joint configuration: no pre-candidate wins without both majorities", () => {
  const c = elected({ preVote: true });
  assert.ok(c.proposeConfChange(1, v2("JointExplicit", add(4), add(5), remove(2), remove(3))));
  // The leader and the incoming voters 4 and 5 are cut off: 2 and 3 hold an outgoing majority
  // but cannot win the incoming one, so nobody is elected and terms do not grow.
  for (const id of [1, 4, 5]) c.isolate(id);
  const terms = [2, 3].map((id) => c.raft(id).term);
  c.tick(100);
  for (const id of [2, 3]) {
    assert.ok(["Follower", "PreCandidate"].includes(c.raft(id).state), `${id} never got further`);
  }
  assert.deepEqual([2, 3].map((id) => c.raft(id).term), terms, "pre-votes do not raise terms");
  c.heal();
  const l = c.electLeader();
  assert.ok(c.propose(l, "healed"));
});

Deno.test("an automatic leave refused during a leader transfer is proposed once the transfer ends", () => {
  const c = elected();
  c.isolate(2);
  c.isolate(3);
  assert.ok(c.proposeConfChange(1, v2("JointImplicit", add(4), remove(3))));
  c.transferLeader(1, 2); // 2 is cut off: the transfer stays pending, proposals are refused
  c.heal(3);
  c.tick(2); // 3 gets the entry: it commits, 1 applies it, but cannot propose the leave
  const joint = {
    voters: [1, 2, 4],
    learners: [],
    votersOutgoing: [1, 2, 3],
    learnersNext: [],
    autoLeave: true,
  };
  assert.deepEqual(c.node(1).confState, joint);
  assert.equal(c.raft(1).leadTransferee, 2);
  c.tick(12); // the transfer times out; the next heartbeat tick proposes the leave
  assert.equal(c.raft(1).state, "Leader");
  assert.deepEqual(c.node(1).confState, { voters: [1, 2, 4], learners: [] });
});
