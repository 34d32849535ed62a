/**
 * The `Storage` interface through which the core reads the stable log, and `MemoryStorage`,
 * an in-memory implementation used by tests and as the store's in-memory cache of its log.
 *
 * Storage is synchronous: the application keeps the entries since its last snapshot in memory
 * and persists them itself (see `Ready`). Raft never writes to `Storage`; the application
 * appends `Ready.entries`, sets `Ready.hardState` and applies `Ready.snapshot`.
 *
 * @module
 */
import {
  CompactedError,
  invariant,
  SnapshotOutOfDateError,
  SnapshotTemporarilyUnavailableError,
  UnavailableError,
} from "./errors.ts";
import {
  type ConfState,
  EMPTY_HARD_STATE,
  type Entry,
  type HardState,
  limitSize,
  newEntry,
  type Snapshot,
} from "./types.ts";

/**
 * The stable part of a raft log, as the core sees it. Every method may throw
 * `CompactedError` (index before `firstIndex() - 1`), `UnavailableError` (after
 * `lastIndex()`), or — only `snapshot()` — `SnapshotTemporarilyUnavailableError`.
 */
export interface Storage {
  /** The persisted hard state and the configuration the peer starts with. */
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi), at most `maxSize` bytes but at least one entry when lo < hi. */
  entries(lo: number, hi: number, maxSize: number): Entry[];
  /**
   * Term of the entry at `i`. Valid for i in [firstIndex()-1, lastIndex()]: the entry just
   * before the first one is kept (as the snapshot's index/term) for log matching.
   */
  term(i: number): number;
  /** Index of the first entry still available (the snapshot's index + 1). */
  firstIndex(): number;
  /** Index of the last entry. */
  lastIndex(): number;
  /** The most recent snapshot. */
  snapshot(): Snapshot;
}

/**
 * `Storage` backed by an array.
 *
 * Invariant: `ents[0]` is a dummy entry carrying the index and term of the last compaction
 * point (the snapshot), so `ents[i]` holds log index `ents[0].index + i`.
 */
