/**
 * A region peer's Raft storage on the store's engine.
 *
 * Raft's {@link Storage} is synchronous, so everything it reads is held in memory: the hard state,
 * the apply state, and the log entries after the truncated index. They are loaded from the engine
 * when the peer starts and kept in step as the Ready loop persists new state. Writes go into the
 * Ready loop's shared {@link WriteBatch}; nothing here does I/O except {@link PeerStorage.load}
 * and the snapshot helpers.
 *
 * Invariant: `entries` holds exactly the indexes `truncatedIndex + 1 ..= lastIndex()`, all of them
 * already in the write batch that the Ready loop commits before calling `advance`.
 *
 * @module
 */
import {
  CompactedError,
  type ConfState,
  decodeEntry,
  encodeEntry,
  type Entry,
  type HardState,
  type Snapshot,
  SnapshotTemporarilyUnavailableError,
  type Storage,
  UnavailableError,
} from "../raft/mod.ts";
import { type ApplyState, Keys, type KvEngine, type WriteBatch } from "../storage/mod.ts";
import { epochEqual, type Region, type RegionEpoch } from "../proto/metapb.ts";
import { AppliedRequests } from "./applied_requests.ts";
import { confStateOf } from "./conf_change.ts";

/** Index and term every region starts at when created by bootstrap or split (TiKV's value). */
export const RAFT_INIT_LOG_INDEX = 5;
export const RAFT_INIT_LOG_TERM = 5;

export { confStateOf };

/** Raft storage for one region peer, in memory, persisted through the engine. */
export class PeerStorage implements Storage {
  region: Region;
  hardState: HardState;
  applyState: ApplyState;
  /** Entries truncatedIndex+1 ..= lastIndex. */
  #entries: Entry[];
  /** Total data bytes of `#entries` (the memory the log holds). */
  #entryBytes = 0;
  /** A snapshot generated for Raft to send, and whether one has been asked for. */
  #snapshot: Snapshot | undefined;
  /** The region epoch `#snapshot` was taken at: a membership change or split makes it useless. */
  #snapshotEpoch: RegionEpoch | undefined;
  snapshotRequested = false;

  /** The client writes this region applied recently (exactly-once; see applied_requests.ts). */
  requests: AppliedRequests;

  constructor(
    region: Region,
    hardState: HardState,
    applyState: ApplyState,
    entries: Entry[],
    requests = new AppliedRequests(),
  ) {
    this.region = region;
    this.hardState = hardState;
    this.applyState = applyState;
    this.#entries = entries;
    this.#entryBytes = entries.reduce((n, e) => n + e.data.length, 0);
    this.requests = requests;
  }

  /** Bytes of entry data held in memory (log GC compacts by size too). */
  logBytes(): number {
    return this.#entryBytes;
  }

  /** Loads a peer's state from the engine (after a restart). */
  static async load(engine: KvEngine, region: Region): Promise<PeerStorage> {
    const hs = (await engine.hardState(region.id)) ?? { term: 0, vote: 0, commit: 0 };
    const apply = (await engine.applyState(region.id)) ??
      { appliedIndex: 0, truncatedIndex: 0, truncatedTerm: 0 };
    const raw = await engine.raftEntries(
      region.id,
      apply.truncatedIndex + 1,
      Number.MAX_SAFE_INTEGER,
    );
    const entries: Entry[] = [];
    for (const bytes of raw) {
      const e = decodeEntry(bytes);
      // Only a contiguous run counts: a crash may have left a later fragment behind.
      if (e.index !== apply.truncatedIndex + 1 + entries.length) break;
      entries.push(e);
    }
    const requests = AppliedRequests.load(
      await engine.appliedRequests(region.id),
      `applied requests of region ${region.id}`,
    );
    return new PeerStorage(region, hs, apply, entries, requests);
  }

  /** A peer that knows its range and members (created by bootstrap, split or a snapshot). */
  isInitialized(): boolean {
    return this.region.peers.length > 0;
  }

