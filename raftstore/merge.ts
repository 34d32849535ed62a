/**
 * Region merge, as apply sees it (TiKV's protocol; `merge_worker.ts` drives it).
 *
 * 1. **PrepareMerge** on the source region: the region is frozen — every command proposed
 *    before it fails its epoch check (both `version` and `conf_ver` grow), nothing new is
 *    proposed, reads stop — and its {@link MergeState} records the target region as the
 *    proposer saw it, the PrepareMerge's own index (`commit`) and the smallest index every
 *    source peer had (`minIndex`).
 * 2. **CommitMerge** on the target region, proposed by its leader once its local source peer has
 *    applied the PrepareMerge: the target takes the source's range (`version` becomes one more
 *    than the larger of both), and the client writes both regions applied (exactly-once). It
 *    carries the source's log `minIndex + 1 ..= commit`, so a source peer that missed the end of
 *    it can still catch up: a target peer applies the CommitMerge only once its local source
 *    peer has applied the PrepareMerge (apply waits, see {@link ApplyBlocked}), and then
 *    tombstones that source peer. No data moves: both regions' peers are on the same stores and
 *    share each store's engine, so only ranges change.
 * 3. **RollbackMerge** on the source when the target can no longer take it (its epoch moved on,
 *    so a CommitMerge would fail its epoch check everywhere): the region thaws (`version` + 1).
 *
 * Every check here is a function of the command and the region's replicated state, so all
 * replicas decide alike; only *when* a target peer applies a CommitMerge depends on local state.
 *
 * @module
 */
import { decodeEntry, type Entry } from "../raft/mod.ts";
import type { WriteBatch } from "../storage/mod.ts";
import { MrkvError } from "../proto/errors.ts";
import {
  bytesEqual,
  compareBytes,
  compareEndKeys,
  decodeRegion,
  isJointRegion,
  type Region,
  type RegionEpoch,
  regionsAdjacent,
} from "../proto/metapb.ts";
import { expectObject, expectUint, field } from "../proto/codec.ts";
import {
  type CommitMergeRequest,
  decodeCmd,
  type PrepareMergeRequest,
  type RollbackMergeRequest,
} from "./cmd.ts";
import type { AppliedRequests } from "./applied_requests.ts";
import type { ApplyOutcome, ApplyPhases } from "./apply.ts";
import type { Peer } from "./peer.ts";

/** A source region's merge in progress, persisted with its `Merging` region state. */
export interface MergeState {
  /** The target region as the PrepareMerge recorded it (its epoch then). */
  readonly target: Region;
  /** Every source peer had the log up to here when the PrepareMerge was proposed. */
  readonly minIndex: number;
  /** The index of the PrepareMerge entry. */
  readonly commit: number;
}

/** Decodes a persisted {@link MergeState}. */
export function decodeMergeState(v: unknown, name: string): MergeState {
  const o = expectObject(v, name);
  return {
    target: decodeRegion(field(o, "target"), `${name}.target`),
    minIndex: expectUint(field(o, "minIndex"), `${name}.minIndex`),
    commit: expectUint(field(o, "commit"), `${name}.commit`),
  };
}

/**
 * Thrown by {@link execCommitMerge} when the local source peer has not applied its PrepareMerge
 * yet: apply stops before the entry and takes it up again later (nothing of it is kept).
 */
export class ApplyBlocked extends Error {
  constructor(readonly req: CommitMergeRequest) {
    super(`waiting for the local peer of region ${req.source.id} to catch up`);
  }
}

/**
 * Why `source` cannot merge into `target` (by shape alone), or undefined: they must be
 * different, adjacent, out of any joint configuration, and have their peers on the same stores
 * in the same roles (data does not move; each store merges its own copy).
 */
