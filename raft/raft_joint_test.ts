/**
 * Joint consensus (Raft thesis §4.3) through the whole application loop: entering and leaving
 * joint configurations (automatically and explicitly), the leader's refusals, the quorum of
 * both configurations for commit, votes, CheckQuorum and ReadIndex, and restarts and snapshots
 * in a joint configuration.
 */
import assert from "node:assert/strict";
import { encodeConfChangeV2 } from "./codec.ts";
import { ConfChangeError } from "./errors.ts";
import { MemoryStorage } from "./storage.ts";
import { RawNodeCluster } from "./testing/cluster.ts";
import { msg } from "./testing/helpers.ts";
import { newTestRaft } from "./testing/network.ts";
import {
  ccAdd as add,
  ccLearner as learner,
  ccRemove as remove,
  ccV2 as v2,
  confState as cs,
  LEAVE_JOINT as LEAVE,
} from "./testing/conf.ts";
import type { ConfChange, ConfChangeSingle, ConfChangeV2, ConfState } from "./types.ts";

/** A cluster of `voters` where 1 leads and has committed "a" everywhere. */
function elected(voters = [1, 2, 3], opts: { checkQuorum?: boolean; preVote?: boolean } = {}) {
  const c = new RawNodeCluster(voters, opts);
  c.campaign(1);
  assert.equal(c.leader(), 1);
  assert.ok(c.propose(1, "a"));
  return c;
}

/** Every live member of `want` has it as its raft configuration and as applied configuration. */
function assertConfig(c: RawNodeCluster, want: ConfState, what: string): void {
  const members = [...want.voters, ...want.learners, ...(want.votersOutgoing ?? [])];
  for (const id of new Set(members)) {
    const n = c.node(id);
    if (!n.rn) continue;
    assert.deepEqual(n.rn.raft.trk.confState(), want, `${what}: raft config of ${id}`);
    assert.deepEqual(n.confState, want, `${what}: applied config of ${id}`);
  }
}

/** The last entry of `id`'s log. */
function lastEntry(c: RawNodeCluster, id: number) {
  const log = c.raft(id).raftLog;
  return log.slice(log.lastIndex(), log.lastIndex() + 1, Infinity)[0]!;
}

interface EnterLeaveCase {
  name: string;
  changes: ConfChangeSingle[];
  /** The joint configuration (autoLeave is filled in per transition). */
  joint: ConfState;
  final: ConfState;
  /** Peers no longer in the configuration at the end (destroyed). */
  gone?: number[];
}

const enterLeaveCases: EnterLeaveCase[] = [
  {
    name: "replace 3 by 4",
    changes: [add(4), remove(3)],
    joint: cs([1, 2, 4], [], { out: [1, 2, 3] }),
    final: cs([1, 2, 4]),
    gone: [3],
  },
  {
    name: "demote 3 and add 4",
    changes: [learner(3), add(4)],
    joint: cs([1, 2, 4], [], { out: [1, 2, 3], next: [3] }),
    final: cs([1, 2, 4], [3]),
  },
  {
    name: "add voter 4 and learner 5",
    changes: [add(4), learner(5)],
    joint: cs([1, 2, 3, 4], [5], { out: [1, 2, 3] }),
    final: cs([1, 2, 3, 4], [5]),
  },
  {
    name: "grow to five voters",
    changes: [add(4), add(5)],
    joint: cs([1, 2, 3, 4, 5], [], { out: [1, 2, 3] }),
    final: cs([1, 2, 3, 4, 5]),
  },
  {
    name: "shrink to the leader alone",
    changes: [remove(2), remove(3)],
    joint: cs([1], [], { out: [1, 2, 3] }),
    final: cs([1]),
    gone: [2, 3],
  },
];

