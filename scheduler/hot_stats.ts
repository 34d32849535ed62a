/**
 * Hot-region statistics (PD's hot cache, much simplified): each region's read and write rate
 * over its leader's last full report, in bytes per second. `GET /pd/api/v1/hotspot/regions/*`
 * and the dashboard read it; no scheduler acts on it yet.
 *
 * @module
 */
import type { RegionFlow } from "../proto/pdpb.ts";

/** A region's rates as of `at` (ms). */
export interface RegionRates {
  readonly writeBytesPerSec: number;
  readonly readBytesPerSec: number;
  readonly at: number;
}

/** Rates older than this are not reported (the region's leader stopped reporting). */
export const HOT_STATS_MAX_AGE_MS = 60_000;

/** The latest read and write rates of every region that reported traffic. */
export class HotStats {
  readonly #rates = new Map<number, RegionRates>();

  /** Records a region's flow from a heartbeat received at `now`. */
  update(regionId: number, flow: RegionFlow, now: number): void {
    const seconds = flow.intervalMs / 1000;
    this.#rates.set(regionId, {
      writeBytesPerSec: flow.bytesWritten / seconds,
      readBytesPerSec: flow.bytesRead / seconds,
      at: now,
    });
  }

  /** Current rates of a region (undefined if none are recent). */
  get(regionId: number, now: number): RegionRates | undefined {
    const r = this.#rates.get(regionId);
    if (!r) return undefined;
    if (now - r.at > HOT_STATS_MAX_AGE_MS) {
      this.#rates.delete(regionId);
      return undefined;
    }
    return r;
  }

  /** Forgets a region (it was merged away or replaced). */
  remove(regionId: number): void {
    this.#rates.delete(regionId);
  }
}
