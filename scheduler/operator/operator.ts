/**
 * An operator: the steps that take one region from its current shape to a wanted one (PD's
 * `pkg/schedule/operator`). Steps are the wire {@link OperatorStep}s; progress is judged only
 * from heartbeats ({@link isStepFinished}); status changes only along
 * {@link OPERATOR_TRANSITIONS}.
 *
 * @module
 */
import {
  bytesEqual,
  compareBytes,
  compareEndKeys,
  isJointRegion,
  type PeerRole,
  type Region,
  type RegionEpoch,
} from "../../proto/metapb.ts";
import type { MergeStep, OperatorStep } from "../../proto/pdpb.ts";
import type { RegionInfo } from "../region_info.ts";

/** Life cycle of an operator. */
export type OperatorStatus = "Created" | "Running" | "Finished" | "Cancelled" | "TimedOut";

/**
 * The only allowed status changes. `Created → Running` when the first step is sent to the
 * leader; `Created → Finished` if the region already matches when first seen.
 */
export const OPERATOR_TRANSITIONS: Readonly<Record<OperatorStatus, readonly OperatorStatus[]>> = {
  Created: ["Running", "Finished", "Cancelled", "TimedOut"],
  Running: ["Finished", "Cancelled", "TimedOut"],
  Finished: [],
  Cancelled: [],
  TimedOut: [],
};

/** True if `s` is final. */
export function isEndStatus(s: OperatorStatus): boolean {
  return OPERATOR_TRANSITIONS[s].length === 0;
}

/** Who made the operator; decides priority (an admin operator replaces a scheduler's). */
export type OperatorKind = "admin" | "replica" | "merge" | "region" | "leader" | "hot";

/**
 * Higher replaces lower for the same region, at once: an admin's operator replaces any
 * other; the replica checker's repair replaces a balance operator (it examines regions that
 * have one and replaces it when a replica is lost); balance operators never replace anything.
 * A merge is not replaced by balancing: moving a peer of either region under it would only make
 * it roll back.
 */
export const KIND_PRIORITY: Readonly<Record<OperatorKind, number>> = {
  admin: 3,
  replica: 2,
  merge: 2,
  region: 1,
  leader: 1,
  hot: 1,
};

/** How long a step may take: adding a peer sends a snapshot (slow), the rest are fast. */
export interface StepTimeouts {
  readonly slowStepMs: number;
  readonly fastStepMs: number;
}

/** PD's defaults: slow steps (adding a peer, which may need a snapshot) 10 min, fast steps 60 s. */
export const DEFAULT_STEP_TIMEOUTS: StepTimeouts = { slowStepMs: 600_000, fastStepMs: 60_000 };

/**
 * Why a store may not receive work now (its state name, e.g. `"Disconnected"`), or undefined
 * if it may. Builders refuse such targets; running operators that still have to send work to
 * one are cancelled.
 */
export type TargetCheck = (storeId: number) => string | undefined;

/**
 * The store a step sends work to: the store of a new, promoted or leading peer. Removals and
 * splits have none. An operator is cancelled once a store it still has to send work to is not
 * `Up` (see the controller).
 */
export function stepTarget(step: OperatorStep): number | undefined {
  switch (step.type) {
    case "AddLearner":
    case "PromoteLearner":
    case "TransferLeader":
      return step.peer.storeId;
    case "RemovePeer":
    case "SplitRegion":
      return undefined;
  }
}

/**
 * Whether a region split out of the operator's region shows the split done: a region of a
 * newer version that starts at one of the split keys (or, for a midpoint split, anywhere
 * inside the old range). The new regions may report before the old one does.
 */
export function isSplitChild(
  step: OperatorStep & { type: "SplitRegion" },
  start: RegionEpoch,
  child: Region,
): boolean {
  if (child.epoch.version <= start.version) return false;
  if (step.keys.length === 0) return true;
  return step.keys.some((k) => bytesEqual(k, child.startKey));
}

/**
 * True once the region, as last reported, shows `step` done. A split is done when the
 * version grew and the region now ends at the first split key (a batch split applies every
 * key at once, so the rest are done too). A version bump that ends the region elsewhere is a
 * split by someone else: see {@link isSplitOvertaken}.
 */
export function isStepFinished(step: OperatorStep, r: RegionInfo, start: RegionEpoch): boolean {
  switch (step.type) {
    case "AddLearner": {
      // Caught up: present and no longer pending (it has applied a snapshot).
      const p = r.meta.peers.find((x) => x.id === step.peer.id);
      return p !== undefined && !r.pendingPeers.some((x) => x.id === step.peer.id);
    }
    case "PromoteLearner":
      return r.meta.peers.some((x) => x.id === step.peer.id && x.role === "Voter");
    case "RemovePeer":
      return !r.meta.peers.some((x) => x.id === step.peer.id);
    case "TransferLeader":
      return r.leader?.storeId === step.peer.storeId;
    case "SplitRegion": {
      if (r.meta.epoch.version <= start.version) return false;
      const first = firstKey(step.keys);
      return first === undefined || bytesEqual(r.meta.endKey, first);
    }
    case "ChangePeerV2Enter":
      return step.promote.every((p) => hasRole(r.meta, p.id, "IncomingVoter", "Voter")) &&
        step.demote.every((p) => hasRole(r.meta, p.id, "DemotingVoter", "Learner", undefined));
    case "ChangePeerV2Leave":
      return !isJointRegion(r.meta) &&
        step.promote.every((p) => hasRole(r.meta, p.id, "Voter")) &&
        step.demote.every((p) => hasRole(r.meta, p.id, "Learner", undefined));
    case "MergeRegion":
      // The target's operator sees the merge in the target's heartbeat; the source's ends when
      // its region is gone (OperatorController.checkAll).
      return step.passive && isMergedInto(r.meta, step, start);
  }
}