Deno.test("enter and leave joint: every change set, with automatic and explicit leave", () => {
  for (const tc of enterLeaveCases) {
    for (const t of ["Auto", "JointImplicit", "JointExplicit"] as const) {
      const what = `${tc.name} (${t})`;
      const c = elected();
      const auto = t !== "JointExplicit";
      const joint = { ...tc.joint, autoLeave: auto };
      assert.ok(c.proposeConfChange(1, v2(t, ...tc.changes)), what);
      if (auto) {
        // The leader proposed the leave by itself once it applied the joint configuration.
        assert.deepEqual(c.node(1).confHistory, [joint, tc.final], what);
        assert.deepEqual(c.node(2).confHistory, [joint, tc.final], what);
      } else {
        assertConfig(c, joint, `${what}: joint`);
        assert.equal(c.raft(1).trk.isJoint(), true);
        // Data still commits in the joint configuration; then the application leaves.
        assert.ok(c.propose(1, "in joint"));
        assert.ok(c.proposeConfChange(1, LEAVE));
        assert.deepEqual(c.node(1).confHistory, [joint, tc.final], what);
      }
      assertConfig(c, tc.final, `${what}: final`);
      for (const id of tc.gone ?? []) assert.equal(c.node(id).destroyed, true, `${what}: ${id}`);
      assert.ok(c.propose(1, "after"));
      for (const id of [...tc.final.voters, ...tc.final.learners]) {
        assert.equal(c.node(id).data.at(-1), "after", `${what}: ${id} applied the last write`);
      }
    }
  }
});

Deno.test("a single change under Auto is one step; AddLearnerNode on a voter demotes it", () => {
  const c = elected();
  assert.ok(c.proposeConfChange(1, v2("Auto", learner(3))));
  assert.deepEqual(c.node(1).confHistory, [cs([1, 2], [3])]);
  assertConfig(c, cs([1, 2], [3]), "demoted");
  assert.ok(c.proposeConfChange(1, v2("Auto", add(3))));
  assertConfig(c, cs([1, 2, 3]), "promoted back");
});

Deno.test("the leader refuses conf changes it cannot apply: they become empty entries", () => {
  type Setup = (c: RawNodeCluster) => void;
  const enterExplicit: Setup = (c) => c.proposeConfChange(1, v2("JointExplicit", add(4)));
  const cases: [string, Setup, ConfChange | ConfChangeV2 | Uint8Array][] = [
    ["leave when not joint", () => {}, LEAVE],
    ["a change that removes every voter", () => {}, v2("Auto", remove(1), remove(2), remove(3))],
    ["a joint change while joint", enterExplicit, v2("JointExplicit", add(5))],
    ["a single-step V2 while joint", enterExplicit, v2("Auto", add(5))],
    ["a single-step ConfChange while joint", enterExplicit, { type: "AddNode", nodeId: 5 }],
    ["undecodable ConfChangeV2 data", () => {}, new Uint8Array([0xff])],
    [
      "a leave-joint change with an explicit transition",
      enterExplicit,
      encodeConfChangeV2(
        { transition: "JointExplicit", changes: [] },
      ),
    ],
  ];
  for (const [what, setup, cc] of cases) {
    const c = elected();
    setup(c);
    const before = c.raft(1).trk.confState();
    const r = c.raft(1);
    if (cc instanceof Uint8Array) {
      r.step(msg({
        type: "MsgProp",
        from: 1,
        to: 1,
        entries: [{ term: 0, index: 0, type: "ConfChangeV2", data: cc }],
      }));
      c.process();
    } else {
      assert.ok(c.proposeConfChange(1, cc), what);
    }
    const e = lastEntry(c, 1);
    assert.equal(e.type, "Normal", what);
    assert.equal(e.data.byteLength, 0, what);
    assert.deepEqual(c.raft(1).trk.confState(), before, `${what}: configuration unchanged`);
  }
});

Deno.test("one conf change at a time: a second one proposed before the first applies is refused", () => {
  const c = elected();
  const rn = c.node(1).rn!;
  rn.proposeConfChange(v2("JointExplicit", add(4)));
  rn.proposeConfChange(v2("Auto", add(5)));
  rn.proposeConfChange({ type: "AddNode", nodeId: 6 });
  const log = rn.raft.raftLog;
  const ents = log.slice(log.lastIndex() - 2, log.lastIndex() + 1, Infinity);
  assert.deepEqual(ents.map((e) => e.type), ["ConfChangeV2", "Normal", "Normal"]);
  c.process();
  assertConfig(c, cs([1, 2, 3, 4], [], { out: [1, 2, 3] }), "only the first applied");
});

