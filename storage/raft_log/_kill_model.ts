/**
 * The batches `_kill_writer.ts` writes and what a prefix of them leaves, for `kill_test.ts`.
 *
 * @module
 */
import type { HardState } from "../records.ts";
import type { LogBatch } from "./engine.ts";

/** Small files, so that a run rotates and collects garbage many times. */
export const KILL_POLICY = {
  segmentBytes: 16 * 1024,
  purgeThresholdBytes: 64 * 1024,
  squeezeMinBytes: 16 * 1024,
  copyBatchBytes: 8 * 1024,
};

const REGIONS = 3;

/** Entry `index` of `regionId` as batch `n` writes it: 100 to 400 bytes naming all three. */
export function entryBytes(regionId: number, index: number, n: number): Uint8Array {
  const out = new Uint8Array(100 + (index * 37 + n) % 300);
  const view = new DataView(out.buffer);
  view.setUint32(0, regionId);
  view.setUint32(4, index);
  view.setUint32(8, n);
  for (let i = 12; i < out.length; i++) out[i] = (regionId * 131 + index * 7 + n + i) & 0xff;
  return out;
}

/** A region after a prefix of the batches. */
export interface KillRegion {
  /** Its entries are `first ..= last`... */
  first: number;
  last: number;
  /** ...written by these batches (`writer[i - first]` wrote entry `i`). */
  writer: number[];
  hs: HardState;
}

/**
 * What batch `n` does, for its region `n % 3 + 1` (the `k`-th batch of that region): appends
 * one to three entries, every seventh time starting over its last entry (as a new leader's
 * append would replace an uncommitted one); sets a hard state; every 25th time compacts all
 * but its last 20 entries; every 40th time drops the whole region first and starts its log
 * again 10 entries above (as installing a snapshot does).
 */
function step(prev: KillRegion | undefined, n: number) {
  const k = Math.floor(n / REGIONS);
  const hs = { term: 1 + Math.floor(k / 10), vote: n % REGIONS + 1, commit: 0 };
  if (prev && k % 40 === 39) {
    const at = prev.last + 10;
    return {
      clean: true,
      from: at,
      to: at,
      compacted: false,
      region: { first: at, last: at, writer: [n], hs: { ...hs, commit: at - 1 } },
    };
  }
  const r = prev ?? { first: 1, last: 0, writer: [], hs: { term: 1, vote: 0, commit: 0 } };
  const from = k % 7 === 6 && r.last >= r.first ? r.last : r.last + 1;
  const to = r.last + 1 + (k % 3);
  let first = r.first;
  if (k % 25 === 24 && to - 20 > first) first = to - 20;
  const writer = [...r.writer.slice(0, from - r.first), ...Array(to - from + 1).fill(n)]
    .slice(first - r.first);
  return {
    clean: false,
    from,
    to,
    compacted: first > r.first,
    region: { first, last: to, writer, hs: { ...hs, commit: Math.max(0, to - 2) } },
  };
}

/** Batch `n` (see {@link step}). */
export function killBatch(batch: LogBatch, n: number): LogBatch {
  const regionId = n % REGIONS + 1;
  const s = step(killState(n).get(regionId), n);
  if (s.clean) batch.clean(regionId);
  const entries: Uint8Array[] = [];
  for (let i = s.from; i <= s.to; i++) entries.push(entryBytes(regionId, i, n));
  batch.append(regionId, s.from, entries).putHardState(regionId, s.region.hs);
  if (s.compacted) batch.compact(regionId, s.region.first - 1);
  return batch;
}

const memo: Map<number, KillRegion>[] = [new Map()];

/** Every region's state after batches `0 .. n - 1`. */
export function killState(n: number): Map<number, KillRegion> {
  for (let m = memo.length; m <= n; m++) {
    const next = new Map(memo[m - 1]!);
    const regionId = (m - 1) % REGIONS + 1;
    next.set(regionId, step(next.get(regionId), m - 1).region);
    memo[m] = next;
  }
  return memo[n]!;
}
