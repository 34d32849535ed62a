/**
 * Builds operators from a region's current shape (PD's `operator/create_operator.go`). Every
 * builder checks that the operator makes sense and throws `BadRequest` (or `StoreNotFound`)
 * with the reason otherwise, so the admin API can pass the message on.
 *
 * AddPeer is two steps, AddLearner then PromoteLearner, so a new peer catches up before it
 * counts in a quorum. MovePeer = AddPeer → TransferLeader (if the source leads) → RemovePeer;
 * once every store supports joint consensus (`BuildContext.jointConsensus`) it is AddLearner →
 * one joint change promoting the new peer and demoting the old one (ChangePeerV2Enter, then
 * ChangePeerV2Leave; a demoted leader hands its leadership over by itself) → RemovePeer of the
 * old peer, now a learner: the region never has four voters, or two.
 *
 * @module
 */
import { MrkvError } from "../../proto/errors.ts";
import { bytesEqual, compareBytes, keyInRegion, type Peer } from "../../proto/metapb.ts";
import type { OperatorStep } from "../../proto/pdpb.ts";
import { mayLead, type RegionInfo } from "../region_info.ts";
import {
  DEFAULT_STEP_TIMEOUTS,
  Operator,
  type OperatorKind,
  type StepTimeouts,
  type TargetCheck,
} from "./operator.ts";

/** What builders need besides the region. */
export interface BuildContext {
  readonly now: number;
  /** A fresh peer ID (throws if none is at hand). */
  allocPeerId(): number;
  readonly timeouts?: StepTimeouts;
  /** Every store supports joint-consensus changes: peer moves use them. */
  readonly jointConsensus?: boolean;
  /** Which stores may not receive a peer or leadership (default: every store may). */
  readonly unusableTarget?: TargetCheck;
}

/** Throws `BadRequest` if `storeId` may not receive `what` now. */
function checkTarget(ctx: BuildContext, storeId: number, what: string): void {
  const why = ctx.unusableTarget?.(storeId);
  if (why !== undefined) {
    throw new MrkvError("BadRequest", `store ${storeId} is ${why} and cannot take ${what}`);
  }
}

/** The first of `candidates` that can take leadership of `r` now, if any. */
function healthyVoter(
  r: RegionInfo,
  candidates: readonly Peer[],
  ctx: BuildContext,
): Peer | undefined {
  return candidates.find((p) => mayLead(r, p) && ctx.unusableTarget?.(p.storeId) === undefined);
}

function make(
  desc: string,
  kind: OperatorKind,
  r: RegionInfo,
  steps: OperatorStep[],
  ctx: BuildContext,
): Operator {
  return new Operator(
    desc,
    kind,
    r.meta.id,
    r.meta.epoch,
    steps,
    ctx.now,
    ctx.timeouts ?? DEFAULT_STEP_TIMEOUTS,
  );
}

function addPeerSteps(r: RegionInfo, storeId: number, ctx: BuildContext): [OperatorStep[], Peer] {
  if (r.meta.peers.some((p) => p.storeId === storeId)) {
    throw new MrkvError("BadRequest", `region ${r.meta.id} already has a peer on store ${storeId}`);
  }
  checkTarget(ctx, storeId, "a peer");
  const id = ctx.allocPeerId();
  const learner: Peer = { id, storeId, role: "Learner" };
  return [[
    { type: "AddLearner", peer: learner },
    { type: "PromoteLearner", peer: { id, storeId, role: "Voter" } },
  ], learner];
}

/** Adds a peer on `storeId` (AddLearner → PromoteLearner). */
export function createAddPeerOperator(
  desc: string,
  kind: OperatorKind,
  r: RegionInfo,
  storeId: number,
  ctx: BuildContext,
): Operator {
  return make(desc, kind, r, addPeerSteps(r, storeId, ctx)[0], ctx);
}

/** The region's peer on `storeId`, or a `BadRequest` saying there is none. */
function mustPeerOnStore(r: RegionInfo, storeId: number): Peer {
  const peer = r.meta.peers.find((p) => p.storeId === storeId);
  if (!peer) {
    throw new MrkvError("BadRequest", `region ${r.meta.id} has no peer on store ${storeId}`);
  }
  return peer;
}