Deno.test("applying an invalid change throws ConfChangeError and changes nothing", () => {
  const r = newTestRaft(1, [1, 2, 3], 10, 1);
  assert.throws(() => r.applyConfChange(LEAVE), ConfChangeError);
  r.applyConfChange(v2("JointExplicit", add(4)));
  const joint = r.trk.confState();
  assert.throws(() => r.applyConfChange({ type: "RemoveNode", nodeId: 2 }), ConfChangeError);
  assert.throws(() => r.applyConfChange(v2("Auto", add(5))), ConfChangeError);
  assert.deepEqual(r.trk.confState(), joint);
  assert.deepEqual([...r.trk.progress.keys()].sort(), [1, 2, 3, 4]);
});

/** (1 4 5)&(1 2 3): the incoming and the outgoing majority share only the leader. */
function disjointJoint(opts: { checkQuorum?: boolean; preVote?: boolean } = {}) {
  const c = elected([1, 2, 3], opts);
  assert.ok(c.proposeConfChange(1, v2("JointExplicit", add(4), add(5), remove(2), remove(3))));
  const joint = cs([1, 4, 5], [], { out: [1, 2, 3] });
  assertConfig(c, joint, "joint");
  return { c, joint };
}

Deno.test("joint commit: an entry commits only on a majority of both configurations", () => {
  const cases: [number[], boolean][] = [
    [[4, 5], false], // outgoing majority only
    [[2, 3], false], // incoming majority only
    [[2, 4], true], // 1+3 and 1+5
    [[3, 5], true],
    [[2, 3, 4], false],
    [[], true],
  ];
  for (const [cut, commits] of cases) {
    const { c } = disjointJoint();
    for (const id of cut) c.isolate(id);
    assert.ok(c.propose(1, "x"));
    c.tick(4);
    const log = c.raft(1).raftLog;
    assert.equal(log.committed === log.lastIndex(), commits, `isolated ${cut}`);
    c.heal();
    c.tick(4);
    assert.equal(log.committed, log.lastIndex(), `isolated ${cut}, then healed`);
  }
});

Deno.test("joint election: a candidate needs the votes of a majority of both configurations", () => {
  const joint = cs([1, 4, 5], [], { out: [1, 2, 3] });
  const cases: [number[], number[], string][] = [
    [[2, 3], [], "Candidate"],
    [[2, 3], [4, 5], "Follower"],
    [[4, 5], [], "Candidate"],
    [[4, 5], [2, 3], "Follower"],
    [[2, 4], [3, 5], "Leader"],
    [[3, 5], [], "Leader"],
  ];
  for (const [granted, rejected, want] of cases) {
    const s = new MemoryStorage();
    s.setConfState(joint);
    const r = newTestRaft(1, [], 10, 1, s);
    r.step(msg({ type: "MsgHup", from: 1, to: 1 }));
    const asked = r.readMessages().filter((m) => m.type === "MsgVote").map((m) => m.to);
    assert.deepEqual(asked, [2, 3, 4, 5], "vote requests go to both configurations");
    for (const id of granted) r.step(msg({ type: "MsgVoteResp", from: id, to: 1, term: r.term }));
    for (const id of rejected) {
      r.step(msg({ type: "MsgVoteResp", from: id, to: 1, term: r.term, reject: true }));
    }
    assert.equal(r.state, want, `granted ${granted}, rejected ${rejected}`);
  }
});

Deno.test("joint CheckQuorum: the leader steps down unless a majority of each configuration is active", () => {
  const cases: [number[], boolean][] = [
    [[4, 5], false],
    [[2, 3], false],
    [[2, 5], true],
    [[], true],
  ];
  for (const [cut, stays] of cases) {
    const { c } = disjointJoint({ checkQuorum: true });
    for (const id of cut) c.isolate(id);
    c.tick(25); // more than two election timeouts
    assert.equal(c.raft(1).state === "Leader", stays, `isolated ${cut}`);
  }
});

Deno.test("joint ReadIndex: a read is answered only once a majority of each configuration acks", () => {
  const { c } = disjointJoint();
  const ctx = new TextEncoder().encode("read-1");
  c.isolate(4);
  c.isolate(5);
  c.node(1).rn!.readIndex(ctx);
  c.process();
  assert.equal(c.node(1).readStates.length, 0, "outgoing majority only");
  c.heal();
  c.tick(2); // the next heartbeat round carries the read's context
  assert.equal(c.node(1).readStates.length, 1);
  assert.equal(c.node(1).readStates[0]!.index, c.raft(1).raftLog.committed);
});

