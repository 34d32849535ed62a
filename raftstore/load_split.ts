/**
 * Load-based split (after TiKV's `split.qps-threshold`/`split.byte-threshold`): a region that
 * stays busy splits at the key that best halves its load, however small it is. Without it a
 * small region taking most of the traffic never splits, and its leader's store stays the
 * bottleneck whatever the scheduler does.
 *
 * Each leader records every request it serves: applied writes (whatever path they were proposed
 * by) and reads, one key or a scanned range each, with their bytes. Time is cut into intervals
 * (1 s, or a quarter of the window if that is shorter). A region is hot in an interval if its
 * requests per second reach `split-qps-threshold` or its bytes per second reach
 * `split-byte-threshold`; once it has been hot for every interval of `split-detect-window` in a
 * row, it splits at the best candidate of the last interval.
 *
 * Candidates: while a region is hot, a reservoir keeps up to {@link SAMPLE_KEYS} of the keys its
 * requests start at, chosen uniformly among that interval's requests; each candidate counts the
 * later requests that fall wholly left of it, wholly right of it (at or past it) and across it.
 * The best candidate is the one whose left and right loads are closest (by requests if the QPS
 * threshold was reached, else by bytes), if their imbalance is at most {@link MAX_IMBALANCE}
 * and at most half of the requests would cross it; it must also be a legal split key, strictly
 * inside the region. A load on one key alone therefore never splits (no key halves it).
 *
 * Memory is bounded: at most {@link MAX_TRACKED_REGIONS} regions are counted and at most
 * {@link MAX_SAMPLED_REGIONS} of them sample keys at once, each at most {@link SAMPLE_KEYS}
 * copies of keys (2 KiB each at most). Cold regions keep no state past one interval.
 *
 * Split and merge must not flap: a region's streak starts over whenever its `version` changes
 * (it split or merged), so a region splits at most once per window, and the scheduler's merge
 * checker leaves hot regions alone (and any region split within `split_merge_interval`). A
 * merging region (PrepareMerge applied) never splits, nor does one with a split under way.
 *
 * @module
 */
import { compareBytes, keyInRegion, type Region } from "../proto/metapb.ts";
import type { Store, StoreConfig } from "./store.ts";
import type { SplitWorker } from "./split.ts";

/** Candidate split keys kept per sampled region (TiKV samples 20). */
export const SAMPLE_KEYS = 20;
/** Most regions counted at once; requests to further regions are not counted. */
export const MAX_TRACKED_REGIONS = 10_000;
/** Most regions sampling keys at once (the others wait until one cools). */
export const MAX_SAMPLED_REGIONS = 64;
/** Largest accepted |left - right| / (left + right) for a split key (TiKV's balance score). */
export const MAX_IMBALANCE = 0.25;
/** Largest share of requests that may cross a split key (TiKV's contained score). */
export const MAX_CROSSING = 0.5;
/**
 * A candidate is scored only if it counted at least this many requests, and at least a quarter
 * of its interval's: one sampled late has seen too few for its split to be judged.
 */
const MIN_SCORED_REQUESTS = 8;

/** The load-split settings (the store keys of docs/configuration.md). */
export interface LoadSplitConfig {
  /** Off: nothing is recorded and nothing splits by load. */
  readonly enabled: boolean;
  /** Requests per second (reads and writes) that make a region hot; 0: not by requests. */
  readonly qpsThreshold: number;
  /** Bytes per second (read and written) that make a region hot; 0: not by bytes. */
  readonly byteThreshold: number;
  /** How long (ms) a region must stay hot before it splits. */
  readonly detectWindowMs: number;
}

/**
 * Defaults for the development machine this project runs on (2 shared cores: a store serves a
 * few thousand requests per second at best, against TiKV's 3000 QPS per region threshold).
 */
export const DEFAULT_LOAD_SPLIT: LoadSplitConfig = {
  enabled: true,
  qpsThreshold: 1000,
  byteThreshold: 8 * 1024 * 1024,
  detectWindowMs: 10_000,
};

/** The load-split settings of a store config, defaults filled in. */
export function loadSplitConfig(c: StoreConfig): LoadSplitConfig {
  const d = DEFAULT_LOAD_SPLIT;
  return {
    enabled: c.loadSplit ?? d.enabled,
    qpsThreshold: c.splitQpsThreshold ?? d.qpsThreshold,
    byteThreshold: c.splitByteThreshold ?? d.byteThreshold,
    detectWindowMs: c.splitDetectWindow ?? d.detectWindowMs,
  };
}

