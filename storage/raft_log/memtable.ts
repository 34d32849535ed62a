/**
 * The Raft log engine's in-memory index: for every region, where each live entry's bytes are
 * (file, offset, length) and its latest hard state; for every file, how many of its bytes are
 * still live, which regions wrote there and which compactions and removals it records.
 *
 * The rules act index by index, the same when a batch is written and when the files are
 * replayed at start-up:
 * - an append at `i` drops the entries at or after `i`, then sets its own;
 * - a truncation at `i` drops the entries at or after `i`;
 * - a compaction to `i` drops the entries at or below `i`;
 * - a clean drops the region: its entries and its hard state.
 * No rule depends on what lies between two indexes, which is what lets the garbage collector
 * leave dead records out of a replay. So a region's entries may have holes: in the middle of a
 * replay (a dead record that bridged two live ones is gone; a later record fills the gap
 * again), or if a store appends past its last index without cleaning first (a store never
 * does; reading such a hole is an error).
 *
 * Invariant the garbage collector builds on: a region's live entries, in index order, sit in
 * files in replay order (rewrite files, then append files, each by sequence number), because an
 * entry only becomes live by being written after every live entry below it.
 *
 * @module
 */
import type { HardState } from "../records.ts";
import { ENTRY_OVERHEAD, HARD_STATE_ITEM_BYTES } from "./format.ts";

/** Where an entry's bytes are. */
export interface Loc {
  readonly file: number;
  readonly offset: number;
  readonly length: number;
}

/**
 * What a file's records did to a region's older records: removed it, compacted it (the highest
 * index), truncated it (the lowest index an append or truncation started at). Once the file is
 * deleted, the garbage collector writes this much to the rewrite queue, so that records of the
 * region already there stay dead.
 */
export interface Tombstone {
  clean: boolean;
  compact: number;
  truncate: number;
}

/** Per-file accounting. */
export interface FileStats {
  /** Bytes of live records in the file. */
  live: number;
  /** Regions that wrote entries or a hard state there (some may be dead by now). */
  readonly regions: Set<number>;
  /** Compactions and removals the file records, by region. */
  readonly tombstones: Map<number, Tombstone>;
}

class RegionLog {
  first = 0;
  /** Entries `first ..`; `undefined` is a hole (see the module comment). Never ends in one. */
  locs: (Loc | undefined)[] = [];
  hs: HardState | undefined;
  hsFile = -1;

  last(): number {
    return this.first + this.locs.length - 1;
  }
}

function entryBytes(l: Loc): number {
  return l.length + ENTRY_OVERHEAD;
}

/** The index of every region and file. See the module comment. */
export class MemTable {
  readonly #regions = new Map<number, RegionLog>();
  readonly #files = new Map<number, FileStats>();

  /** Stats of file `file`, created on first use. */
  file(file: number): FileStats {
    let s = this.#files.get(file);
    if (!s) this.#files.set(file, s = { live: 0, regions: new Set(), tombstones: new Map() });
    return s;
  }

  /** Forgets a deleted file's stats. */
  dropFile(file: number): void {
    this.#files.delete(file);
  }

  /** Live bytes of `file` (0 if unknown). */
  liveBytes(file: number): number {
    return this.#files.get(file)?.live ?? 0;
  }