export function mergeShapeProblem(source: Region, target: Region): string | undefined {
  if (source.id === target.id) return `region ${source.id} cannot merge into itself`;
  if (!regionsAdjacent(source, target)) {
    return `regions ${source.id} and ${target.id} are not adjacent`;
  }
  if (isJointRegion(source) || isJointRegion(target)) {
    return `region ${isJointRegion(source) ? source.id : target.id} is in a joint configuration`;
  }
  const roles = (r: Region) =>
    JSON.stringify(r.peers.map((p) => [p.storeId, p.role]).sort((a, b) => +a[0]! - +b[0]!));
  if (roles(source) !== roles(target)) {
    return `regions ${source.id} and ${target.id} do not have their peers on the same stores`;
  }
  return undefined;
}

function mustShape(source: Region, target: Region): void {
  const problem = mergeShapeProblem(source, target);
  if (problem) throw new MrkvError("BadRequest", `cannot merge: ${problem}`);
}

/** True if `a` is newer than `b` in either field (a region at `b` is stale). */
export function isEpochNewer(a: RegionEpoch, b: RegionEpoch): boolean {
  return a.version > b.version || a.confVer > b.confVer;
}

/** PrepareMerge at `index` on the source region (see the module comment). */
export function execPrepareMerge(
  out: ApplyOutcome,
  req: PrepareMergeRequest,
  index: number,
  wb: WriteBatch,
  phases: ApplyPhases,
): void {
  const region = out.region;
  if (out.merge) {
    throw new MrkvError("StaleCommand", `region ${region.id} is already merging`);
  }
  mustShape(region, req.target);
  if (req.minIndex >= index) {
    throw new MrkvError("BadRequest", `PrepareMerge at ${index} names min index ${req.minIndex}`);
  }
  const frozen: Region = {
    ...region,
    epoch: { confVer: region.epoch.confVer + 1, version: region.epoch.version + 1 },
  };
  const state: MergeState = { target: req.target, minIndex: req.minIndex, commit: index };
  out.region = frozen;
  out.merge = state;
  wb.atPhase(phases.state).putRegionState(region.id, {
    peerState: "Merging",
    region: frozen,
    merge: state,
  });
  out.effects.push({ type: "PrepareMerge", state });
}

/**
 * Checks a CommitMerge's source log: entries `minIndex + 1 ..= commit`, contiguous, the last
 * one a PrepareMerge into `targetId`. Returns them decoded.
 */
export function checkMergeEntries(req: CommitMergeRequest, targetId: number): Entry[] {
  const entries = req.entries.map((b) => decodeEntry(b));
  const last = entries[entries.length - 1];
  if (!last || last.index !== req.commit) {
    throw new MrkvError("BadRequest", `CommitMerge carries no entry up to ${req.commit}`);
  }
  for (let i = 1; i < entries.length; i++) {
    if (entries[i]!.index !== entries[i - 1]!.index + 1) {
      throw new MrkvError("BadRequest", "CommitMerge carries a log with a hole");
    }
  }
  const prepare = last.type === "Normal" && last.data.length > 0 ? decodeCmd(last.data) : undefined;
  if (
    prepare?.admin?.type !== "PrepareMerge" || prepare.admin.target.id !== targetId ||
    prepare.header.regionId !== req.source.id
  ) {
    throw new MrkvError(
      "BadRequest",
      `CommitMerge's last source entry is not region ${req.source.id}'s PrepareMerge into ` +
        `region ${targetId}`,
    );
  }
  return entries;
}

/**
 * CommitMerge on the target region. `sourceReady` answers whether the local source peer has
 * applied the PrepareMerge, with its applied client writes; if not, apply waits
 * ({@link ApplyBlocked}). Every check that can fail comes first: a CommitMerge that fails, fails
 * on every replica without waiting.
 */