/** The interval a window is cut into: 1 s, or a quarter of a shorter window. */
export function detectIntervalMs(windowMs: number): number {
  return Math.max(1, Math.min(1000, Math.floor(windowMs / 4)));
}

interface Candidate {
  readonly key: Uint8Array;
  leftN: number;
  rightN: number;
  crossN: number;
  leftB: number;
  rightB: number;
  crossB: number;
}

interface RegionLoad {
  /** Region version the streak was counted at (-1: not known yet). */
  version: number;
  requests: number;
  bytes: number;
  /** Consecutive hot intervals before this one. */
  streak: number;
  /** Key samples (only while the previous interval was hot). */
  samples: Candidate[] | undefined;
  /** Requests offered to the reservoir this interval. */
  seen: number;
}

/** Where a region should split, and why. */
export interface LoadSplitDecision {
  readonly regionId: number;
  readonly key: Uint8Array;
  readonly qps: number;
  readonly bytesPerSec: number;
  /** The split's imbalance, |left - right| / (left + right) among the sampled requests. */
  readonly imbalance: number;
}

/**
 * The request sampler: pure apart from the clock and random source it is given. {@link record}
 * is called for every request a leader serves; {@link roll} ends an interval.
 */
export class LoadSampler {
  readonly #regions = new Map<number, RegionLoad>();
  #sampled = 0;
  #since: number;
  readonly intervalMs: number;
  readonly windowIntervals: number;

  constructor(
    readonly config: LoadSplitConfig,
    readonly now: () => number = Date.now,
    readonly random: () => number = Math.random,
  ) {
    this.intervalMs = detectIntervalMs(config.detectWindowMs);
    this.windowIntervals = Math.max(1, Math.ceil(config.detectWindowMs / this.intervalMs));
    this.#since = now();
  }

  /** Regions counted now (for tests and metrics). */
  get trackedRegions(): number {
    return this.#regions.size;
  }

