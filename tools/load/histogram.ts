/**
 * A latency histogram with bounded memory and bounded relative error, in the manner of
 * HdrHistogram: values are whole microseconds; 0..127 µs are counted exactly, and above that
 * every power-of-two range is split into 64 equal buckets, so a bucket is never wider than 1/64
 * (≈1.6%) of the values it holds. 2,048 buckets cover up to 2^37 µs (≈38 hours); larger values
 * are clamped into the last bucket (the exact maximum is still kept).
 *
 * Percentiles use the nearest-rank definition: the p-th percentile is the smallest recorded
 * value v such that at least p% of the samples are ≤ v. A bucketed value is reported as the
 * highest value its bucket can hold (never above the true maximum), so reported percentiles
 * err high, never low.
 *
 * @module
 */

/** Values below this are counted in buckets of width 1. */
const EXACT_LIMIT = 128;
/** Buckets per power-of-two range above {@link EXACT_LIMIT}. */
const SUB_BUCKETS = 64;
/** Powers of two covered above the exact range: 2^7 .. 2^37 µs. */
const RANGES = 30;
const BUCKETS = EXACT_LIMIT + RANGES * SUB_BUCKETS;
/** The largest value that still gets its own bucket. */
const MAX_TRACKABLE = 2 ** (7 + RANGES) - 1;

/** Index of the bucket holding `us` (a whole, non-negative number of microseconds). */
export function bucketIndex(us: number): number {
  if (us < EXACT_LIMIT) return us;
  const v = Math.min(us, MAX_TRACKABLE);
  const exponent = Math.floor(Math.log2(v)); // 7 .. 36
  const shift = exponent - 6; // so that v / 2^shift is in [64, 128)
  const sub = Math.floor(v / 2 ** shift) - SUB_BUCKETS; // 0 .. 63
  return EXACT_LIMIT + (exponent - 7) * SUB_BUCKETS + sub;
}

/** The highest value (µs) that falls in bucket `index`. */
export function bucketHighest(index: number): number {
  if (index < EXACT_LIMIT) return index;
  const range = Math.floor((index - EXACT_LIMIT) / SUB_BUCKETS);
  const sub = (index - EXACT_LIMIT) % SUB_BUCKETS;
  const shift = range + 1;
  return (SUB_BUCKETS + sub + 1) * 2 ** shift - 1;
}

/** Percentiles, in milliseconds, as reported by {@link LatencyHistogram.summary}. */
export interface LatencySummary {
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Counts latencies; see the module comment for precision and percentile rules. */
export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;
  #sumUs = 0;
  /** Invariant: the largest value recorded (µs), or 0 when empty. */
  #maxUs = 0;

  /** Number of samples recorded. */
  get count(): number {
    return this.#count;
  }

  /** Records one latency given in milliseconds (rounded to the nearest microsecond). */
  recordMs(ms: number): void {
    this.recordUs(Math.round(ms * 1000));
  }

  /** Records one latency given in whole microseconds. Negative or non-finite input throws. */
  recordUs(us: number): void {
    if (!Number.isFinite(us) || us < 0) {
      throw new RangeError(`latency must be a finite, non-negative number, got ${us}`);
    }
    const v = Math.round(us);
    this.#counts[bucketIndex(v)]! += 1;
    this.#count += 1;
    this.#sumUs += v;
    if (v > this.#maxUs) this.#maxUs = v;
  }

  /** Adds every sample of `other` to this histogram. */
  merge(other: LatencyHistogram): void {
    for (let i = 0; i < BUCKETS; i++) this.#counts[i]! += other.#counts[i]!;
    this.#count += other.#count;
    this.#sumUs += other.#sumUs;
    if (other.#maxUs > this.#maxUs) this.#maxUs = other.#maxUs;
  }

  /**
   * The nearest-rank `p`-th percentile in microseconds (0 < p ≤ 100); 0 when empty.
   * Exact below 128 µs, otherwise at most 1/64 above the true value.
   */
  percentileUs(p: number): number {
    if (!(p > 0 && p <= 100)) throw new RangeError(`percentile must be in (0, 100], got ${p}`);
    if (this.#count === 0) return 0;
    // Rank of the sample we want, 1-based. The epsilon keeps e.g. 0.95 * 100 from becoming
    // 95.00000000000001 and rounding up to 96 through floating-point error.
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count - 1e-9));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return Math.min(bucketHighest(i), this.#maxUs);
    }
    return this.#maxUs; // unreachable: the counts sum to #count
  }

  /** Count, mean, p50/p95/p99 and max, in milliseconds. */
  summary(): LatencySummary {
    const ms = (us: number) => us / 1000;
    return {
      count: this.#count,
      meanMs: this.#count === 0 ? 0 : ms(this.#sumUs / this.#count),
      p50Ms: ms(this.percentileUs(50)),
      p95Ms: ms(this.percentileUs(95)),
      p99Ms: ms(this.percentileUs(99)),
      maxMs: ms(this.#maxUs),
    };
  }
}
