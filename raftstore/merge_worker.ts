/**
 * Driving merges on one store (the protocol is in merge.ts).
 *
 * - **PrepareMerge** is proposed by the source's leader when the scheduler asks
 *   ({@link MergeWorker.proposePrepareMerge}), after TiKV's checks: the local target peer is
 *   initialized and not behind what the scheduler saw, both regions have the same shape
 *   (`mergeShapeProblem`), no conf change is pending, and every source peer has the log from
 *   `minIndex` on — the entries after it, which a CommitMerge will carry, hold no admin command
 *   and stay under {@link MAX_MERGE_GAP_BYTES}.
 * - Every `MERGE_CHECK_TICKS` ticks each merging source peer looks at its local target peer:
 *   at the epoch the PrepareMerge recorded and leading → propose the **CommitMerge** (every
 *   store does this for its own target peer, so whichever store leads the target proposes);
 *   newer → the CommitMerge can no longer succeed anywhere (it carries the recorded epoch), and
 *   the source's leader proposes **RollbackMerge**; older → wait. Because a target peer applies
 *   a CommitMerge only once its local source peer has (and then retires it), a live source peer
 *   whose target moved on knows the merge did not happen before that.
 * - A source peer that was cut off while its region merged learns it from a tombstone reply
 *   (`Peer.mergedInto`). It waits for its local target to carry it up from the CommitMerge, or
 *   for a target snapshot taken after the merge (which destroys it first, see store.ts); if its
 *   local target has already moved past the merge some other way, it is destroyed here.
 *
 * @module
 */
import { MrkvError } from "../proto/errors.ts";
import { epochEqual, type Region } from "../proto/metapb.ts";
import { encodeEntry } from "../raft/mod.ts";
import { decodeCmd } from "./cmd.ts";
import { isEpochNewer, mergeShapeProblem } from "./merge.ts";
import type { Peer } from "./peer.ts";
import type { Store } from "./store.ts";

/** Most bytes of source log a CommitMerge may carry (it travels as one Raft entry). */
export const MAX_MERGE_GAP_BYTES = 4 * 1024 * 1024;
/** Ticks between merge checks. */
const MERGE_CHECK_TICKS = 4;
/** A CommitMerge or RollbackMerge not seen applied after this long is proposed again. */
const REPROPOSE_MS = 3_000;

/** Merge checks for one store's peers. */
export class MergeWorker {
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Last CommitMerge / RollbackMerge proposal per source region: when, and in which term. */
  readonly #proposed = new Map<string, { at: number; term: number }>();
  /** Merge commands proposed, for metrics and tests. */
  readonly stats = { prepares: 0, commits: 0, rollbacks: 0, staleSourcesDestroyed: 0 };

  constructor(readonly store: Store) {}