export function execCommitMerge(
  out: ApplyOutcome,
  req: CommitMergeRequest,
  wb: WriteBatch,
  phases: ApplyPhases,
  requests: AppliedRequests,
  index: number,
  sourceReady: (req: CommitMergeRequest) => AppliedRequests | undefined,
): void {
  const region = out.region;
  if (out.merge) {
    throw new MrkvError("StaleCommand", `region ${region.id} is itself merging`);
  }
  mustShape(req.source, region);
  checkMergeEntries(req, region.id);
  const sourceRequests = sourceReady(req);
  if (!sourceRequests) throw new ApplyBlocked(req);
  const source = req.source;
  // The larger version plus one: newer than both, so the scheduler prefers it over either.
  const version = Math.max(source.epoch.version, region.epoch.version) + 1;
  const merged: Region = bytesEqual(region.endKey, source.startKey) && region.endKey.length > 0
    ? { ...region, endKey: source.endKey, epoch: { ...region.epoch, version } }
    : { ...region, startKey: source.startKey, epoch: { ...region.epoch, version } };
  out.region = merged;
  wb.atPhase(phases.state).putRegionState(region.id, { peerState: "Normal", region: merged });
  // A retry of a write the source applied may now reach the merged region: it must be known.
  requests.absorb(sourceRequests, index);
  out.effects.push({ type: "CommitMerge", region: merged, source, commit: req.commit });
}

/** RollbackMerge on the source region: it thaws. */
export function execRollbackMerge(
  out: ApplyOutcome,
  req: RollbackMergeRequest,
  wb: WriteBatch,
  phases: ApplyPhases,
): void {
  const region = out.region;
  if (!out.merge || out.merge.commit !== req.commit) {
    throw new MrkvError(
      "StaleCommand",
      `region ${region.id} has no merge prepared at ${req.commit} to roll back`,
    );
  }
  const thawed: Region = {
    ...region,
    epoch: { ...region.epoch, version: region.epoch.version + 1 },
  };
  out.region = thawed;
  out.merge = undefined;
  wb.atPhase(phases.state).putRegionState(region.id, { peerState: "Normal", region: thawed });
  out.effects.push({ type: "RollbackMerge", commit: req.commit });
}

/** True if `outer`'s range holds all of `inner`'s. */
export function regionCovers(
  outer: Pick<Region, "startKey" | "endKey">,
  inner: Pick<Region, "startKey" | "endKey">,
): boolean {
  return compareBytes(outer.startKey, inner.startKey) <= 0 &&
    compareEndKeys(outer.endKey, inner.endKey) >= 0;
}

/**
 * True if `source` (a local peer) is known to have been merged into `target` at an epoch older
 * than `target`'s version: a region at that version has taken the source's range over.
 */
export function isMergedSourceOf(source: Peer, target: Region): boolean {
  const into = source.mergeState?.target ?? source.mergedInto;
  return into !== undefined && into.id === target.id && target.epoch.version > into.epoch.version;
}

/**
 * Brings a lagging source peer's log up to a CommitMerge's `commit` (TiKV's CatchUpLogs): the
 * command's entries are committed in the source region — its PrepareMerge at `commit` was — so
 * they are appended to the peer's Raft log as its leader would, and marked committed; the peer
 * then applies them as usual, PrepareMerge last. Called between Ready passes. Returns why it
 * could not, or undefined.
 */
export function catchUpMergeSource(source: Peer, req: CommitMergeRequest): string | undefined {
  const raft = source.raw.raft;
  const log = raft.raftLog;
  if (log.committed >= req.commit) return undefined; // it has them; apply follows
  let entries: Entry[];
  try {
    entries = req.entries.map((b) => decodeEntry(b)).filter((e) => e.index > log.committed);
  } catch (e) {
    return `the CommitMerge's entries do not decode: ${(e as Error).message}`;
  }
  const first = entries[0];
  const last = entries[entries.length - 1];
  if (!first || !last) return `the CommitMerge carries no entry after ${log.committed}`;
  // Every source peer had the log up to the merge's min index, and everything below `commit`
  // is committed, so the local entry before the first one carried is the leader's.
  const prev = first.index - 1;
  let prevTerm: number;
  try {
    prevTerm = log.term(prev);
  } catch (e) {
    return `its log does not reach entry ${prev}: ${(e as Error).message}`;
  }
  try {
    // The entries come from a leader of a term at least that of the last one.
    if (last.term > raft.term) raft.becomeFollower(last.term, 0);
    if (log.maybeAppend(prev, prevTerm, req.commit, entries) === undefined) {
      return `its entry ${prev} has another term than the merge's log`;
    }
  } catch (e) {
    return (e as Error).message;
  }
  return undefined;
}
