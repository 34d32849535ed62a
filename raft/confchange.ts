/**
 * Membership changes as pure functions on a configuration (etcd's `confchange` package, in our
 * own words): single-step changes, entering and leaving a joint configuration (Raft thesis
 * §4.3), and rebuilding a configuration from a `ConfState`. Each function checks the change
 * against the configuration it applies to and either returns the new configuration or throws
 * `ConfChangeError`, leaving its input untouched. `Raft` then switches its tracker to the result.
 *
 * The rules (the same as etcd's):
 * - a change that alters at most one voter may be applied in one step; several voters change
 *   only through a joint configuration, entered by one entry and left by another;
 * - no change may be made while joint, except leaving; leaving needs a joint configuration;
 * - no change may leave the (incoming) configuration without voters, and a configuration
 *   without voters cannot become joint;
 * - a voter demoted to learner while it is still an outgoing voter is parked in
 *   `learnersNext` and becomes a learner when the joint state is left (a peer is never a voter
 *   and a learner at once); a voter removed from the incoming configuration keeps voting in
 *   the outgoing one until then.
 *
 * @module
 */
import { ConfChangeError } from "./errors.ts";
import type { ConfChangeSingle, ConfChangeV2, ConfState } from "./types.ts";

/**
 * A configuration as mutable sets. `voters` are the incoming voters; `votersOutgoing` is
 * empty unless the configuration is joint. Invariants as for `ConfState`.
 */
export interface MembershipConfig {
  voters: Set<number>;
  votersOutgoing: Set<number>;
  learners: Set<number>;
  learnersNext: Set<number>;
  autoLeave: boolean;
}

/** The result of a change: the new configuration, and the peers whose progress starts fresh. */
export interface ConfigChange {
  readonly config: MembershipConfig;
  /**
   * Peers added by the change that were not tracked before it (or were removed and added back
   * within it): their replication progress must start from nothing, since a peer added again
   * may be a new, empty incarnation.
   */
  readonly fresh: ReadonlySet<number>;
}

/** True when the configuration is joint (it has outgoing voters). */
export function isJoint(c: MembershipConfig): boolean {
  return c.votersOutgoing.size > 0;
}

/** True when `id` is a voter, a learner, or an outgoing voter of `c` (it has progress). */
export function isTracked(c: MembershipConfig, id: number): boolean {
  return c.voters.has(id) || c.votersOutgoing.has(id) || c.learners.has(id);
}

/** Every tracked id of `c`, each once. */
export function trackedIds(c: MembershipConfig): Set<number> {
  return new Set([...c.voters, ...c.votersOutgoing, ...c.learners]);
}

function copyConfig(c: MembershipConfig): MembershipConfig {
  return {
    voters: new Set(c.voters),
    votersOutgoing: new Set(c.votersOutgoing),
    learners: new Set(c.learners),
    learnersNext: new Set(c.learnersNext),
    autoLeave: c.autoLeave,
  };
}

const sorted = (s: ReadonlySet<number>) => [...s].sort((a, b) => a - b);

/** The configuration as a `ConfState` (sorted ids; the joint fields only when joint). */
export function confStateOfConfig(c: MembershipConfig): ConfState {
  const cs: ConfState = { voters: sorted(c.voters), learners: sorted(c.learners) };
  if (!isJoint(c)) return cs;
  return {
    ...cs,
    votersOutgoing: sorted(c.votersOutgoing),
    learnersNext: sorted(c.learnersNext),
    autoLeave: c.autoLeave,
  };
}

/**
 * What is wrong with a `ConfState`, or undefined when it satisfies the invariants documented
 * on `ConfState`. Decoders and restores use it so that a bad configuration is refused where
 * it enters, never acted on.
 */