/** Removes the peer on `storeId`, transferring leadership away first if it leads. */
export function createRemovePeerOperator(
  desc: string,
  kind: OperatorKind,
  r: RegionInfo,
  storeId: number,
  ctx: BuildContext,
): Operator {
  const peer = mustPeerOnStore(r, storeId);
  if (r.meta.peers.length === 1) {
    throw new MrkvError("BadRequest", `cannot remove the last peer of region ${r.meta.id}`);
  }
  const steps: OperatorStep[] = [];
  if (r.leader?.id === peer.id) {
    const to = healthyVoter(r, r.meta.peers.filter((p) => p.id !== peer.id), ctx);
    if (!to) {
      throw new MrkvError(
        "BadRequest",
        `region ${r.meta.id} has no other healthy voter to lead it`,
      );
    }
    steps.push({ type: "TransferLeader", peer: to });
  }
  steps.push({ type: "RemovePeer", peer });
  return make(desc, kind, r, steps, ctx);
}

/**
 * Moves the peer on `source` to `target`: AddLearner → PromoteLearner → TransferLeader to the
 * new peer (only if the source leads) → RemovePeer.
 */
export function createMovePeerOperator(
  desc: string,
  kind: OperatorKind,
  r: RegionInfo,
  source: number,
  target: number,
  ctx: BuildContext,
): Operator {
  const old = mustPeerOnStore(r, source);
  const [steps] = addPeerSteps(r, target, ctx);
  const promoted = (steps[1] as { peer: Peer }).peer;
  if (ctx.jointConsensus && old.role === "Voter") {
    return make(desc, kind, r, [steps[0]!, ...jointSteps([promoted], [old])], ctx);
  }
  if (r.leader?.id === old.id) steps.push({ type: "TransferLeader", peer: promoted });
  steps.push({ type: "RemovePeer", peer: old });
  return make(desc, kind, r, steps, ctx);
}

/**
 * One joint change promoting the learners `promote` and demoting the voters `demote`, then the
 * removal of the demoted peers (learners by then).
 */
function jointSteps(promote: readonly Peer[], demote: readonly Peer[]): OperatorStep[] {
  const voters = promote.map((p): Peer => ({ ...p, role: "Voter" }));
  return [
    { type: "ChangePeerV2Enter", promote: voters, demote },
    { type: "ChangePeerV2Leave", promote: voters, demote },
    ...demote.map((p): OperatorStep => ({ type: "RemovePeer", peer: { ...p, role: "Learner" } })),
  ];
}

/** Transfers leadership to the region's voter on `storeId`. */
export function createTransferLeaderOperator(
  desc: string,
  kind: OperatorKind,
  r: RegionInfo,
  storeId: number,
  ctx: BuildContext,
): Operator {
  const peer = mustPeerOnStore(r, storeId);
  if (peer.role !== "Voter") {
    throw new MrkvError(
      "BadRequest",
      `region ${r.meta.id}'s peer on store ${storeId} is a learner`,
    );
  }
  if (r.leader?.id === peer.id) {
    throw new MrkvError("BadRequest", `store ${storeId} already leads region ${r.meta.id}`);
  }
  // A peer reported down is refused. A pending one is not: the report may be a refresh old (a
  // region that caught up and fell asleep says so only at its next report), and the leader
  // itself holds the step back until the peer has caught up. The balancers skip pending peers
  // on their own.
  const down = r.downPeers.find((d) => d.peer.id === peer.id);
  if (down) {
    throw new MrkvError(
      "BadRequest",
      `region ${r.meta.id}'s peer on store ${storeId} has not answered its leader for ${down.downSeconds} s`,
    );
  }
  checkTarget(ctx, storeId, "leadership");
  return make(desc, kind, r, [{ type: "TransferLeader", peer }], ctx);
}