  #kill(file: number, bytes: number): void {
    const s = this.#files.get(file);
    if (s) s.live -= bytes;
  }

  #region(regionId: number): RegionLog {
    let r = this.#regions.get(regionId);
    if (!r) this.#regions.set(regionId, r = new RegionLog());
    return r;
  }

  #dropEntriesFrom(r: RegionLog, i: number): void {
    const keep = Math.max(0, i - r.first);
    if (keep >= r.locs.length) return;
    for (let k = keep; k < r.locs.length; k++) {
      const l = r.locs[k];
      if (l) this.#kill(l.file, entryBytes(l));
    }
    r.locs.length = keep;
    while (r.locs.length > 0 && r.locs.at(-1) === undefined) r.locs.length--;
  }

  #dropEntriesTo(r: RegionLog, i: number): void {
    let drop = Math.min(r.locs.length, Math.max(0, i - r.first + 1));
    while (drop < r.locs.length && r.locs[drop] === undefined) drop++;
    for (const l of r.locs.splice(0, drop)) if (l) this.#kill(l.file, entryBytes(l));
    r.first += drop;
  }

  #forgetIfEmpty(regionId: number, r: RegionLog): void {
    if (r.locs.length === 0 && r.hs === undefined) this.#regions.delete(regionId);
  }

  /** Entries `firstIndex ..` of a region, stored at `locs` (see the rules above). */
  append(regionId: number, firstIndex: number, locs: readonly Loc[], file: number): void {
    const r = this.#region(regionId);
    const t = this.#tombstone(regionId, file);
    t.truncate = Math.min(t.truncate, firstIndex);
    this.#dropEntriesFrom(r, firstIndex);
    if (locs.length > 0) {
      if (r.locs.length === 0) r.first = firstIndex;
      while (r.first + r.locs.length < firstIndex) r.locs.push(undefined);
      const stats = this.file(file);
      stats.regions.add(regionId);
      for (const l of locs) {
        r.locs.push(l);
        this.file(l.file).live += entryBytes(l);
      }
    }
    this.#forgetIfEmpty(regionId, r);
  }

  /** Drops a region's entries at or after `index`; recorded in `file`. */
  truncate(regionId: number, index: number, file: number): void {
    this.append(regionId, index, [], file);
  }

  /** A region's hard state, written in `file`. */
  putHardState(regionId: number, hs: HardState, file: number): void {
    const r = this.#region(regionId);
    if (r.hs !== undefined) this.#kill(r.hsFile, HARD_STATE_ITEM_BYTES);
    r.hs = hs;
    r.hsFile = file;
    const stats = this.file(file);
    stats.live += HARD_STATE_ITEM_BYTES;
    stats.regions.add(regionId);
  }

  /** Drops a region's entries at or below `index`; recorded in `file`. */
  compact(regionId: number, index: number, file: number): void {
    const t = this.#tombstone(regionId, file);
    t.compact = Math.max(t.compact, index);
    const r = this.#regions.get(regionId);
    if (!r) return;
    this.#dropEntriesTo(r, index);
    this.#forgetIfEmpty(regionId, r);
  }

  /** Drops a region altogether; recorded in `file`. */
  clean(regionId: number, file: number): void {
    const t = this.#tombstone(regionId, file);
    t.clean = true;
    const r = this.#regions.get(regionId);
    if (!r) return;
    this.#dropEntriesFrom(r, r.first);
    if (r.hs !== undefined) this.#kill(r.hsFile, HARD_STATE_ITEM_BYTES);
    this.#regions.delete(regionId);
  }

  #tombstone(regionId: number, file: number): Tombstone {
    const stats = this.file(file);
    let t = stats.tombstones.get(regionId);
    if (!t) {
      stats.tombstones.set(regionId, t = { clean: false, compact: 0, truncate: Infinity });
    }
    return t;
  }

  // ---- queries ----

  /** Ids of every region with entries or a hard state, ascending. */
  regionIds(): number[] {
    return [...this.#regions.keys()].sort((a, b) => a - b);
  }

  /** First and last index of a region's entries, if it has any. */
  bounds(regionId: number): { first: number; last: number } | undefined {
    const r = this.#regions.get(regionId);
    if (!r || r.locs.length === 0) return undefined;
    return { first: r.first, last: r.last() };
  }

  hardState(regionId: number): HardState | undefined {
    return this.#regions.get(regionId)?.hs;
  }

  /** The file holding a region's hard state, or -1. */
  hardStateFile(regionId: number): number {
    return this.#regions.get(regionId)?.hsFile ?? -1;
  }

  /**
   * Locations of a region's entries `[lo, hi)`, clipped to what it has (`undefined` where it
   * has a hole).
   */
  locs(regionId: number, lo: number, hi: number): { first: number; locs: (Loc | undefined)[] } {
    const r = this.#regions.get(regionId);
    if (!r || r.locs.length === 0) return { first: lo, locs: [] };
    const from = Math.max(lo, r.first);
    const to = Math.min(hi, r.last() + 1);
    return { first: from, locs: from < to ? r.locs.slice(from - r.first, to - r.first) : [] };
  }

  /** A region's live entries stored in `file`, as runs of consecutive indexes. */
  entriesIn(regionId: number, file: number): { first: number; locs: Loc[] }[] {
    const r = this.#regions.get(regionId);
    const runs: { first: number; locs: Loc[] }[] = [];
    if (!r) return runs;
    let run: { first: number; locs: Loc[] } | undefined;
    for (let k = 0; k < r.locs.length; k++) {
      const l = r.locs[k];
      if (l?.file !== file) {
        run = undefined;
        continue;
      }
      if (!run) runs.push(run = { first: r.first + k, locs: [] });
      run.locs.push(l);
    }
    return runs;
  }

  /**
   * Moves entry `index` of a region from `from` to `to`, if it is still at `from` (the garbage
   * collector copied it; the store may have replaced or dropped it meanwhile). Returns whether
   * it moved.
   */
  relocateEntry(regionId: number, index: number, from: Loc, to: Loc): boolean {
    const r = this.#regions.get(regionId);
    if (!r) return false;
    const k = index - r.first;
    const cur = r.locs[k];
    if (
      !cur || cur.file !== from.file || cur.offset !== from.offset || cur.length !== from.length
    ) return false;
    r.locs[k] = to;
    this.#kill(from.file, entryBytes(from));
    const stats = this.file(to.file);
    stats.live += entryBytes(to);
    stats.regions.add(regionId);
    return true;
  }

  /** Moves a region's hard state record from `from` to `to` if it is still the same one. */
  relocateHardState(regionId: number, hs: HardState, from: number, to: number): boolean {
    const r = this.#regions.get(regionId);
    if (!r || r.hs !== hs || r.hsFile !== from) return false;
    this.#kill(from, HARD_STATE_ITEM_BYTES);
    r.hsFile = to;
    const stats = this.file(to);
    stats.live += HARD_STATE_ITEM_BYTES;
    stats.regions.add(regionId);
    return true;
  }
}
