/**
 * Hot-region statistics (PD's hot cache, much simplified): each region's read and write rates
 * from its leader's reports, in bytes and keys per second, and how many reports in a row found
 * it hot (its degree). Rates are averages over the reports of the last
 * {@link HOT_RATE_WINDOW_MS} (total counts over total time; at most {@link HOT_RATE_REPORTS}
 * reports): one report covers as little as a heartbeat round, too short a time to decide moves
 * on. A split or merge (a new `version`) starts the region's average over. A region that stops reporting stops counting after a few
 * of its intervals (its leader reports flow every round while there is traffic, and once more
 * after it stops). `GET /pd/api/v1/hotspot/*`, the dashboard, the hot-region
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
  /** The last report's interval (ms). */
  readonly intervalMs: number;
  /** How long the averaged reports cover (ms). */
  readonly spanMs: number;
}

/** One report, kept for the average. */
type Report = RegionFlow;

/** Rates older than this are not reported (the region's leader stopped reporting). */
export const HOT_STATS_MAX_AGE_MS = 60_000;
/** Rates older than this many of their report's intervals (plus 2 s) are stale too. */
const STALE_INTERVALS = 4;
/** Rates average the reports of this long. */
export const HOT_RATE_WINDOW_MS = 5_000;
/** ... and at most this many of them. */
export const HOT_RATE_REPORTS = 16;

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
  /** The reports each region's average is over, oldest first. */
  readonly #reports = new Map<number, Report[]>();

  /** Records a region's flow from a heartbeat received at `now`, at region `version`. */
  update(regionId: number, flow: RegionFlow, now: number, version = 0): void {
    const old = this.get(regionId, now);
    const same = old !== undefined && old.version === version;
    const reports = same ? this.#reports.get(regionId) ?? [] : [];
    reports.push(flow);
    let span = reports.reduce((n, r) => n + r.intervalMs, 0);
    while (
      reports.length > HOT_RATE_REPORTS ||
      (reports.length > 1 && span - reports[0]!.intervalMs >= HOT_RATE_WINDOW_MS)
    ) {
      span -= reports.shift()!.intervalMs;
    }
    this.#reports.set(regionId, reports);
    const seconds = span / 1000;
    const sum = (f: (r: Report) => number) => reports.reduce((n, r) => n + f(r), 0) / seconds;
    const rates: RegionRates = {
      writeBytesPerSec: sum((r) => r.bytesWritten),
      readBytesPerSec: sum((r) => r.bytesRead),
      writeKeysPerSec: sum((r) => r.keysWritten ?? 0),
      readKeysPerSec: sum((r) => r.keysRead ?? 0),
      at: now,
      version,
      intervalMs: flow.intervalMs,
      spanMs: span,
      degree: 0,
    };
    const hot = isHot(rates, "write") || isHot(rates, "read");
    const degree = !hot ? 0 : same ? old.degree + 1 : 1;
    this.#rates.set(regionId, { ...rates, degree });
  }

  /** Current rates of a region (undefined if none are recent). */
  get(regionId: number, now: number): RegionRates | undefined {
    const r = this.#rates.get(regionId);
    if (!r) return undefined;
    const age = now - r.at;
    if (age > HOT_STATS_MAX_AGE_MS || age > STALE_INTERVALS * r.intervalMs + 2_000) {
      this.remove(regionId);
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
    this.#reports.delete(regionId);
  }
}
