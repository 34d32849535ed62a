/**
 * The regions the scale benchmark creates, and the splits that create them: region `i` of `n`
 * starts at boundary key `i` (`r` and `i` zero-padded, so keys sort like their indexes); the
 * first region starts at the empty key and the last ends at the end of the key space.
 *
 * Each split operator names the boundaries still inside a region, the middle one first: a store
 * that splits at the first key only halves the region (so `n` regions take about log2(n) rounds of
 * splits, every region of a round splitting in parallel); one that splits at every key of the
 * step makes them all at once.
 *
 * @module
 */

/** Most split keys one admin operator takes. */
export const MAX_KEYS_PER_SPLIT = 100;

/** Boundary key `i` (1 ≤ i < n) for `n` regions. */
export function boundaryKey(i: number, n: number): string {
  return `r${String(i).padStart(String(n).length, "0")}`;
}

/**
 * The boundary index a region key stands for: 0 for the empty start key, `n` for the empty end
 * key, `i` for boundary key `i`; for any other key (regions made by something else), the
 * boundary just past it.
 */
export function boundaryIndex(key: string, n: number, isEnd: boolean): number {
  if (key === "") return isEnd ? n : 0;
  const m = /^r(\d+)$/.exec(key);
  if (m && m[1]!.length === String(n).length) return Math.min(Number(m[1]), n);
  // A foreign key: the first boundary after it.
  let lo = 1;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (boundaryKey(mid, n) > key) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Split keys for a region `[start, end)` on the way to `n` regions, the middle boundary first
 * then outwards, at most {@link MAX_KEYS_PER_SPLIT}; empty when nothing is left to split there.
 */
export function splitKeys(start: string, end: string, n: number): string[] {
  const lo = boundaryIndex(start, n, false);
  const hi = boundaryIndex(end, n, true);
  const first = start === "" || boundaryKey(lo, n) === start ? lo + 1 : lo;
  if (first >= hi) return [];
  const mid = (first + hi - 1) >> 1;
  const out = [mid];
  for (let d = 1; out.length < MAX_KEYS_PER_SPLIT; d++) {
    const below = mid - d;
    const above = mid + d;
    if (below < first && above >= hi) break;
    if (above < hi) out.push(above);
    if (below >= first && out.length < MAX_KEYS_PER_SPLIT) out.push(below);
  }
  return out.map((i) => boundaryKey(i, n));
}

/** The `q`-quantile (0..1) of `xs` (nearest rank); NaN for none. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