  // ---- Raft's Storage ----

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: confStateOf(this.region) };
  }

  entries(lo: number, hi: number, maxSize: number): Entry[] {
    const first = this.firstIndex();
    if (lo < first) {
      throw new CompactedError(`entry ${lo} of region ${this.region.id} is compacted`);
    }
    if (hi > this.lastIndex() + 1) {
      throw new UnavailableError(`entries up to ${hi} of region ${this.region.id} are not stored`);
    }
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.#entries[i - first]!;
      size += e.data.length + 16;
      if (out.length > 0 && size > maxSize) break;
      out.push(e);
    }
    return out;
  }

  term(i: number): number {
    const { truncatedIndex, truncatedTerm } = this.applyState;
    if (i === truncatedIndex) return truncatedTerm;
    if (i < truncatedIndex) {
      throw new CompactedError(`term of ${i} in region ${this.region.id} is compacted`);
    }
    const e = this.#entries[i - truncatedIndex - 1];
    if (!e) throw new UnavailableError(`entry ${i} of region ${this.region.id} is not stored`);
    return e.term;
  }

  firstIndex(): number {
    return this.applyState.truncatedIndex + 1;
  }

  lastIndex(): number {
    return this.applyState.truncatedIndex + this.#entries.length;
  }

  /**
   * The snapshot to send. Generation needs the engine (async) and a paused apply, so the first
   * call only asks for one; the store generates it between Ready passes and Raft retries.
   */
  snapshot(): Snapshot {
    const snap = this.#snapshot;
    const epoch = this.#snapshotEpoch;
    if (
      snap && epoch && epochEqual(epoch, this.region.epoch) &&
      snap.metadata.index >= this.applyState.truncatedIndex
    ) {
      return snap;
    }
    this.snapshotRequested = true;
    throw new SnapshotTemporarilyUnavailableError(
      `snapshot of region ${this.region.id} is being generated`,
    );
  }

  /** Installs a freshly generated snapshot for {@link snapshot} to return. */
  setGeneratedSnapshot(snap: Snapshot): void {
    this.#snapshot = snap;
    this.#snapshotEpoch = this.region.epoch;
    this.snapshotRequested = false;
  }

  // ---- Persistence (called by the Ready loop) ----

  /**
   * Adds new entries (replacing any conflicting suffix) to `wb`, in the current phase.
   *
   * A large append can take several engine commits, and a crash may keep any prefix of them.
   * So a conflicting suffix is deleted first, newest entry first, and only then are the new
   * entries written: every prefix leaves a log that is one contiguous run of entries, each run a
   * prefix of the old log or of the new one, never old entries of a lower term after new ones.
   */
  append(entries: readonly Entry[], wb: WriteBatch): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    const prevLast = this.lastIndex();
    const keep = first - this.firstIndex();
    if (keep < 0) {
      throw new Error(
        `region ${this.region.id}: append at ${first} below first index ${this.firstIndex()}`,
      );
    }
    for (let i = prevLast; i >= first; i--) wb.delete(Keys.raftLog(this.region.id, i));
    for (const e of this.#entries.splice(Math.min(this.#entries.length, keep))) {
      this.#entryBytes -= e.data.length;
    }
    for (const e of entries) {
      wb.putRaftEntry(this.region.id, e.index, encodeEntry(e));
      this.#entries.push(e);
      this.#entryBytes += e.data.length;
    }
  }

  /** Records a new hard state in `wb`. */
  setHardState(hs: HardState, wb: WriteBatch): void {
    this.hardState = hs;
    wb.putHardState(this.region.id, hs);
  }

  /**
   * Log GC: drops entries up to `index` from memory and moves the truncated index there. The
   * caller persists the new apply state; the entries themselves are deleted from the engine only
   * after that (see {@link Store}), so a crash part way leaves entries below the truncated index,
   * never a hole above it. Returns the range `[lo, hi)` to delete, or `undefined` if there is
   * nothing to do — also when `term` is not this log's term at `index` (a command that does not
   * describe this log must not move its truncated term).
   */
  compactTo(index: number, term: number): { lo: number; hi: number } | undefined {
    const { truncatedIndex } = this.applyState;
    if (index <= truncatedIndex || index > this.lastIndex()) return undefined;
    if (this.term(index) !== term) return undefined;
    for (const e of this.#entries.splice(0, index - truncatedIndex)) {
      this.#entryBytes -= e.data.length;
    }
    this.applyState = { ...this.applyState, truncatedIndex: index, truncatedTerm: term };
    return { lo: truncatedIndex + 1, hi: index + 1 };
  }

  /** Resets the log to start after a snapshot (the caller persists the state records). */
  resetToSnapshot(index: number, term: number, region: Region, requests: AppliedRequests): void {
    this.#entries = [];
    this.#entryBytes = 0;
    this.region = region;
    this.requests = requests;
    this.applyState = { appliedIndex: index, truncatedIndex: index, truncatedTerm: term };
    this.#snapshot = undefined;
  }
}
