/**
 * Messages a store drops because they would create a peer for a region whose range overlaps a
 * local region. Usually that is a split this store has not applied yet, and it is over within
 * moments; but a local range with nothing behind it refuses the region for good, and the region
 * then never gets its peer here. Such drops are reported once a region has been refused for a
 * while, then at intervals, with how many were dropped since the last report: a split in flight
 * stays quiet, a region refused for good is named in the log.
 *
 * @module
 */

/** A report that is due: messages dropped since the last one, and for how long the region has been refused. */
export interface OverlapReport {
  readonly dropped: number;
  readonly forMs: number;
}

interface Episode {
  /** When the first drop of this run of drops happened. */
  readonly since: number;
  /** The last drop. */
  last: number;
  /** The last report (or `-Infinity`). */
  reported: number;
  /** Drops since the last report. */
  dropped: number;
}

/** Drops by region, and when each is due to be reported. */
export class OverlapDrops {
  readonly #episodes = new Map<number, Episode>();
  #prunedAt = 0;

  /**
   * @param graceMs how long a region may be refused before it is reported (a split's apply on
   *   a slow store stays well inside it)
   * @param intervalMs at least this long between two reports for one region; a region with no
   *   drop for this long starts afresh
   */
  constructor(readonly graceMs = 3_000, readonly intervalMs = 10_000) {}

  /** Notes a dropped message for `regionId` at `now` (ms); returns a report if one is due. */
  note(regionId: number, now: number): OverlapReport | undefined {
    this.#prune(now);
    let e = this.#episodes.get(regionId);
    if (!e || now - e.last > this.intervalMs) {
      e = { since: now, last: now, reported: -Infinity, dropped: 0 };
      this.#episodes.set(regionId, e);
    }
    e.last = now;
    e.dropped++;
    if (now - e.since < this.graceMs || now - e.reported < this.intervalMs) return undefined;
    const report = { dropped: e.dropped, forMs: now - e.since };
    e.reported = now;
    e.dropped = 0;
    return report;
  }

  /** Region `regionId` got its peer here: its drops are over. */
  clear(regionId: number): void {
    this.#episodes.delete(regionId);
  }

  /** How many regions have recent drops (for tests). */
  get size(): number {
    return this.#episodes.size;
  }

  /** Forgets regions with no drop for an interval, at most once an interval (bounds memory). */
  #prune(now: number): void {
    if (now - this.#prunedAt < this.intervalMs) return;
    this.#prunedAt = now;
    for (const [id, e] of this.#episodes) {
      if (now - e.last > this.intervalMs) this.#episodes.delete(id);
    }
  }
}