  /** Candidate keys held now, over every region (for tests and metrics). */
  get sampledKeys(): number {
    let n = 0;
    for (const r of this.#regions.values()) n += r.samples?.length ?? 0;
    return n;
  }

  /**
   * One request: a key (`last` undefined) or a range read from `first` to `last` inclusive,
   * with the bytes it moved.
   */
  record(regionId: number, first: Uint8Array, last: Uint8Array | undefined, bytes: number): void {
    if (!this.config.enabled) return;
    let r = this.#regions.get(regionId);
    if (!r) {
      if (this.#regions.size >= MAX_TRACKED_REGIONS) return;
      r = { version: -1, requests: 0, bytes: 0, streak: 0, samples: undefined, seen: 0 };
      this.#regions.set(regionId, r);
    }
    r.requests++;
    r.bytes += bytes;
    const samples = r.samples;
    if (!samples) return;
    const end = last ?? first;
    for (const c of samples) {
      if (compareBytes(end, c.key) < 0) {
        c.leftN++;
        c.leftB += bytes;
      } else if (compareBytes(first, c.key) >= 0) {
        c.rightN++;
        c.rightB += bytes;
      } else {
        c.crossN++;
        c.crossB += bytes;
      }
    }
    // Reservoir sampling: every request of the interval is equally likely to be a candidate.
    r.seen++;
    const fresh = (): Candidate => ({
      key: first.slice(),
      leftN: 0,
      rightN: 1,
      crossN: 0,
      leftB: 0,
      rightB: bytes,
      crossB: 0,
    });
    if (samples.length < SAMPLE_KEYS) samples.push(fresh());
    else {
      const j = Math.floor(this.random() * r.seen);
      if (j < SAMPLE_KEYS) samples[j] = fresh();
    }
  }

  /** Forgets a region (its leader moved away, it was destroyed). */
  forget(regionId: number): void {
    const r = this.#regions.get(regionId);
    if (r?.samples) this.#sampled--;
    this.#regions.delete(regionId);
  }

  #stopSampling(r: RegionLoad): void {
    if (r.samples) this.#sampled--;
    r.samples = undefined;
    r.seen = 0;
  }

  /**
   * Ends the interval if it is over: returns the regions that have now been hot for the whole
   * window, with the key to split at. `regionOf` gives the region as the local leader sees it,
   * or undefined if this store does not lead it any more.
   */
  roll(regionOf: (regionId: number) => Region | undefined): LoadSplitDecision[] {
    const now = this.now();
    const elapsed = now - this.#since;
    // A timer may fire a little early: that still ends the interval (rates use the real time).
    if (elapsed < this.intervalMs * 0.9) return [];
    this.#since = now;
    const seconds = elapsed / 1000;
    const out: LoadSplitDecision[] = [];
    for (const [id, r] of this.#regions) {
      const region = regionOf(id);
      if (!region) {
        this.forget(id);
        continue;
      }
      const qps = r.requests / seconds;
      const bytesPerSec = r.bytes / seconds;
      const { qpsThreshold, byteThreshold } = this.config;
      const byQps = qpsThreshold > 0 && qps >= qpsThreshold;
      const hot = byQps || (byteThreshold > 0 && bytesPerSec >= byteThreshold);
      const samples = r.samples;
      const requests = r.requests;
      r.requests = 0;
      r.bytes = 0;
      if (!hot || region.epoch.version !== r.version) {
        // Cold, or split or merged since the streak began: start over.
        this.#stopSampling(r);
        r.version = region.epoch.version;
        r.streak = hot ? 1 : 0;
        if (!hot) this.#regions.delete(id);
        else this.#startSampling(r);
        continue;
      }
      r.streak++;
      if (r.streak >= this.windowIntervals && samples) {
        const best = bestSplitKey(samples, byQps ? "requests" : "bytes", region, requests / 4);
        if (best) {
          out.push({ regionId: id, key: best.key, qps, bytesPerSec, imbalance: best.imbalance });
          this.#stopSampling(r);
          r.streak = 0;
          continue;
        }
      }
      this.#stopSampling(r);
      this.#startSampling(r);
    }
    return out;
  }

  #startSampling(r: RegionLoad): void {
    if (this.#sampled >= MAX_SAMPLED_REGIONS) return;
    r.samples = [];
    r.seen = 0;
    this.#sampled++;
  }
}

/**
 * The candidate that best halves the load by `by`, among those that are legal split keys of
 * `region` and that counted at least `minCounted` requests; undefined if none is good enough.
 */
export function bestSplitKey(
  samples: readonly Candidate[],
  by: "requests" | "bytes",
  region: Region,
  minCounted = 0,
): { key: Uint8Array; imbalance: number } | undefined {
  let best: { key: Uint8Array; imbalance: number; cross: number } | undefined;
  for (const c of samples) {
    const total = c.leftN + c.rightN + c.crossN;
    if (total < MIN_SCORED_REQUESTS || total < minCounted) continue;
    if (!keyInRegion(c.key, region) || compareBytes(c.key, region.startKey) <= 0) continue;
    const [l, rt, x] = by === "requests"
      ? [c.leftN, c.rightN, c.crossN]
      : [c.leftB, c.rightB, c.crossB];
    if (l === 0 || rt === 0) continue;
    const imbalance = Math.abs(l - rt) / (l + rt);
    const cross = x / (l + rt + x);
    if (imbalance > MAX_IMBALANCE || cross > MAX_CROSSING) continue;
    if (
      !best || imbalance < best.imbalance ||
      (imbalance === best.imbalance && cross < best.cross)
    ) {
      best = { key: c.key, imbalance, cross };
    }
  }
  return best && { key: best.key, imbalance: best.imbalance };
}

/** Runs the sampler's intervals for one store and splits the regions it names. */
export class LoadSplitWorker {
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Load splits started, and those that failed (for metrics and tests). */
  splits = 0;
  failed = 0;
  /** The most recent decisions, newest last (for logs and tests). */
  readonly recent: LoadSplitDecision[] = [];

  constructor(
    readonly store: Store,
    readonly split: SplitWorker,
    readonly sampler: LoadSampler,
  ) {}

  start(): void {
    if (!this.sampler.config.enabled) return;
    this.#timer = setInterval(() => this.check(), this.sampler.intervalMs);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Ends the sampler's interval if due and starts the splits it decides on. */
  check(): void {
    if (this.store.stopped) return;
    const peerOf = (id: number) => {
      const p = this.store.peers.get(id);
      return p && !p.destroyed && p.isLeader() ? p : undefined;
    };
    for (const d of this.sampler.roll((id) => peerOf(id)?.region)) {
      const peer = peerOf(d.regionId);
      if (!peer || peer.mergeState || peer.mergedInto || this.split.isSplitting(d.regionId)) {
        continue;
      }
      this.recent.push(d);
      if (this.recent.length > 16) this.recent.shift();
      this.splits++;
      this.store.log.info(
        `region ${d.regionId}: load split at ${d.key.toHex()} (${Math.round(d.qps)} requests/s, ` +
          `${Math.round(d.bytesPerSec)} bytes/s, imbalance ${d.imbalance.toFixed(2)})`,
      );
      this.split.splitRegion(peer, [d.key]).catch((e) => {
        this.failed++;
        this.store.log.info(`region ${d.regionId}: load split not done: ${(e as Error).message}`);
      });
    }
  }
}