  start(): void {
    this.#timer = setInterval(
      () => this.check(),
      this.store.config.raftTickMs * MERGE_CHECK_TICKS,
    );
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** One round over every merging source peer and every stale one. */
  check(): void {
    if (this.store.stopped) return;
    for (const p of [...this.store.peers.values()]) {
      if (p.destroyed) continue;
      if (p.mergeState) this.#checkSource(p);
      else if (p.mergedInto) {
        this.#checkStaleSource(p).catch((e) =>
          this.store.log.error(`region ${p.regionId}: destroying a stale source failed: ${e}`)
        );
      }
    }
    for (const key of this.#proposed.keys()) {
      const id = Number(key.split(":")[1]);
      if (!this.store.peers.get(id)?.mergeState) this.#proposed.delete(key);
    }
  }

  /**
   * Proposes PrepareMerge of `source` (led here) into `target` as the scheduler saw it. Resolves
   * once applied; a source already merging into that target resolves at once.
   */
  async proposePrepareMerge(source: Peer, target: Region): Promise<void> {
    if (source.mergeState?.target.id === target.id) return;
    source.checkProposable("PrepareMerge");
    const local = this.store.peers.get(target.id);
    if (!local || local.destroyed || !local.storage.isInitialized()) {
      throw new MrkvError(
        "RegionNotFound",
        `store ${this.store.storeId} has no peer of merge target region ${target.id}`,
      );
    }
    if (isEpochNewer(target.epoch, local.region.epoch)) {
      throw new MrkvError(
        "ServerIsBusy",
        `the local peer of merge target region ${target.id} is behind the scheduler's view`,
      );
    }
    if (local.mergeState) {
      throw new MrkvError("ServerIsBusy", `merge target region ${target.id} is itself merging`);
    }
    const problem = mergeShapeProblem(source.region, local.region);
    if (problem) throw new MrkvError("BadRequest", `cannot merge: ${problem}`);
    const raft = source.raw.raft;
    if (raft.pendingConfIndex > raft.raftLog.applied) {
      throw new MrkvError("ServerIsBusy", `region ${source.regionId} has a conf change pending`);
    }
    const minIndex = Math.min(...Object.values(source.raw.status().progress).map((p) => p.match));
    if (minIndex < source.storage.firstIndex() - 1) {
      throw new MrkvError(
        "ServerIsBusy",
        `a peer of region ${source.regionId} is at ${minIndex}, behind the log's start`,
      );
    }
    checkMergeGap(source, minIndex);
    const p = source.propose({
      header: { regionId: source.regionId, peerId: source.meta.id, epoch: source.region.epoch },
      admin: { type: "PrepareMerge", target: local.region, minIndex },
    });
    this.store.schedule(source);
    this.stats.prepares++;
    await p;
  }

  #checkSource(source: Peer): void {
    const ms = source.mergeState!;
    const target = this.store.peers.get(ms.target.id);
    if (target && !target.destroyed && target.storage.isInitialized()) {
      if (epochEqual(target.region.epoch, ms.target.epoch)) {
        if (target.isLeader()) this.#proposeCommitMerge(source, target);
      } else if (isEpochNewer(target.region.epoch, ms.target.epoch) && source.isLeader()) {
        this.#proposeRollback(source, `target region ${target.regionId} changed`);
      }
      return;
    }
    const tomb = this.store.tombstones.get(ms.target.id);
    if (tomb && isEpochNewer(tomb.region.epoch, ms.target.epoch) && source.isLeader()) {
      this.#proposeRollback(source, `target region ${ms.target.id} left this store`);
    }
  }

  /** Whether to propose `kind` for `source` now (not while an earlier one may still apply). */
  #due(kind: string, source: Peer, term: number): boolean {
    const key = `${kind}:${source.regionId}`;
    const last = this.#proposed.get(key);
    if (last && last.term === term && Date.now() - last.at < REPROPOSE_MS) return false;
    this.#proposed.set(key, { at: Date.now(), term });
    return true;
  }

  #proposeCommitMerge(source: Peer, target: Peer): void {
    const ms = source.mergeState!;
    if (!this.#due("commit", source, target.raw.raft.term)) return;
    const from = Math.max(ms.minIndex + 1, source.storage.firstIndex());
    let entries;
    try {
      entries = source.storage.entries(from, ms.commit + 1, Number.MAX_SAFE_INTEGER);
    } catch (e) {
      this.store.log.warn(
        `region ${source.regionId}: cannot read its log ${from}..${ms.commit} for the merge: ` +
          `${(e as Error).message}`,
      );
      return;
    }
    this.stats.commits++;
    target.propose({
      header: { regionId: target.regionId, peerId: target.meta.id, epoch: ms.target.epoch },
      admin: {
        type: "CommitMerge",
        source: source.region,
        commit: ms.commit,
        entries: entries.map(encodeEntry),
      },
    }).catch((e) => {
      this.store.log.info(
        `region ${target.regionId}: CommitMerge of region ${source.regionId} not done: ${e.message}`,
      );
    });
    this.store.schedule(target);
  }

  #proposeRollback(source: Peer, why: string): void {
    if (!this.#due("rollback", source, source.raw.raft.term)) return;
    this.store.log.info(`region ${source.regionId}: rolling back its merge: ${why}`);
    this.stats.rollbacks++;
    source.propose({
      header: { regionId: source.regionId, peerId: source.meta.id, epoch: source.region.epoch },
      admin: { type: "RollbackMerge", commit: source.mergeState!.commit },
    }).catch((e) => {
      this.store.log.info(`region ${source.regionId}: RollbackMerge not done: ${e.message}`);
    });
    this.store.schedule(source);
  }

  async #checkStaleSource(source: Peer): Promise<void> {
    const into = source.mergedInto!;
    const target = this.store.peers.get(into.id);
    const known = target?.storage.isInitialized()
      ? target.region
      : this.store.tombstones.get(into.id)?.region;
    if (!known || !isEpochNewer(known.epoch, into.epoch)) return;
    this.store.log.info(
      `region ${source.regionId}: merged into region ${into.id}, which has moved on here; ` +
        `destroying stale peer ${source.meta.id}`,
    );
    this.stats.staleSourcesDestroyed++;
    await this.store.destroyPeer(source);
  }
}

/** True if `data` is an admin command (an undecodable entry is a no-op at apply: not one). */
function isAdminEntry(data: Uint8Array): boolean {
  if (data.length === 0) return false;
  try {
    return decodeCmd(data).admin !== undefined;
  } catch {
    return false;
  }
}

/**
 * Checks the source log a CommitMerge would carry (`minIndex + 1` to the end): no admin command
 * or conf change in it (a lagging peer catching up from it would have to act on one), and not
 * too large.
 */
function checkMergeGap(source: Peer, minIndex: number): void {
  let bytes = 0;
  for (const e of source.raw.raft.raftLog.entries(minIndex + 1, Number.MAX_SAFE_INTEGER)) {
    bytes += e.data.length;
    if (e.type !== "Normal" || isAdminEntry(e.data)) {
      throw new MrkvError(
        "ServerIsBusy",
        `region ${source.regionId} has an admin command in flight at ${e.index}`,
      );
    }
  }
  if (bytes > MAX_MERGE_GAP_BYTES) {
    throw new MrkvError(
      "ServerIsBusy",
      `region ${source.regionId}'s slowest peer is ${bytes} bytes of log behind`,
    );
  }
}
