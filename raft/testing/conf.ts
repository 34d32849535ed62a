/**
 * Builders for membership tests: single changes, `ConfChangeV2`s, the leave of a joint
 * configuration, and `ConfState`s (joint ones included).
 *
 * @module
 */
import type { ConfChangeSingle, ConfChangeTransition, ConfChangeV2, ConfState } from "../types.ts";

/** Adds `nodeId` as a voter (or promotes it). */
export function ccAdd(nodeId: number): ConfChangeSingle {
  return { type: "AddNode", nodeId };
}

/** Adds `nodeId` as a learner (or demotes it, in a `ConfChangeV2`). */
export function ccLearner(nodeId: number): ConfChangeSingle {
  return { type: "AddLearnerNode", nodeId };
}

/** Removes `nodeId`. */
export function ccRemove(nodeId: number): ConfChangeSingle {
  return { type: "RemoveNode", nodeId };
}

/** A `ConfChangeV2` of `changes` under `transition`. */
export function ccV2(
  transition: ConfChangeTransition,
  ...changes: ConfChangeSingle[]
): ConfChangeV2 {
  return { transition, changes };
}

/** The leave of a joint configuration: an empty `ConfChangeV2`. */
export const LEAVE_JOINT: ConfChangeV2 = { transition: "Auto", changes: [] };

/** A `ConfState`; `joint` (outgoing voters, learnersNext, autoLeave) makes it joint. */
export function confState(
  voters: number[],
  learners: number[] = [],
  joint?: { out: number[]; next?: number[]; auto?: boolean },
): ConfState {
  if (joint === undefined) return { voters, learners };
  return {
    voters,
    learners,
    votersOutgoing: joint.out,
    learnersNext: joint.next ?? [],
    autoLeave: joint.auto ?? false,
  };
}
