/**
 * Membership for the randomized simulation (simulation.ts): the random conf changes a
 * scheduler-like driver proposes — single-step `ConfChange`s and `ConfChangeV2`s that enter
 * joint configurations (replace, grow, shrink, promote, demote, the leader included) and leave
 * them —, and `ConfigHistory`, the global truth for the config agreement check: every peer
 * that applies the conf change at an index ends in the same configuration, and a snapshot
 * carries the configuration in force at its index.
 *
 * @module
 */
import type {
  ConfChange,
  ConfChangeSingle,
  ConfChangeTransition,
  ConfChangeV2,
  ConfState,
} from "./types.ts";
import { isJointConfState } from "./types.ts";
import {
  ccAdd as add,
  ccLearner as learner,
  ccRemove as remove,
  LEAVE_JOINT,
} from "./testing/conf.ts";

/** The simulation's seeded randomness and id allocator. */
export interface SimRandom {
  rand(): number;
  int(n: number): number;
  pick<T>(xs: readonly T[]): T | undefined;
  /** A peer id never used before. */
  newId(): number;
}

const TRANSITIONS: readonly ConfChangeTransition[] = [
  "Auto",
  "Auto",
  "JointImplicit",
  "JointExplicit",
];

/**
 * A conf change for the leader `leader` of configuration `cs`, or undefined. In a joint
 * configuration: mostly the leave when the application must propose it, sometimes a change
 * the leader must refuse (nothing but the leave is allowed while joint). Otherwise, half the
 * time a single-step `ConfChange`, else a `ConfChangeV2`.
 */
export function randomConfChange(
  cs: ConfState,
  leader: number,
  r: SimRandom,
): ConfChange | ConfChangeV2 | undefined {
  if (isJointConfState(cs)) {
    const x = r.rand();
    if (!cs.autoLeave && x < 0.7) return LEAVE_JOINT;
    if (x < 0.85) return { type: "AddNode", nodeId: r.newId() };
    return { transition: "Auto", changes: [{ type: "AddNode", nodeId: r.newId() }] };
  }
  return r.rand() < 0.5 ? randomSingleStep(cs, leader, r) : randomV2(cs, leader, r);
}

/**
 * A single-step change, like a scheduler would make: add a new peer (as learner or voter,
 * with a fresh id — ids are never reused), promote a learner, remove a member (rarely the
 * leader itself), or re-add an existing voter (a no-op).
 */
function randomSingleStep(cs: ConfState, leader: number, r: SimRandom): ConfChange | undefined {
  const members = [...cs.voters, ...cs.learners];
  const x = r.rand();
  if (x < 0.3 && members.length < 6) {
    return { type: r.rand() < 0.6 ? "AddLearnerNode" : "AddNode", nodeId: r.newId() };
  } else if (x < 0.55 && cs.learners.length > 0) {
    return { type: "AddNode", nodeId: r.pick(cs.learners)! };
  } else if (x < 0.9 && members.length > 3) {
    // Removing the leader itself is rare (a store transfers leadership first).
    const id = r.pick(members.filter((id) => id !== leader || r.rand() < 0.1));
    return id === undefined ? undefined : { type: "RemoveNode", nodeId: id };
  } else if (members.length > 0) {
    return { type: "AddNode", nodeId: r.pick(cs.voters)! };
  }
  return undefined;
}

/**
 * A `ConfChangeV2` with a random transition: replace a voter by a new one (removing or
 * demoting the old one), add a voter and a learner, promote a learner while removing or
 * demoting a voter, remove two voters, one single change, or demote or remove the leader
 * while adding a voter (rare). Sizes stay within 2..6 voters and 6 members.
 */