Deno.test("restart in a joint configuration: every peer restores it, and the joint quorum holds", () => {
  const { c, joint } = disjointJoint();
  for (const id of [1, 2, 3, 4, 5]) c.crash(id);
  for (const id of [1, 2, 3, 4, 5]) {
    c.restart(id);
    assert.deepEqual(c.raft(id).trk.confState(), joint, `restarted ${id}`);
  }
  // 2 and 3 alone cannot elect anyone: they have no incoming majority.
  c.isolate(1);
  c.isolate(4);
  c.isolate(5);
  c.tick(60);
  assert.equal(c.leader(), undefined);
  c.heal();
  const l = c.electLeader();
  assert.ok(c.propose(l, "after restart"));
  assert.ok(c.proposeConfChange(l, LEAVE));
  assertConfig(c, cs([1, 4, 5]), "left after restart");
});

Deno.test("a snapshot taken in a joint configuration carries it to a lagging peer", () => {
  const c = elected();
  c.crash(3);
  assert.ok(c.proposeConfChange(1, v2("JointExplicit", add(4), learner(3))));
  const joint = cs([1, 2, 4], [], { out: [1, 2, 3], next: [3] });
  assert.ok(c.propose(1, "b"));
  c.compact(1);
  c.restart(3);
  c.tick(4);
  const n3 = c.node(3);
  assert.equal(n3.rn!.raft.raftLog.firstIndex() > 2, true, "3 was caught up by a snapshot");
  assert.deepEqual(n3.rn!.raft.trk.confState(), joint);
  assert.deepEqual(n3.confState, joint);
  assert.deepEqual(n3.data, c.node(1).data);
  assert.ok(c.proposeConfChange(1, LEAVE));
  assertConfig(c, cs([1, 2, 4], [3]), "3 is a learner after the leave");
  assert.equal(c.raft(3).isLearner, true);
});

Deno.test("single-step and joint changes mix: a ConfChange is accepted again once the joint state is left", () => {
  const c = elected();
  assert.ok(c.proposeConfChange(1, v2("JointExplicit", add(4), remove(3))));
  assert.ok(c.proposeConfChange(1, { type: "AddLearnerNode", nodeId: 5 }));
  assert.equal(lastEntry(c, 1).type, "Normal", "refused while joint");
  assert.ok(c.proposeConfChange(1, LEAVE));
  assert.ok(c.proposeConfChange(1, { type: "AddLearnerNode", nodeId: 5 }));
  assert.ok(c.proposeConfChange(1, { type: "AddNode", nodeId: 5 }));
  assertConfig(c, cs([1, 2, 4, 5]), "after two single steps");
  assert.deepEqual(c.node(1).confHistory.map((h) => h.voters), [
    [1, 2, 4],
    [1, 2, 4],
    [1, 2, 4],
    [1, 2, 4, 5],
  ]);
});

Deno.test("checkConfChange tells the application beforehand what the leader would refuse", () => {
  const c = elected();
  const rn = c.node(1).rn!;
  assert.equal(rn.checkConfChange(v2("Auto", add(4), remove(3))), undefined);
  assert.equal(rn.checkConfChange({ type: "AddNode", nodeId: 4 }), undefined);
  assert.match(rn.checkConfChange(LEAVE) ?? "", /not joint/);
  assert.match(
    rn.checkConfChange(v2("Auto", remove(1), remove(2), remove(3))) ?? "",
    /every voter/,
  );
  rn.proposeConfChange(v2("JointExplicit", add(4)));
  assert.match(rn.checkConfChange(LEAVE) ?? "", /pending conf change/);
  c.process();
  assert.equal(rn.checkConfChange(LEAVE), undefined);
  assert.match(rn.checkConfChange({ type: "AddNode", nodeId: 5 }) ?? "", /joint configuration/);
  assert.match(rn.checkConfChange(v2("Auto", add(5))) ?? "", /joint configuration/);
});
