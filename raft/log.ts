/**
 * `RaftLog`: the whole log as the core sees it — the stable entries in `Storage` followed by
 * the `Unstable` tail — together with the commit and apply cursors.
 *
 * @module
 */
import { CompactedError, invariant, UnavailableError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import { Unstable } from "./log_unstable.ts";
import type { Storage } from "./storage.ts";
import { type Entry, limitSize, type Snapshot } from "./types.ts";

/**
 * Invariant: `applied <= committed <= lastIndex()`, and `firstIndex() - 1 <= applied` once a
 * snapshot has been restored (everything before the first index is applied by definition).
 */
export class RaftLog {
  /** Entries persisted by the application (since its last snapshot). */
  readonly storage: Storage;
  /** Entries not yet persisted. */
  readonly unstable: Unstable;
  /** Highest index known to be stored on a quorum. */
  committed: number;
  /** Highest index the application has applied (reported through `advance`). */
  applied: number;
  /**
   * Highest index handed to the application among a Ready's committed entries (`RawNode`
   * sets it); while it is above `applied`, the application is applying entries, so the core
   * must not switch to a snapshot under it (see `Raft.restore`).
   */
  applying = 0;
  readonly logger: Logger;

  /**
   * Opens the log over `storage`: everything the storage holds is stable, and everything up to
   * its snapshot is committed and applied (the hard state may later raise `committed`).
   */
  constructor(storage: Storage, logger: Logger) {
    this.storage = storage;
    this.logger = logger;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    // Everything up to the snapshot is committed and applied.
    this.committed = first - 1;
    this.applied = first - 1;
  }

  toString(): string {
    return `committed=${this.committed}, applied=${this.applied}, unstable.offset=${this.unstable.offset}, unstable.entries=${this.unstable.entries.length}`;
  }

  /** First index still held (after the newest snapshot, pending or stored). */
  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  /** Index of the last entry, unstable or stored (or of the snapshot if no entry follows). */
  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /**
   * Term of entry `i`. Returns 0 for an index after the last one; throws `CompactedError` for
   * one before `firstIndex() - 1` (the dummy entry's term is kept for log matching).
   */
  term(i: number): number {
    const dummy = this.firstIndex() - 1;
    if (i < dummy) throw new CompactedError(`term(${i}): compacted, first index ${dummy + 1}`);
    if (i > this.lastIndex()) return 0;
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    try {
      return this.storage.term(i);
    } catch (e) {
      if (e instanceof UnavailableError) return 0;
      throw e;
    }
  }

  /** `term(i)`, but 0 when the entry was compacted. */
  zeroTermOnCompacted(i: number): number {
    try {
      return this.term(i);
    } catch (e) {
      if (e instanceof CompactedError) return 0;
      throw e;
    }
  }

  /** Term of the last entry: with `lastIndex`, what elections compare (§5.4.1). */
  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  /** True when the log holds an entry at `i` of term `t`. */
  matchTerm(i: number, t: number): boolean {
    try {
      return this.term(i) === t;
    } catch (e) {
      if (e instanceof CompactedError) return false;
      throw e;
    }
  }

  /**
   * Appends entries from a leader's MsgApp whose predecessor is (`index`, `logTerm`).
   * Returns the index of the last new entry, or undefined when the predecessor does not match
   * (the log matching check of §5.3 failed). Entries already present are kept, so a stale or
   * duplicated MsgApp never truncates entries a newer one added; the first conflicting entry
   * and everything after it is replaced.
   */
  maybeAppend(
    index: number,
    logTerm: number,
    committed: number,
    ents: readonly Entry[],
  ): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      invariant(
        ci > this.committed,
        () => `entry ${ci} conflicts with a committed entry (committed ${this.committed})`,
      );
      this.append(ents.slice(ci - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  /** Appends entries (truncating the unstable tail they overwrite); returns the last index. */
  append(ents: readonly Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    invariant(
      after >= this.committed,
      () =>
        `cannot truncate committed entries: appending after ${after}, committed ${this.committed}`,
    );
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /**
   * Index of the first entry of `ents` whose term differs from ours (or that we do not have),
   * or 0 when every entry is already present.
   */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Fast backtracking (§5.3 optimisation, etcd's findConflictByTerm): the largest index at or
   * below `index` whose term is at most `term`, with that term. A follower answers a rejected
   * MsgApp with it, and the leader uses it to skip a whole term of mismatching entries at once.
   * Returns term 0 when the term at the found index is unknown (compacted).
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (; index > 0; index--) {
      let t: number;
      try {
        t = this.term(index);
      } catch (e) {
        if (e instanceof CompactedError) return { index, term: 0 };
        throw e;
      }
      if (t <= term) return { index, term: t };
    }
    return { index: 0, term: 0 };
  }

  /** Entries not yet persisted. */
  unstableEntries(): Entry[] {
    return this.unstable.entries.length === 0 ? [] : this.unstable.entries.slice();
  }

  /** True when some committed entries have not been handed out for applying. */
  hasNextEnts(): boolean {
    const off = Math.max(this.applied + 1, this.firstIndex());
    return this.committed + 1 > off;
  }

  /**
   * Committed entries not yet applied. These may include entries still in the unstable tail:
   * the application persists `Ready.entries` before applying `Ready.committedEntries`.
   */
  nextEnts(): Entry[] {
    const off = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed + 1 > off) return this.slice(off, this.committed + 1, Infinity);
    return [];
  }

  /** The pending unstable snapshot, else the storage's. */
  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  /** True when a received snapshot is not persisted yet. */
  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  /**
   * Raises the commit index. Invariant: it never decreases and never passes the last index (a
   * peer only commits entries it holds).
   */
  commitTo(toCommit: number): void {
    // Never decrease the commit index.
    if (this.committed < toCommit) {
      invariant(
        toCommit <= this.lastIndex(),
        () => `commit ${toCommit} is out of range [last ${this.lastIndex()}]; log corrupted?`,
      );
      this.committed = toCommit;
    }
  }

  /** The application applied through `i`. Invariant: applied <= committed, never decreasing. */
  appliedTo(i: number): void {
    if (i === 0) return;
    invariant(
      this.committed >= i && i >= this.applied,
      () =>
        `applied ${i} is out of range [prev applied ${this.applied}, committed ${this.committed}]`,
    );
    this.applied = i;
  }

  /** The application persisted entries through (`i`, `t`). */
  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  /** The application persisted the snapshot at `i`. */
  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  /** Entries from `i` on, at most `maxSize` bytes (at least one). */
  entries(i: number, maxSize: number): Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxSize);
  }

  /** All entries from the first index on (tests). */
  allEntries(): Entry[] {
    return this.entries(this.firstIndex(), Infinity);
  }

  /**
   * Raft's election restriction (§5.4.1): a candidate's log (`lasti`, `term`) is at least as
   * up to date as ours when its last term is higher, or equal with an index at least ours.
   */
  isUpToDate(lasti: number, term: number): boolean {
    const lt = this.lastTerm();
    return term > lt || (term === lt && lasti >= this.lastIndex());
  }

  /**
   * Commits up to `maxIndex` if the entry there is of `term` (the leader's current term).
   * This is the rule of §5.4.2: an entry of an earlier term is never committed by counting
   * replicas, only indirectly by committing a current-term entry after it.
   */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.zeroTermOnCompacted(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  /** Resets the log to a snapshot (which must be newer than the commit index). */
  restore(s: Snapshot): void {
    this.logger.info(
      `log [${this}] starts to restore snapshot [${s.metadata.index}, ${s.metadata.term}]`,
    );
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /**
   * Entries in [lo, hi), at most `maxSize` bytes but at least one. Throws `CompactedError`
   * if `lo` is before the first index.
   */
  slice(lo: number, hi: number, maxSize: number): Entry[] {
    this.mustCheckOutOfBounds(lo, hi);
    if (lo === hi) return [];
    let ents: Entry[] = [];
    if (lo < this.unstable.offset) {
      const stored = this.storage.entries(lo, Math.min(hi, this.unstable.offset), maxSize);
      // Storage returned fewer entries than asked: the size limit was hit.
      if (stored.length < Math.min(hi, this.unstable.offset) - lo) return stored;
      ents = stored;
    }
    if (hi > this.unstable.offset) {
      const u = this.unstable.slice(Math.max(lo, this.unstable.offset), hi);
      if (ents.length > 0) {
        const combined = ents.slice();
        for (const e of u) combined.push(e);
        ents = combined;
      } else {
        ents = u;
      }
    }
    return maxSize === Infinity ? ents : limitSize(ents, maxSize);
  }

  private mustCheckOutOfBounds(lo: number, hi: number): void {
    invariant(lo <= hi, () => `invalid slice ${lo} > ${hi}`);
    const fi = this.firstIndex();
    if (lo < fi) throw new CompactedError(`slice(${lo}): compacted, first index ${fi}`);
    const length = this.lastIndex() + 1 - fi;
    invariant(
      hi <= fi + length,
      () => `slice[${lo},${hi}) out of bound [${fi},${this.lastIndex()}]`,
    );
  }
}