/**
 * Splits the region at every one of `keys` in one batch split (sorted, duplicates dropped), or
 * at its size midpoint when none are given. Refuses a split that cannot happen: a key not
 * strictly inside the region, or a midpoint split of a region last reported empty.
 */
export function createSplitOperator(
  desc: string,
  kind: OperatorKind,
  r: RegionInfo,
  keys: readonly Uint8Array[],
  ctx: BuildContext,
): Operator {
  const sorted = [...keys].sort(compareBytes)
    .filter((k, i, all) => i === 0 || !bytesEqual(k, all[i - 1]!));
  for (const k of sorted) {
    if (k.length === 0 || !keyInRegion(k, r.meta) || bytesEqual(k, r.meta.startKey)) {
      throw new MrkvError(
        "BadRequest",
        `split key ${describeKey(k)} is not strictly inside region ${r.meta.id}`,
      );
    }
  }
  if (sorted.length === 0 && r.approximateSizeBytes === 0) {
    throw new MrkvError(
      "BadRequest",
      `region ${r.meta.id} was last reported empty: there is no size midpoint to split at (give split keys)`,
    );
  }
  return make(desc, kind, r, [{ type: "SplitRegion", keys: sorted }], ctx);
}

/** A key for a message: UTF-8 if it is printable, else hex. */
function describeKey(k: Uint8Array): string {
  const text = new TextDecoder("utf-8", { fatal: false }).decode(k);
  return /^[\x20-\x7e]*$/.test(text) ? JSON.stringify(text) : `0x${k.toHex()}`;
}

/**
 * Moves the region onto exactly `storeIds`: adds the missing peers, moves leadership onto a
 * kept store if its store is leaving, then removes the peers on other stores.
 */
export function createTransferRegionOperator(
  desc: string,
  kind: OperatorKind,
  r: RegionInfo,
  storeIds: readonly number[],
  ctx: BuildContext,
): Operator {
  const want = new Set(storeIds);
  if (want.size === 0 || want.size !== storeIds.length) {
    throw new MrkvError("BadRequest", "to_store_ids must be a non-empty list of distinct stores");
  }
  const steps: OperatorStep[] = [];
  const voters: Peer[] = r.meta.peers.filter((p) => want.has(p.storeId) && p.role === "Voter");
  const leaving = r.meta.peers.filter((p) => !want.has(p.storeId));
  if (ctx.jointConsensus) {
    const learners: Peer[] = [];
    for (const storeId of storeIds) {
      if (r.meta.peers.some((p) => p.storeId === storeId)) continue;
      const [add, learner] = addPeerSteps(r, storeId, ctx);
      steps.push(add[0]!);
      learners.push(learner);
    }
    const demote = leaving.filter((p) => p.role === "Voter");
    if (learners.length > 0 || demote.length > 0) steps.push(...jointSteps(learners, demote));
    for (const p of leaving) {
      if (p.role !== "Voter") steps.push({ type: "RemovePeer", peer: p });
    }
    if (steps.length === 0) {
      throw new MrkvError(
        "BadRequest",
        `region ${r.meta.id} is already on stores ${storeIds.join(", ")}`,
      );
    }
    return make(desc, kind, r, steps, ctx);
  }
  for (const storeId of storeIds) {
    if (r.meta.peers.some((p) => p.storeId === storeId)) continue;
    const [add] = addPeerSteps(r, storeId, ctx);
    steps.push(...add);
    voters.push((add[1] as { peer: Peer }).peer);
  }
  if (r.leader && leaving.some((p) => p.id === r.leader!.id)) {
    const to = healthyVoter(r, voters, ctx);
    if (!to) {
      throw new MrkvError("BadRequest", `region ${r.meta.id} has no healthy voter to lead it`);
    }
    steps.push({ type: "TransferLeader", peer: to });
  }
  for (const p of leaving) steps.push({ type: "RemovePeer", peer: p });
  if (steps.length === 0) {
    throw new MrkvError(
      "BadRequest",
      `region ${r.meta.id} is already on stores ${storeIds.join(", ")}`,
    );
  }
  return make(desc, kind, r, steps, ctx);
}
