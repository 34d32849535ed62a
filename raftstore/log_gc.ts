/**
 * Raft log GC: a leader whose log holds more than `raft-log-gc-count-limit` applied entries, or
 * more than {@link gcSizeLimit} bytes of them (TiKV's size limit: three quarters of
 * `region-split-size`; the log is held in memory), proposes CompactLog up to just below its
 * applied index. Followers that still needed those
 * entries catch up by snapshot. CompactLog goes through the log so every peer compacts at the
 * same point of the applied sequence.
 *
 * @module
 */
import type { Store } from "./store.ts";

/** How many Raft ticks between GC checks. */
const GC_CHECK_TICKS = 10;

/** Bytes of log past which a leader compacts even below the count limit. */
export function gcSizeLimit(store: Store): number {
  return Math.floor(store.config.regionSplitSize * 3 / 4);
}

/** Periodic log GC for one store's leaders. */
export class LogGcWorker {
  #timer: ReturnType<typeof setInterval> | undefined;
  /** CompactLog commands proposed, for metrics and tests. */
  proposed = 0;

  constructor(readonly store: Store) {}

  start(): void {
    this.#timer = setInterval(() => this.check(), this.store.config.raftTickMs * GC_CHECK_TICKS);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  check(): void {
    const limit = this.store.config.raftLogGcCountLimit;
    for (const peer of this.store.peers.values()) {
      if (!peer.isLeader() || peer.destroyed) continue;
      const applied = peer.appliedIndex;
      const first = peer.storage.firstIndex();
      if (applied - first + 1 <= limit && peer.storage.logBytes() <= gcSizeLimit(this.store)) {
        continue;
      }
      const compactIndex = applied - 1;
      let compactTerm: number;
      try {
        compactTerm = peer.storage.term(compactIndex);
      } catch {
        continue;
      }
      peer.propose({
        header: { regionId: peer.regionId, peerId: peer.meta.id, epoch: peer.region.epoch },
        admin: { type: "CompactLog", compactIndex, compactTerm },
      }).catch(() => {/* retried at the next check */});
      this.store.schedule(peer);
      this.proposed++;
    }
  }
}
