/**
 * Per-region read and write bytes since the last report, for the scheduler's hot-region view
 * (PD's `bytes_written`/`bytes_read` with the report's interval). Writes are counted where
 * entries are applied, reads where a leader serves them; each full heartbeat round takes the
 * counts of the regions it reports and forgets the rest (a follower's counts are not its to
 * report).
 *
 * @module
 */
import type { RegionFlow } from "../proto/pdpb.ts";

interface Counts {
  bytesWritten: number;
  bytesRead: number;
}

/** Read and write byte counts by region since the last {@link FlowCounter.take}. */
export class FlowCounter {
  #counts = new Map<number, Counts>();
  #since: number;

  constructor(readonly now: () => number = Date.now) {
    this.#since = now();
  }

  #get(regionId: number): Counts {
    let c = this.#counts.get(regionId);
    if (!c) this.#counts.set(regionId, c = { bytesWritten: 0, bytesRead: 0 });
    return c;
  }

  /** Bytes a region applied (keys and values of its puts). */
  write(regionId: number, bytes: number): void {
    if (bytes > 0) this.#get(regionId).bytesWritten += bytes;
  }

  /** Bytes a leader returned to readers (keys and values). */
  read(regionId: number, bytes: number): void {
    if (bytes > 0) this.#get(regionId).bytesRead += bytes;
  }

  /** The regions with counts in the current interval. */
  regions(): IterableIterator<number> {
    return this.#counts.keys();
  }

  /**
   * Ends the current interval: the flow of each region in `regionIds` (zeros if none) over it,
   * and every other region's counts are dropped.
   */
  take(regionIds: Iterable<number>): Map<number, RegionFlow> {
    const now = this.now();
    const intervalMs = Math.max(1, now - this.#since);
    const out = new Map<number, RegionFlow>();
    for (const id of regionIds) {
      const c = this.#counts.get(id);
      out.set(id, { bytesWritten: c?.bytesWritten ?? 0, bytesRead: c?.bytesRead ?? 0, intervalMs });
    }
    this.#counts = new Map();
    this.#since = now;
    return out;
  }
}
