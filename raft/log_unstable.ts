/**
 * The unstable tail of a raft log: entries (and possibly a snapshot) the core has accepted but
 * the application has not yet reported as persisted through `RawNode.advance`.
 *
 * @module
 */
import { invariant } from "./errors.ts";
import type { Entry, Snapshot } from "./types.ts";

/**
 * Invariants: `entries[i]` has index `offset + i`; when `snapshot` is set, `offset` is at most
 * `snapshot.metadata.index + 1` (the entries follow the snapshot).
 */
export class Unstable {
  /** An incoming snapshot not yet persisted by the application. */
  snapshot: Snapshot | undefined;
  /** Entries not yet persisted, starting at `offset`. */
  entries: Entry[] = [];
  /** Log index of `entries[0]`. */
  offset: number;

  constructor(offset: number) {
    this.offset = offset;
  }

  /** First index known here: only a pending snapshot defines one. */
  maybeFirstIndex(): number | undefined {
    return this.snapshot ? this.snapshot.metadata.index + 1 : undefined;
  }

  /** Last index known here, from the entries or else the pending snapshot. */
  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.metadata.index : undefined;
  }

  /** Term of entry `i` if this tail knows it. */
  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const e = this.entries[i - this.offset];
    return e?.term;
  }

  /**
   * The application persisted entries up to `i` (of term `t`): drop them. Ignored when the
   * entry at `i` was since replaced by one of another term (a newer append truncated it).
   */
  stableTo(i: number, t: number): void {
    const gt = this.maybeTerm(i);
    if (gt === undefined || gt !== t || i < this.offset) return;
    this.entries = this.entries.slice(i + 1 - this.offset);
    this.offset = i + 1;
  }

  /** The application persisted the snapshot at `i`. */
  stableSnapTo(i: number): void {
    if (this.snapshot && this.snapshot.metadata.index === i) this.snapshot = undefined;
  }

  /** Replaces everything with a snapshot (a follower catching up by snapshot). */
  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.entries = [];
    this.snapshot = s;
  }

  /** Appends `ents`, truncating whatever they overwrite. */
  truncateAndAppend(ents: readonly Entry[]): void {
    const after = ents[0]!.index;
    if (after === this.offset + this.entries.length) {
      for (const e of ents) this.entries.push(e);
    } else if (after <= this.offset) {
      // Replaces the whole unstable tail (and possibly part of the stable log).
      this.offset = after;
      this.entries = [...ents];
    } else {
      // Keeps [offset, after) and replaces the rest.
      const kept = this.slice(this.offset, after);
      for (const e of ents) kept.push(e);
      this.entries = kept;
    }
  }

  /** Copies of entries in [lo, hi). */
  slice(lo: number, hi: number): Entry[] {
    invariant(
      this.offset <= lo && lo <= hi && hi <= this.offset + this.entries.length,
      () =>
        `unstable.slice[${lo},${hi}) out of bound [${this.offset},${
          this.offset + this.entries.length
        }]`,
    );
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}