export class MemoryStorage implements Storage {
  #hardState: HardState = EMPTY_HARD_STATE;
  #snapshot: Snapshot = {
    metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } },
    data: new Uint8Array(0),
  };
  /** Overrides the snapshot's configuration in `initialState`, when set. */
  #confState: ConfState | undefined;
  #ents: Entry[] = [newEntry({ term: 0, index: 0 })];
  /** When set, `snapshot()` throws `SnapshotTemporarilyUnavailableError` (tests use it). */
  snapshotUnavailable = false;

  /** Creates a storage; `voters` seeds the initial configuration (bootstrap convenience). */
  constructor(voters: readonly number[] = [], learners: readonly number[] = []) {
    if (voters.length > 0 || learners.length > 0) {
      this.#confState = { voters: [...voters], learners: [...learners] };
    }
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return {
      hardState: this.#hardState,
      confState: this.#confState ?? this.#snapshot.metadata.confState,
    };
  }

  /** Records the hard state to be returned by `initialState`. */
  setHardState(hs: HardState): void {
    this.#hardState = hs;
  }

  /**
   * Records the configuration `initialState` reports (an application persists the
   * configuration it has applied; without a call, the snapshot's configuration is used).
   */
  setConfState(cs: ConfState | undefined): void {
    this.#confState = cs;
  }

  entries(lo: number, hi: number, maxSize: number): Entry[] {
    const offset = this.#ents[0]!.index;
    if (lo <= offset) {
      throw new CompactedError(
        `entries(${lo}, ${hi}): index ${lo} is compacted (first ${offset + 1})`,
      );
    }
    if (hi > this.lastIndex() + 1) {
      throw new UnavailableError(
        `entries(${lo}, ${hi}): past the last index ${this.lastIndex()}`,
      );
    }
    // Only the dummy entry: nothing to return.
    if (this.#ents.length === 1) return [];
    return limitSize(this.#ents.slice(lo - offset, hi - offset), maxSize);
  }

  term(i: number): number {
    const offset = this.#ents[0]!.index;
    if (i < offset) {
      throw new CompactedError(`term(${i}): compacted, the log starts after ${offset}`);
    }
    if (i - offset >= this.#ents.length) {
      throw new UnavailableError(`term(${i}): past the last index ${this.lastIndex()}`);
    }
    return this.#ents[i - offset]!.term;
  }

  /** Last index: the dummy entry's index plus the number of real entries. */
  lastIndex(): number {
    return this.#ents[0]!.index + this.#ents.length - 1;
  }

  /** First index: just after the dummy entry (the compaction point). */
  firstIndex(): number {
    return this.#ents[0]!.index + 1;
  }

  snapshot(): Snapshot {
    if (this.snapshotUnavailable) {
      throw new SnapshotTemporarilyUnavailableError("snapshot is being generated");
    }
    return this.#snapshot;
  }

  /**
   * Replaces the whole log with `snap` (a follower receiving a snapshot). Throws
   * `SnapshotOutOfDateError` if it is older than the current snapshot.
   */
  applySnapshot(snap: Snapshot): void {
    const index = snap.metadata.index;
    if (this.#snapshot.metadata.index >= index) {
      throw new SnapshotOutOfDateError(
        `snapshot at ${index} is not newer than the current one at ${this.#snapshot.metadata.index}`,
      );
    }
    this.#snapshot = snap;
    this.#confState = undefined;
    this.#ents = [newEntry({ term: snap.metadata.term, index })];
  }

  /**
   * Makes a snapshot at `index` (which must be applied and within the log) with the given
   * configuration and state-machine image, and returns it. Compaction is separate.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.#snapshot.metadata.index) {
      throw new SnapshotOutOfDateError(
        `createSnapshot(${index}): not newer than ${this.#snapshot.metadata.index}`,
      );
    }
    const offset = this.#ents[0]!.index;
    invariant(
      index <= this.lastIndex(),
      () => `createSnapshot(${index}) is out of bound, last index ${this.lastIndex()}`,
    );
    this.#snapshot = {
      metadata: { index, term: this.#ents[index - offset]!.term, confState },
      data,
    };
    return this.#snapshot;
  }

  /**
   * Discards entries up to and including `compactIndex` (the dummy entry becomes the one at
   * `compactIndex`). The application must not compact past its applied index.
   */
  compact(compactIndex: number): void {
    const offset = this.#ents[0]!.index;
    if (compactIndex <= offset) {
      throw new CompactedError(`compact(${compactIndex}): already compacted to ${offset}`);
    }
    invariant(
      compactIndex <= this.lastIndex(),
      () => `compact(${compactIndex}) is out of bound, last index ${this.lastIndex()}`,
    );
    const i = compactIndex - offset;
    const dummy = newEntry({ term: this.#ents[i]!.term, index: compactIndex });
    const rest = this.#ents.slice(i + 1);
    rest.unshift(dummy);
    this.#ents = rest;
  }

  /**
   * Appends entries, truncating any existing suffix they overwrite. Entries before
   * `firstIndex()` are ignored (already compacted). Invariant: `ents` are consecutive and do
   * not leave a gap after the last index.
   */
  append(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const first = this.firstIndex();
    const last = ents[0]!.index + ents.length - 1;
    if (last < first) return; // all already compacted
    const start = first > ents[0]!.index ? first - ents[0]!.index : 0;
    const offset = ents[start]!.index - this.#ents[0]!.index;
    invariant(
      offset <= this.#ents.length,
      () =>
        `missing log entries: last index ${this.lastIndex()}, appending at ${ents[start]!.index}`,
    );
    if (offset < this.#ents.length) this.#ents.length = offset;
    for (let i = start; i < ents.length; i++) this.#ents.push(ents[i]!);
  }
}
