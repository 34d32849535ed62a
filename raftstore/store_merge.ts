/**
 * A store's side of region merges (the commands and their checks are in merge.ts): a target whose
 * apply reaches a CommitMerge waits for the local source peer to have applied its PrepareMerge,
 * catching it up from the entries the command carries; the source peer retires once the target
 * applied the merge; start-up finishes a merge a crash cut short; and stale peers of a region
 * merged away are told where it went (merge_worker.ts acts on that).
 *
 * @module
 */
import type { Region, RegionEpoch } from "../proto/metapb.ts";
import type { CommitMergeRequest } from "./cmd.ts";
import type { Peer } from "./peer.ts";
import { catchUpMergeSource, type MergeState, regionCovers } from "./merge.ts";
import type { RaftEnvelope } from "./transport.ts";
import type { PeerLifecycle } from "./peer_lifecycle.ts";
import type { StoreParts } from "./store_parts.ts";

/** Merges as one store sees them. */
export class StoreMerges {
  /**
   * Merge targets whose apply waits at a CommitMerge, by source region; the command is kept to
   * catch the local source peer up at the start of the next pass (see merge.ts).
   */
  readonly #waiting = new Map<number, { target: Peer; req: CommitMergeRequest }>();

  constructor(readonly store: StoreParts, readonly lifecycle: PeerLifecycle) {}

  /**
   * Whether the local peer of a CommitMerge's source has applied its PrepareMerge: its applied
   * client writes if so. If not, the target's apply waits, and the next pass catches the source
   * up from the entries the command carries.
   */
  sourceReady(target: Peer, req: CommitMergeRequest) {
    const source = this.store.peers.get(req.source.id);
    if (
      source && !source.destroyed && source.storage.isInitialized() &&
      source.appliedIndex >= req.commit
    ) {
      const ms = source.mergeState;
      if (ms?.commit === req.commit && ms.target.id === target.regionId) {
        return source.storage.requests;
      }
      // The target committed a merge the source does not know: never merge a range that may
      // have moved on. Waits (and says so) rather than guess.
      this.store.log.error(
        `region ${target.regionId}: CommitMerge of region ${req.source.id} at ${req.commit} ` +
          `does not match its local merge state (${JSON.stringify(ms && ms.commit)}); waiting`,
      );
      return undefined;
    }
    this.#waiting.set(req.source.id, { target, req });
    return undefined;
  }

  /** Appends the entries waiting merges carry to their lagging local source peers. */
  catchUpSources(): void {
    const s = this.store;
    for (const [sourceId, { target, req }] of this.#waiting) {
      this.#waiting.delete(sourceId);
      const source = s.peers.get(sourceId);
      if (!source || source.destroyed || !source.storage.isInitialized()) {
        s.log.warn(
          `region ${target.regionId}: waiting to merge region ${sourceId}, which has no ` +
            `initialized peer on store ${s.storeId}`,
        );
        continue;
      }
      const note = catchUpMergeSource(source, req);
      if (note) s.log.warn(`region ${sourceId}: cannot catch up for merge: ${note}`);
      s.schedule(source);
    }
  }

  /**
   * The target applied the merge of `sourceId`: its local source peer goes (its tombstone is in
   * the write that just landed), keeping the data, which now belongs to the target.
   */
  retireSource(target: Peer, sourceId: number): void {
    const source = this.store.peers.get(sourceId);
    if (!source) return;
    target.approximateSize += source.approximateSize;
    target.approximateKeys += source.approximateKeys;
    this.store.log.info(`region ${target.regionId}: merged region ${sourceId}`);
    this.lifecycle.retire(source, source.mergeState);
  }

  /**
   * Start-up: a merging source whose local target already covers its range with a newer
   * version was merged, but a crash cut the write before its tombstone: finish the job.
   */
  async finishInterrupted(): Promise<void> {
    const s = this.store;
    for (const p of [...s.peers.values()]) {
      const ms = p.mergeState;
      const target = ms && s.peers.get(ms.target.id);
      if (
        !ms || !target?.storage.isInitialized() ||
        target.region.epoch.version <= ms.target.epoch.version ||
        !regionCovers(target.region, p.region)
      ) continue;
      s.log.warn(`region ${p.regionId}: finishing its merge into region ${target.regionId}`);
      const wb = s.engine.batch();
      wb.putRegionState(p.regionId, { peerState: "Tombstone", region: p.region, merge: ms });
      wb.deleteRaftState(p.regionId);
      await s.engine.write(wb);
      this.lifecycle.retire(p, ms);
      s.setRegion(target.region, true);
    }
  }

  /** Tells a stale peer of a region merged away where its region went (see merge_worker.ts). */
  replyMerged(env: RaftEnvelope, region: Region, merge: MergeState): void {
    const isStale = (e: RegionEpoch) =>
      e.version < region.epoch.version || e.confVer < region.epoch.confVer;
    if (!isStale(env.epoch)) return;
    this.store.transport().send(env.fromPeer.storeId, [{
      regionId: region.id,
      fromPeer: env.toPeer,
      toPeer: env.fromPeer,
      epoch: region.epoch,
      startKey: region.startKey,
      endKey: region.endKey,
      isTombstone: true,
      mergeTarget: { id: merge.target.id, epoch: merge.target.epoch },
      message: {
        ...env.message,
        type: "MsgHeartbeat",
        to: env.fromPeer.id,
        from: env.toPeer.id,
        entries: [],
        snapshot: undefined,
      },
    }]);
  }
}
