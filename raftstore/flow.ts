/**
 * Per-region read and write bytes and keys since the last report, for the scheduler's hot-region view
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
  keysWritten: number;
  keysRead: number;
}

/** Read and write byte and key counts by region since the last {@link FlowCounter.take}. */
export class FlowCounter {
  #counts = new Map<number, Counts>();
  /** Regions with counts in the previous interval: they report once more, so a stop shows. */
  #previous = new Set<number>();
  #since: number;

  constructor(readonly now: () => number = Date.now) {
    this.#since = now();
  }

  #get(regionId: number): Counts {
    let c = this.#counts.get(regionId);
    if (!c) {
      c = { bytesWritten: 0, bytesRead: 0, keysWritten: 0, keysRead: 0 };
      this.#counts.set(regionId, c);
    }
    return c;
  }

  /** Bytes a region applied (keys and values of its puts) and keys it wrote or deleted. */
  write(regionId: number, bytes: number, keys = 0): void {
    if (bytes <= 0 && keys <= 0) return;
    const c = this.#get(regionId);
    c.bytesWritten += bytes;
    c.keysWritten += keys;
  }

  /** Bytes a leader returned to readers (keys and values) and the keys it read. */
  read(regionId: number, bytes: number, keys = 0): void {
    if (bytes <= 0 && keys <= 0) return;
    const c = this.#get(regionId);
    c.bytesRead += bytes;
    c.keysRead += keys;
  }

  /**
   * The regions with counts in the current interval or the previous one (a region whose
   * traffic stopped reports zeros once, or the scheduler would keep its last rates).
   */
  regions(): IterableIterator<number> {
    return new Set([...this.#counts.keys(), ...this.#previous]).values();
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
      out.set(id, {
        bytesWritten: c?.bytesWritten ?? 0,
        bytesRead: c?.bytesRead ?? 0,
        keysWritten: c?.keysWritten ?? 0,
        keysRead: c?.keysRead ?? 0,
        intervalMs,
      });
    }
    this.#previous = new Set(this.#counts.keys());
    this.#counts = new Map();
    this.#since = now;
    return out;
  }
}