/** True if `region`'s peer `id` has one of `roles` (undefined: the peer is gone). */
function hasRole(region: Region, id: number, ...roles: (PeerRole | undefined)[]): boolean {
  return roles.includes(region.peers.find((p) => p.id === id)?.role);
}

/** True if `target` (last seen at `start`) shows it has taken in the merge step's source. */
export function isMergedInto(target: Region, step: MergeStep, start: RegionEpoch): boolean {
  return target.id === step.target.id && target.epoch.version > start.version &&
    compareBytes(target.startKey, step.source.startKey) <= 0 &&
    compareEndKeys(target.endKey, step.source.endKey) >= 0;
}

/** True if the region's version grew without the split step taking effect (see above). */
export function isSplitOvertaken(step: OperatorStep, r: RegionInfo, start: RegionEpoch): boolean {
  return step.type === "SplitRegion" && r.meta.epoch.version > start.version &&
    !isStepFinished(step, r, start);
}

function firstKey(keys: readonly Uint8Array[]): Uint8Array | undefined {
  let first: Uint8Array | undefined;
  for (const k of keys) if (!first || compareBytes(k, first) < 0) first = k;
  return first;
}

/** A short human description of a step. */
export function describeStep(step: OperatorStep): string {
  switch (step.type) {
    case "AddLearner":
      return `add learner peer ${step.peer.id} on store ${step.peer.storeId}`;
    case "PromoteLearner":
      return `promote learner peer ${step.peer.id} on store ${step.peer.storeId} to voter`;
    case "RemovePeer":
      return `remove peer on store ${step.peer.storeId}`;
    case "TransferLeader":
      return `transfer leader to store ${step.peer.storeId}`;
    case "SplitRegion":
      return step.keys.length === 0
        ? "split region at the size midpoint"
        : `split region at ${step.keys.length} key(s)`;
    case "ChangePeerV2Enter":
      return `enter a joint configuration: promote ${peerList(step.promote)}, demote ${
        peerList(step.demote)
      }`;
    case "ChangePeerV2Leave":
      return "leave the joint configuration";
    case "MergeRegion":
      return step.passive
        ? `take in region ${step.source.id} (merge)`
        : `merge into region ${step.target.id}`;
  }
}

function peerList(peers: readonly { id: number; storeId: number }[]): string {
  return peers.length === 0
    ? "none"
    : peers.map((p) => `peer ${p.id} on store ${p.storeId}`).join(", ");
}

/** One operator on one region. Mutable only through {@link Operator.transition} and `check`. */
export class Operator {
  /** Index of the step in progress; `steps.length` once all are done. */
  #current = 0;
  #status: OperatorStatus = "Created";
  #endedAt: number | null = null;
  #reason = "";
  /** Absolute deadline (ms). */
  readonly deadline: number;

  constructor(
    /** What made it, e.g. `balance-region`, `admin-add-peer`, `replace-down-peer`. */
    readonly desc: string,
    readonly kind: OperatorKind,
    readonly regionId: number,
    /** The region's epoch when the operator was made. */
    readonly epoch: RegionEpoch,
    readonly steps: readonly OperatorStep[],
    readonly createdAt: number,
    timeouts: StepTimeouts = DEFAULT_STEP_TIMEOUTS,
    /** Overrides the deadline the steps give (operators that must end together share one). */
    deadline?: number,
  ) {
    let total = 0;
    for (const s of steps) {
      total += s.type === "AddLearner" ? timeouts.slowStepMs : timeouts.fastStepMs;
    }
    this.deadline = deadline ?? createdAt + total;
  }

  get status(): OperatorStatus {
    return this.#status;
  }
  get currentStep(): number {
    return this.#current;
  }
  get endedAt(): number | null {
    return this.#endedAt;
  }
  get reason(): string {
    return this.#reason;
  }
  /** Steps not done yet. */
  remainingSteps(): readonly OperatorStep[] {
    return this.steps.slice(this.#current);
  }

  /** The step in progress, if any. */
  stepInProgress(): OperatorStep | undefined {
    return this.steps[this.#current];
  }

  /** Marks every step done (a split seen done through one of the regions it created). */
  markAllDone(): void {
    this.#current = this.steps.length;
  }

  /** Stores the steps not done yet still have to send work to. */
  targetStores(): number[] {
    const out: number[] = [];
    for (const step of this.remainingSteps()) {
      const t = stepTarget(step);
      if (t !== undefined && !out.includes(t)) out.push(t);
    }
    return out;
  }

  /** Moves to `to`; throws if the transition table does not allow it (a bug). */
  transition(to: OperatorStatus, now: number, reason = ""): void {
    if (!OPERATOR_TRANSITIONS[this.#status].includes(to)) {
      throw new Error(
        `operator on region ${this.regionId}: illegal transition ${this.#status} → ${to}`,
      );
    }
    this.#status = to;
    if (isEndStatus(to)) {
      this.#endedAt = now;
      this.#reason = reason;
    }
  }

  /**
   * Advances past every step the region shows done and returns the step still to do, or
   * undefined if all are done. Does not change the status.
   */
  check(r: RegionInfo): OperatorStep | undefined {
    while (this.#current < this.steps.length) {
      const step = this.steps[this.#current]!;
      if (!isStepFinished(step, r, this.epoch)) return step;
      this.#current++;
    }
    return undefined;
  }
}