export function confStateProblem(cs: ConfState): string | undefined {
  const fields = {
    voters: cs.voters,
    learners: cs.learners,
    votersOutgoing: cs.votersOutgoing ?? [],
    learnersNext: cs.learnersNext ?? [],
  };
  const sets: Record<string, Set<number>> = {};
  for (const [name, ids] of Object.entries(fields)) {
    const s = new Set<number>();
    for (const id of ids) {
      if (!Number.isSafeInteger(id) || id <= 0) return `${name} holds invalid id ${id}`;
      if (s.has(id)) return `${name} lists ${id} twice`;
      s.add(id);
    }
    sets[name] = s;
  }
  const { voters, learners, votersOutgoing, learnersNext } = sets as Record<
    keyof typeof fields,
    Set<number>
  >;
  for (const id of learners) {
    if (voters.has(id)) return `${id} is both a voter and a learner`;
    if (votersOutgoing.has(id)) return `${id} is both an outgoing voter and a learner`;
  }
  for (const id of learnersNext) {
    if (!votersOutgoing.has(id)) return `${id} is in learnersNext but not an outgoing voter`;
    if (voters.has(id)) return `${id} is in learnersNext and an incoming voter`;
  }
  // learnersNext ⊆ votersOutgoing already keeps it empty outside a joint configuration.
  if (votersOutgoing.size === 0) {
    if (cs.autoLeave) return "autoLeave is set outside a joint configuration";
  } else if (voters.size === 0) {
    return "a joint configuration has no incoming voters";
  }
  return undefined;
}

/** The configuration a `ConfState` describes. Throws `ConfChangeError` if it is invalid. */
export function configFromConfState(cs: ConfState): MembershipConfig {
  const problem = confStateProblem(cs);
  if (problem !== undefined) throw new ConfChangeError(`invalid configuration: ${problem}`);
  return {
    voters: new Set(cs.voters),
    votersOutgoing: new Set(cs.votersOutgoing ?? []),
    learners: new Set(cs.learners),
    learnersNext: new Set(cs.learnersNext ?? []),
    autoLeave: cs.autoLeave ?? false,
  };
}

/** Short text of a change list, for logs and errors: "AddNode(4) RemoveNode(1)". */
export function describeChanges(changes: readonly ConfChangeSingle[]): string {
  return changes.map((c) => `${c.type}(${c.nodeId})`).join(" ");
}

/** True when a `ConfChangeV2` asks to leave the joint configuration (it changes nothing). */
export function isLeaveJoint(cc: ConfChangeV2): boolean {
  return cc.changes.length === 0;
}

/**
 * Whether `cc` enters a joint configuration, and if so whether the leader leaves it on its own.
 * A single change under `Auto` is applied in one step (undefined); more than one change, or an
 * explicit joint transition, enters a joint configuration.
 */
export function entersJoint(cc: ConfChangeV2): { autoLeave: boolean } | undefined {
  if (cc.transition === "Auto" && cc.changes.length <= 1) return undefined;
  return { autoLeave: cc.transition !== "JointExplicit" };
}

/**
 * Applies a `ConfChangeV2` to `current`: leave the joint configuration (no changes), enter one
 * (see `entersJoint`), or change one voter at most in a single step. Throws `ConfChangeError`
 * when the change breaks a rule (see the module comment); `current` is never modified.
 */
export function changeConfig(current: MembershipConfig, cc: ConfChangeV2): ConfigChange {
  if (isLeaveJoint(cc)) return leaveJoint(current);
  const joint = entersJoint(cc);
  if (joint !== undefined) return enterJoint(current, joint.autoLeave, cc.changes);
  return simpleChange(current, cc.changes);
}

/**
 * Enters a joint configuration: the current voters become the outgoing voters, and `changes`
 * apply to the incoming ones (C_old → C_old,new).
 */
export function enterJoint(
  current: MembershipConfig,
  autoLeave: boolean,
  changes: readonly ConfChangeSingle[],
): ConfigChange {
  if (isJoint(current)) throw new ConfChangeError("the configuration is already joint");
  if (current.voters.size === 0) {
    throw new ConfChangeError("a configuration without voters cannot become joint");
  }
  const c = copyConfig(current);
  for (const id of c.voters) c.votersOutgoing.add(id);
  const fresh = applyChanges(c, changes);
  c.autoLeave = autoLeave;
  return { config: c, fresh };
}

