/**
 * Hot-region statistics (PD's hot cache, much simplified): each region's read and write rates
 * over its leader's last full report, in bytes and keys per second, and how many reports in a
 * row found it hot (its degree). `GET /pd/api/v1/hotspot/*`, the dashboard, the hot-region
 * scheduler and the merge checker read it.
 *
 * @module
 */
import type { RegionFlow } from "../proto/pdpb.ts";

/** A region's rates as of `at` (ms). */
export interface RegionRates {
  readonly writeBytesPerSec: number;
  readonly readBytesPerSec: number;
  readonly writeKeysPerSec: number;
  readonly readKeysPerSec: number;
  readonly at: number;
  /** Reports in a row, at this region version, that found it hot (0: the last was not). */
  readonly degree: number;
  /** The region's `version` when reported: a split or merge restarts the degree. */
  readonly version: number;
}

/** Rates older than this are not reported (the region's leader stopped reporting). */
export const HOT_STATS_MAX_AGE_MS = 60_000;

/**
 * The least rates that make a region hot, by kind of traffic (PD's minimum hot thresholds):
 * below both of its kind's, a region's traffic is noise to the hot-region scheduler.
 */
export const HOT_MIN_RATES = {
  write: { bytes: 1024, keys: 32 },
  read: { bytes: 8 * 1024, keys: 128 },
} as const;

/** Whether `r` is hot for writes or for reads. */
export function isHot(r: RegionRates, kind: "write" | "read"): boolean {
  const min = HOT_MIN_RATES[kind];
  return kind === "write"
    ? r.writeBytesPerSec >= min.bytes || r.writeKeysPerSec >= min.keys
    : r.readBytesPerSec >= min.bytes || r.readKeysPerSec >= min.keys;
}

/** The latest read and write rates of every region that reported traffic. */
export class HotStats {
  readonly #rates = new Map<number, RegionRates>();

  /** Records a region's flow from a heartbeat received at `now`, at region `version`. */
  update(regionId: number, flow: RegionFlow, now: number, version = 0): void {
    const seconds = flow.intervalMs / 1000;
    const rates = {
      writeBytesPerSec: flow.bytesWritten / seconds,
      readBytesPerSec: flow.bytesRead / seconds,
      writeKeysPerSec: (flow.keysWritten ?? 0) / seconds,
      readKeysPerSec: (flow.keysRead ?? 0) / seconds,
      at: now,
      version,
    };
    const old = this.get(regionId, now);
    const hot = isHot({ ...rates, degree: 0 }, "write") || isHot({ ...rates, degree: 0 }, "read");
    const degree = !hot ? 0 : old && old.version === version ? old.degree + 1 : 1;
    this.#rates.set(regionId, { ...rates, degree });
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

  /** Regions with recent rates. */
  *entries(now: number): IterableIterator<[number, RegionRates]> {
    for (const id of [...this.#rates.keys()]) {
      const r = this.get(id, now);
      if (r) yield [id, r];
    }
  }

  /** Forgets a region (it was merged away or replaced). */
  remove(regionId: number): void {
    this.#rates.delete(regionId);
  }
}