function randomV2(cs: ConfState, leader: number, r: SimRandom): ConfChangeV2 | undefined {
  const voters = cs.voters;
  const members = voters.length + cs.learners.length;
  // The leader is rarely the one removed or demoted.
  const others = voters.filter((id) => id !== leader);
  const victim = () => r.rand() < 0.1 ? leader : r.pick(others);
  const drop = (id: number) => r.rand() < 0.5 ? remove(id) : learner(id);
  let changes: ConfChangeSingle[] = [];
  switch (r.int(6)) {
    case 0: {
      const old = victim();
      if (old !== undefined && members < 6) changes = [add(r.newId()), drop(old)];
      break;
    }
    case 1:
      if (members < 5) changes = [add(r.newId()), learner(r.newId())];
      break;
    case 2: {
      const l = r.pick(cs.learners);
      const old = victim();
      if (l !== undefined && old !== undefined) changes = [add(l), drop(old)];
      break;
    }
    case 3:
      if (others.length >= 3) {
        const a = r.pick(others)!;
        const b = r.pick(others.filter((id) => id !== a))!;
        changes = [remove(a), drop(b)];
      }
      break;
    case 4: {
      const x = r.rand();
      const l = r.pick(cs.learners);
      if (x < 0.3 && voters.length > 2) changes = [learner(r.pick(others)!)];
      else if (x < 0.6 && l !== undefined) changes = [add(l)];
      else if (x < 0.8 && members < 6) changes = [learner(r.newId())];
      else if (l !== undefined) changes = [remove(l)];
      break;
    }
    case 5:
      if (members < 6 && r.rand() < 0.3) changes = [drop(leader), add(r.newId())];
      break;
  }
  if (changes.length === 0) return undefined;
  return { transition: TRANSITIONS[r.int(TRANSITIONS.length)]!, changes };
}

/**
 * A partition along the seam of a joint configuration: voters only of the old configuration
 * on one side (1), everyone else on the other (0), except voters of both, placed by `side`.
 */
export function jointSeam(
  cs: ConfState,
  ids: Iterable<number>,
  side: () => number,
): Map<number, number> {
  const inNew = new Set(cs.voters);
  const inOld = new Set(cs.votersOutgoing);
  const groups = new Map<number, number>();
  for (const id of ids) {
    groups.set(id, inOld.has(id) && inNew.has(id) ? side() : inOld.has(id) ? 1 : 0);
  }
  return groups;
}

/** A canonical text of a configuration (sorted; joint fields only when joint). */
export function confKey(cs: ConfState): string {
  const s = (ids: readonly number[] | undefined) => [...(ids ?? [])].sort((a, b) => a - b);
  const base = { v: s(cs.voters), l: s(cs.learners) };
  if (!isJointConfState(cs)) return JSON.stringify(base);
  return JSON.stringify({
    ...base,
    o: s(cs.votersOutgoing),
    n: s(cs.learnersNext),
    a: cs.autoLeave ?? false,
  });
}

/**
 * The one sequence of configurations: the configuration in force after each conf change
 * index, as first applied by any peer. Invariant: indexes are recorded in increasing order (a
 * peer applies every earlier conf change before a later one, so the first application of an
 * index precedes the first application of any later index).
 */
export class ConfigHistory {
  private readonly indexes: number[] = [];
  private readonly keys: string[] = [];
  private readonly joint: boolean[] = [];

  constructor(index: number, cs: ConfState) {
    this.indexes.push(index);
    this.keys.push(confKey(cs));
    this.joint.push(isJointConfState(cs));
  }

  /**
   * Records that a peer applied the conf change at `index` and now has `cs`. The verdict is
   * "new" the first time, "same" when it agrees with the recorded one, "different" otherwise;
   * a new record also says whether it entered or left a joint configuration.
   */
  record(
    index: number,
    cs: ConfState,
  ): { verdict: "new" | "same" | "different"; entered: boolean; left: boolean } {
    const k = confKey(cs);
    const i = this.indexes.lastIndexOf(index);
    if (i >= 0) {
      return { verdict: this.keys[i] === k ? "same" : "different", entered: false, left: false };
    }
    if (index < this.indexes.at(-1)!) {
      return { verdict: "different", entered: false, left: false }; // out of order
    }
    const wasJoint = this.joint.at(-1)!;
    const isJoint = isJointConfState(cs);
    this.indexes.push(index);
    this.keys.push(k);
    this.joint.push(isJoint);
    return { verdict: "new", entered: isJoint && !wasJoint, left: wasJoint && !isJoint };
  }

  /** The key of the configuration in force once everything through `index` is applied. */
  keyAt(index: number): string | undefined {
    for (let i = this.indexes.length - 1; i >= 0; i--) {
      if (this.indexes[i]! <= index) return this.keys[i];
    }
    return undefined;
  }
}
