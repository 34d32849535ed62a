/**
 * What a store does with the admin commands a peer applied (apply.ts decides what they change):
 * what they need on disk goes into the Ready pass's write (the state of regions a split creates,
 * a merged source's tombstone, a log compaction's truncated index); once that write has landed,
 * the store acts on them (membership changes reach Raft and may destroy the peer, a split creates
 * its regions' peers, a merge retires its source, a compaction drops log entries).
 *
 * @module
 */
import { ConfChangeError } from "../raft/mod.ts";
import type { LogBatch, WriteBatch } from "../storage/mod.ts";
import { epochEqual, isJointRegion, type Region } from "../proto/metapb.ts";
import type { AdminEffect, ApplyOutcome } from "./apply.ts";
import type { Peer } from "./peer.ts";
import { PeerStorage, RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM } from "./peer_storage.ts";
import type { AppliedRequests } from "./applied_requests.ts";
import { maybeLeaveJoint } from "./conf_change.ts";
import type { PeerLifecycle } from "./peer_lifecycle.ts";
import type { StoreMerges } from "./store_merge.ts";
import type { StoreParts } from "./store_parts.ts";

/** Phases of the Ready loop's Deno KV write (see store.ts). */
export const PHASE_APPLY_DATA = 0;
export const PHASE_APPLY_STATE = 1;
/**
 * A merge's source peer becomes a tombstone after the merged target's state: a cut between the
 * two leaves a source that start-up recognizes as merged (see StoreMerges.finishInterrupted).
 */
export const PHASE_MERGE_SOURCE = 2;

/** Log entries `[lo, hi)` of a region that a CompactLog truncated, to delete from the engine. */
export interface CompactedRange {
  readonly regionId: number;
  readonly lo: number;
  readonly hi: number;
}

/** The store's handling of applied admin commands. */
export class ApplyEffects {
  /** Tables of applied requests for regions a split creates, from persist to peer creation. */
  readonly #splitRequests = new Map<number, AppliedRequests>();
  /** Compactions recorded in the log engine, one after another (see compactLog). */
  #logGc: Promise<void> = Promise.resolve();

  constructor(
    readonly store: StoreParts,
    readonly lifecycle: PeerLifecycle,
    readonly merges: StoreMerges,
  ) {}

  /** Resolves once the log compactions recorded so far have been written. */
  logGcDone(): Promise<void> {
    return this.#logGc;
  }

  /**
   * Persists what admin effects need in the same write as the apply state. Log ranges that a
   * CompactLog truncated are added to `compacted`, to delete once the write has landed.
   */
  persist(
    p: Peer,
    outcome: ApplyOutcome,
    wb: WriteBatch,
    lb: LogBatch,
    compacted: CompactedRange[],
  ): void {
    const s = this.store;
    for (const effect of outcome.effects) {
      if (effect.type === "Split") {
        for (const right of effect.regions) {
          if (s.tombstones.has(right.id) || s.peers.get(right.id)?.storage.isInitialized()) {
            continue;
          }
          const existing = s.peers.get(right.id);
          // The new region inherits the client writes its parent applied: a retry of one of
          // them may now be routed to it. Written before its region state, so a crash cannot
          // leave the region without them.
          const requests = p.storage.requests.clone();
          requests.writeAll(wb.atPhase(PHASE_APPLY_STATE), right.id, RAFT_INIT_LOG_INDEX);
          this.#splitRequests.set(right.id, requests);
          writeInitialState(wb.atPhase(PHASE_APPLY_STATE), lb, right, existing?.storage.hardState);
        }
      } else if (effect.type === "CommitMerge") {
        const source = s.peers.get(effect.source.id);
        const wbs = wb.atPhase(PHASE_MERGE_SOURCE);
        wbs.putRegionState(effect.source.id, {
          peerState: "Tombstone",
          region: source?.region ?? effect.source,
          merge: source?.mergeState,
        });
        wbs.deleteRaftState(effect.source.id);
      } else if (effect.type === "CompactLog") {
        // The truncated index is persisted with this write's apply state; the log engine
        // drops the entries only once it has landed (compactLog), so a crash can leave
        // entries below the truncated index but never a hole above it.
        const range = p.storage.compactTo(effect.index, effect.term);
        if (range) compacted.push({ regionId: p.regionId, ...range });
        else {
          s.log.warn(
            `region ${p.regionId}: ignored CompactLog to ${effect.index} (term ${effect.term}): ` +
              `not inside this log (first ${p.storage.firstIndex()}, last ${p.storage.lastIndex()})`,
          );
        }
      }
    }
  }