/**
 * Leaves the joint configuration (C_old,new → C_new): the outgoing voters are dropped (those
 * no longer in the configuration lose their progress), and the parked `learnersNext` become
 * learners.
 */
export function leaveJoint(current: MembershipConfig): ConfigChange {
  if (!isJoint(current)) {
    throw new ConfChangeError("cannot leave a joint configuration: the configuration is not joint");
  }
  const c = copyConfig(current);
  for (const id of c.learnersNext) c.learners.add(id);
  c.learnersNext.clear();
  c.votersOutgoing.clear();
  c.autoLeave = false;
  return { config: c, fresh: new Set() };
}

/**
 * Applies `changes` in one step. Refused in a joint configuration, and when the changes
 * together add, remove or demote more than one voter (that needs a joint configuration).
 */
export function simpleChange(
  current: MembershipConfig,
  changes: readonly ConfChangeSingle[],
): ConfigChange {
  if (isJoint(current)) {
    throw new ConfChangeError("a single-step change cannot be applied in a joint configuration");
  }
  const c = copyConfig(current);
  const fresh = applyChanges(c, changes);
  let changed = 0;
  for (const id of c.voters) if (!current.voters.has(id)) changed++;
  for (const id of current.voters) if (!c.voters.has(id)) changed++;
  if (changed > 1) {
    throw new ConfChangeError(
      `${describeChanges(changes)} changes ${changed} voters without a joint configuration`,
    );
  }
  return { config: c, fresh };
}

/**
 * Applies the changes in order to the incoming side of `c` (mutated), and refuses a result
 * without voters. Returns the ids that need fresh progress.
 */
function applyChanges(c: MembershipConfig, changes: readonly ConfChangeSingle[]): Set<number> {
  const fresh = new Set<number>();
  for (const ch of changes) {
    const id = ch.nodeId;
    if (!Number.isSafeInteger(id) || id <= 0) {
      throw new ConfChangeError(`invalid node id ${id} in ${describeChanges(changes)}`);
    }
    switch (ch.type) {
      case "AddNode":
        makeVoter(c, id, fresh);
        break;
      case "AddLearnerNode":
        makeLearner(c, id, fresh);
        break;
      case "RemoveNode":
        remove(c, id, fresh);
        break;
      default:
        throw new ConfChangeError(`unknown conf change type ${String(ch.type)}`);
    }
  }
  if (c.voters.size === 0) {
    throw new ConfChangeError(`${describeChanges(changes)} would remove every voter`);
  }
  return fresh;
}

/** Adds `id` as an incoming voter, promoting a learner or a parked learner-to-be. */
function makeVoter(c: MembershipConfig, id: number, fresh: Set<number>): void {
  if (!isTracked(c, id)) fresh.add(id);
  c.learners.delete(id);
  c.learnersNext.delete(id);
  c.voters.add(id);
}

/**
 * Makes `id` a learner: a new learner, or a demoted voter. A voter of the outgoing
 * configuration cannot become a learner before the joint state is left (it still votes there),
 * so it is parked in `learnersNext`.
 */
function makeLearner(c: MembershipConfig, id: number, fresh: Set<number>): void {
  if (c.learners.has(id)) return;
  if (!isTracked(c, id)) fresh.add(id);
  c.voters.delete(id);
  if (c.votersOutgoing.has(id)) c.learnersNext.add(id);
  else c.learners.add(id);
}

/**
 * Removes `id` from the incoming configuration. An outgoing voter stays tracked (and keeps
 * voting) until the joint state is left.
 */
function remove(c: MembershipConfig, id: number, fresh: Set<number>): void {
  c.voters.delete(id);
  c.learners.delete(id);
  c.learnersNext.delete(id);
  if (!c.votersOutgoing.has(id)) fresh.delete(id);
}