  /**
   * Tells the log engine to drop entries a CompactLog truncated, once the truncated index is
   * durable in Deno KV. Unsynced: losing it in a crash only leaves entries below the truncated
   * index, which {@link sweepLog} drops again; the engine reclaims the space later.
   */
  compactLog({ regionId, hi }: CompactedRange): void {
    const s = this.store;
    this.#logGc = this.#logGc.then(async () => {
      if (s.stopped()) return;
      try {
        await s.raftLog.write(s.raftLog.batch().compact(regionId, hi - 1), { sync: false });
      } catch (e) {
        if (!s.stopped()) {
          s.log.warn(
            `region ${regionId}: recording the log compaction to ${hi - 1} failed (a restart ` +
              `finishes it): ${(e as Error).message}`,
          );
        }
      }
    });
  }

  /**
   * Drops what a crash can leave of a log compaction (start-up only, before the peer runs):
   * entries at or below the truncated index.
   */
  async sweepLog(p: Peer): Promise<void> {
    const s = this.store;
    const bounds = s.raftLog.bounds(p.regionId);
    const first = p.storage.firstIndex();
    if (bounds && bounds.first < first) {
      await s.raftLog.write(s.raftLog.batch().compact(p.regionId, first - 1), { sync: false });
      s.log.warn(
        `region ${p.regionId}: finished an interrupted log compaction (entries below ${first})`,
      );
    }
  }

  /** Acts on what a peer applied, once the pass's write has landed (step 4 of the pass). */
  afterApply(p: Peer, outcome: ApplyOutcome): void {
    const s = this.store;
    const before = p.region;
    p.storage.applyState = { ...p.storage.applyState, appliedIndex: outcome.appliedIndex };
    p.storage.region = outcome.region;
    p.sizeDiffHint += outcome.writtenBytes;
    p.approximateSize += outcome.writtenBytes;
    p.deletesSinceScan += outcome.deletes;
    s.flow.write(p.regionId, outcome.writtenBytes, outcome.writtenKeys);
    for (const effect of outcome.effects) this.#onAdminEffect(p, effect);
    if (!p.destroyed) {
      if (!epochEqual(before.epoch, p.region.epoch)) {
        s.setRegion(p.region, true);
        s.observer()?.regionChanged(p);
      }
      p.onApplied(outcome.results.slice(outcome.answered));
      p.releaseReads();
    } else {
      p.onApplied(outcome.results.slice(outcome.answered));
    }
  }

  #onAdminEffect(p: Peer, effect: AdminEffect): void {
    const s = this.store;
    switch (effect.type) {
      case "ChangePeer":
        try {
          p.raw.applyConfChange(effect.cc);
        } catch (e) {
          // Apply checked the change with Raft's own rules, so this is a bug; the region keeps
          // going rather than crash the store.
          if (!(e instanceof ConfChangeError)) throw e;
          s.log.error(`region ${p.regionId}: Raft refused an applied conf change: ${e.message}`);
        }
        for (const peer of effect.region.peers) p.peerCache.set(peer.id, peer);
        // Destroyed only once out of both configurations: a demoted voter stays as a learner.
        if (!effect.region.peers.some((x) => x.id === p.meta.id)) {
          s.log.info(`region ${p.regionId}: peer ${p.meta.id} was removed; destroying it`);
          this.lifecycle.destroyPeer(p, effect.region).catch((e) =>
            s.log.error(`region ${p.regionId}: destroying peer ${p.meta.id} failed: ${e}`)
          );
        } else if (isJointRegion(effect.region)) {
          maybeLeaveJoint(p, () => s.schedule(p), s.log);
        }
        break;
      case "PrepareMerge": {
        p.mergeState = effect.state;
        s.log.info(
          `region ${p.regionId}: prepared to merge into region ${effect.state.target.id} ` +
            `(at ${effect.state.commit})`,
        );
        // A target waiting at the CommitMerge for this source may go on.
        const target = s.peers.get(effect.state.target.id);
        if (target) s.schedule(target);
        break;
      }
      case "CommitMerge":
        this.merges.retireSource(p, effect.source.id);
        break;
      case "RollbackMerge":
        p.mergeState = undefined;
        s.log.info(`region ${p.regionId}: merge rolled back`);
        break;
      case "Split": {
        // Also for a peer being destroyed: its destruction waits for this pass and then takes
        // the left half out of the store meta; the new regions come to exist either way (their
        // state is in the write that just landed).
        s.setRegion(effect.left, true);
        // The size is shared out evenly until the next size check measures it.
        const share = Math.floor(p.approximateSize / (effect.regions.length + 1));
        p.approximateSize = share;
        for (const right of effect.regions) this.#createSplitPeer(p, right, share);
        s.log.info(
          `region ${effect.left.id} split: new regions ${
            effect.regions.map((r) => r.id).join(", ")
          }`,
        );
        break;
      }
      case "CompactLog":
        break; // already applied to the peer storage in persist()
    }
  }

  #createSplitPeer(parent: Peer, right: Region, approximateSize: number): void {
    const s = this.store;
    const requests = this.#splitRequests.get(right.id) ?? parent.storage.requests.clone();
    this.#splitRequests.delete(right.id);
    if (s.tombstones.has(right.id)) return;
    const existing = s.peers.get(right.id);
    if (existing?.storage.isInitialized()) return;
    const meta = right.peers.find((x) => x.storeId === s.storeId);
    if (!meta) return;
    const hs = existing?.storage.hardState;
    if (existing) {
      existing.destroyed = true;
      s.peers.delete(right.id);
      s.hibernation.removed(existing);
    }
    const storage = new PeerStorage(
      right,
      initialHardState(hs),
      {
        appliedIndex: RAFT_INIT_LOG_INDEX,
        truncatedIndex: RAFT_INIT_LOG_INDEX,
        truncatedTerm: RAFT_INIT_LOG_TERM,
      },
      [],
      requests,
    );
    const peer = s.newPeer(meta, storage);
    s.peers.set(right.id, peer);
    s.hibernation.added(peer);
    s.setRegion(right, true);
    peer.approximateSize = approximateSize;
    // The parent's leader campaigns at once for the new region so it is not leaderless for an
    // election timeout (TiKV does the same). Followers that had not applied the split when its
    // vote requests came held them (see inbound.ts); they are answered now.
    if (parent.isLeader()) peer.raw.campaign();
    for (const env of s.earlyVotes.take(right.id, meta.id)) peer.step(env.message, env.fromPeer);
    s.schedule(peer);
  }
}

/** Hard state a bootstrapped or split-created region starts with; keeps a newer term/vote. */
function initialHardState(existing?: { term: number; vote: number; commit: number }) {
  if (existing && existing.term > RAFT_INIT_LOG_TERM) {
    return { ...existing, commit: Math.max(existing.commit, RAFT_INIT_LOG_INDEX) };
  }
  return { term: RAFT_INIT_LOG_TERM, vote: 0, commit: RAFT_INIT_LOG_INDEX };
}

/**
 * Writes the state records of a region created by bootstrap or split: region and apply state
 * to Deno KV, hard state to the log (if that write is lost, PeerStorage.load starts from the
 * same values).
 */
export function writeInitialState(
  wb: WriteBatch,
  lb: LogBatch,
  region: Region,
  hs?: { term: number; vote: number; commit: number },
): void {
  wb.putRegionState(region.id, { peerState: "Normal", region });
  wb.putApplyState(region.id, {
    appliedIndex: RAFT_INIT_LOG_INDEX,
    truncatedIndex: RAFT_INIT_LOG_INDEX,
    truncatedTerm: RAFT_INIT_LOG_TERM,
  });
  lb.putHardState(region.id, initialHardState(hs));
}
