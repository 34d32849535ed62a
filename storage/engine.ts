/**
 * `KvEngine`: the store's storage engine on one Deno KV database.
 *
 * Writes go through {@link WriteBatch}es (planned into commits by `write_batch.ts`, which owns
 * Deno KV's limits) and are serialized: one write or range-delete page at a time. Reads see
 * committed state; a chunked value is read through its head, and re-read if the head moved
 * while its pieces were being fetched, so a reader never returns a torn value.
 *
 * **Recovery.** Opening the engine removes chunk pieces no head points at (left by a crash
 * between the commits of a batch or a range delete) and loads the map of chunked values.
 * Everything else a crash can leave is a prefix of a batch's phase order, which the caller's
 * phases make consistent, or a partly done range delete, which is repeated by calling it again.
 *
 * **Failure.** A failed commit leaves the engine unusable for writes (as a crash would); reopen
 * it to recover.
 *
 * @module
 */
import { join } from "node:path";
import {
  chunksPrefix,
  chunkVersionPrefix,
  compareBytes,
  describeKey,
  fromKvKey,
  keyId,
  Keys,
  parseChunkKey,
  type StorageKey,
} from "./keys.ts";
import {
  type ApplyState,
  CorruptionError,
  decodeApplyState,
  decodeFrame,
  decodeHardState,
  decodeRegionState,
  decodeStoreIdent,
  type Frame,
  type HardState,
  type RegionLocalState,
  type StoreIdent,
} from "./records.ts";
import {
  type ChunkRef,
  type ChunkState,
  type CommitLimits,
  commitLimits,
  DENO_KV_LIMITS,
  planCommits,
  WriteBatch,
} from "./write_batch.ts";

/** Name of the Deno KV file inside the data dir. */
export const ENGINE_FILE = "engine.kv";

/** Keys deleted per page of a range delete (each page is one planned write). */
const DELETE_RANGE_PAGE = 512;

/** A user key and its value. */
export interface KvPair {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

/** Passed to {@link CommitHook} after each Deno KV commit the engine makes. */
export interface CommitInfo {
  /** What the commit belongs to. */
  readonly operation: "write" | "deleteRange" | "recover";
  /** 1-based number of this commit within the operation's planned write. */
  readonly commit: number;
  /** Commits in the planned write. */
  readonly commits: number;
  /** Deno KV mutations in this commit. */
  readonly mutations: number;
}

/**
 * Called after every commit. For crash tests: throwing stops the operation right there, as if
 * the process had died, and leaves the engine refusing writes until it is reopened.
 */
export type CommitHook = (info: CommitInfo) => void | Promise<void>;

/** A {@link KvEngine.get} waiting for its turn's shared read. */
interface PendingGet {
  readonly key: StorageKey;
  readonly resolve: (entry: Deno.KvEntryMaybe<unknown>) => void;
  readonly reject: (e: unknown) => void;
}

/** Options of {@link KvEngine.open}. */
export interface KvEngineOptions {
  /** Smaller commit budgets than the defaults (tests use these to get many commits). */
  readonly commitLimits?: Partial<CommitLimits>;
  /** See {@link CommitHook}. */
  readonly afterCommit?: CommitHook;
  /** Called before each commit; a throw fails the write before it lands (crash tests). */
  readonly beforeCommit?: CommitHook;
}

/** The engine failed a write earlier; it must be reopened. */
export class EngineBrokenError extends Error {
  constructor(cause: unknown) {
    super("storage engine refuses writes: an earlier write failed part way; reopen it", {
      cause,
    });
    this.name = "EngineBrokenError";
  }
}

/** The store's storage engine. See the module comment. */
export class KvEngine {
  /** The Deno KV database, for tests and debugging tools only. */
  readonly rawKv: Deno.Kv;
  /** Path of the Deno KV file, or `undefined` in memory. */
  readonly path: string | undefined;
  /** See {@link CommitHook}. */
  afterCommit: CommitHook | undefined;
  beforeCommit: CommitHook | undefined;

  readonly #limits: CommitLimits;
  /** Logical key id → the chunk version its committed head points at. */
  readonly #chunked = new Map<string, ChunkRef>();
  /** Invariant: greater than every chunk version present in the database. */
  #nextVersion = 1;
  /** What the write planner sees of {@link #chunked}. */
  readonly #chunkState: ChunkState = {
    current: (id) => this.#chunked.get(id),
    allocateVersion: () => this.#nextVersion++,
  };
  #writeQueue: Promise<void> = Promise.resolve();
  #broken: unknown = undefined;

  private constructor(kv: Deno.Kv, path: string | undefined, options: KvEngineOptions) {
    this.rawKv = kv;
    this.path = path;
    this.#limits = commitLimits(options.commitLimits);
    this.afterCommit = options.afterCommit;
    this.beforeCommit = options.beforeCommit;
  }

  /** Opens (creating if needed) the engine in `dataDir`, then recovers (see module comment). */
  static async open(dataDir: string, options: KvEngineOptions = {}): Promise<KvEngine> {
    await Deno.mkdir(dataDir, { recursive: true });
    const path = join(dataDir, ENGINE_FILE);
    let kv: Deno.Kv;
    try {
      kv = await Deno.openKv(path);
    } catch (e) {
      throw new Error(`cannot open storage engine at ${path}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    return await KvEngine.#start(kv, path, options);
  }

  /** Opens an engine that lives in memory only. */
  static async openInMemory(options: KvEngineOptions = {}): Promise<KvEngine> {
    return await KvEngine.#start(await Deno.openKv(":memory:"), undefined, options);
  }

  static async #start(kv: Deno.Kv, path: string | undefined, options: KvEngineOptions) {
    const engine = new KvEngine(kv, path, options);
    try {
      await engine.#recover();
    } catch (e) {
      kv.close();
      throw e;
    }
    return engine;
  }

  /** Closes the database. Pending writes should be awaited first. */
  close(): void {
    this.rawKv.close();
  }

  /** A new, empty write batch. */
  batch(): WriteBatch {
    return new WriteBatch();
  }

  /** Writes `batch`: one atomic commit if it fits, else several in its phase order. */
  async write(batch: WriteBatch): Promise<void> {
    await this.#exclusive(() => this.#commit(batch, "write"));
  }

  // ---- user data ----

  /**
   * The value of user key `key`, or `null`. Gets asked for in the same turn of the event loop
   * (reads released together by one Ready pass, say) are read together, up to
   * {@link DENO_KV_LIMITS}`.maxReadKeys` per Deno KV `getMany`: each Deno KV read is a
   * transaction on its own thread, and one of ten keys costs little more than one of one
   * (measured in docs/benchmarks.md, "Reads together"). The shared read starts after every get
   * in it was asked for, so each sees a state at least as new as when it was asked.
   */
  async get(key: Uint8Array): Promise<Uint8Array | null> {
    const k = Keys.data(key);
    const entry = await new Promise<Deno.KvEntryMaybe<unknown>>((resolve, reject) => {
      if (this.#gets === undefined) {
        this.#gets = [];
        queueMicrotask(() => this.#readGets());
      }
      this.#gets.push({ key: k, resolve, reject });
    });
    return await this.#resolve(k, entry);
  }

  /** Gets waiting for this turn's shared read (see {@link get}). */
  #gets: PendingGet[] | undefined;

  #readGets(): void {
    const gets = this.#gets ?? [];
    this.#gets = undefined;
    for (let i = 0; i < gets.length; i += DENO_KV_LIMITS.maxReadKeys) {
      const group = gets.slice(i, i + DENO_KV_LIMITS.maxReadKeys);
      if (group.length === 1) {
        this.rawKv.get<unknown>(group[0]!.key).then(group[0]!.resolve, group[0]!.reject);
        continue;
      }
      this.rawKv.getMany<unknown[]>(group.map((g) => g.key)).then(
        (entries) => entries.forEach((e, j) => group[j]!.resolve(e)),
        // One bad key must not fail the others: each is read on its own instead.
        () => {
          for (const g of group) this.rawKv.get<unknown>(g.key).then(g.resolve, g.reject);
        },
      );
    }
  }

  /** The values of `keys`, `null` where absent, in the same order (read together, see get). */
  async getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | null)[]> {
    return await Promise.all(keys.map((k) => this.get(k)));
  }

  /**
   * Up to `limit` user pairs with `start <= key < end` (`end` undefined: no upper bound), in
   * bytewise key order.
   */
  async scan(start: Uint8Array, end: Uint8Array | undefined, limit: number): Promise<KvPair[]> {
    const out: KvPair[] = [];
    if (!(limit > 0)) return out;
    for await (const pair of this.iterate(start, end, limit)) out.push(pair);
    return out;
  }

  /**
   * The user pairs with `start <= key < end` (`end` undefined: no upper bound) in bytewise key
   * order, read lazily in pages (at most `limit` of them). Not a snapshot: writes that land
   * while iterating may or may not be seen; each value is whole.
   */
  async *iterate(
    start: Uint8Array,
    end?: Uint8Array,
    limit = Number.POSITIVE_INFINITY,
  ): AsyncGenerator<KvPair> {
    if (!(limit > 0) || (end !== undefined && compareBytes(start, end) >= 0)) return;
    const selector: Deno.KvListSelector = end === undefined
      ? { prefix: Keys.dataPrefix(), start: Keys.data(start) }
      : { start: Keys.data(start), end: Keys.data(end) };
    const options: Deno.KvListOptions = Number.isSafeInteger(limit)
      ? { limit, batchSize: Math.min(limit, 500) }
      : { batchSize: 500 };
    for await (const e of this.rawKv.list(selector, options)) {
      const key = fromKvKey(e.key);
      const value = await this.#resolve(key, e);
      if (value !== null) yield { key: key[1] as Uint8Array, value };
    }
  }

  /**
   * Deletes every user key in `[start, end)` (`end` undefined: to the end), in bounded commits.
   * Not atomic: a crash part way leaves some keys deleted; calling it again finishes the job.
   * Returns the number of keys deleted.
   */
  async deleteRange(start: Uint8Array, end?: Uint8Array): Promise<number> {
    if (end !== undefined && compareBytes(start, end) >= 0) return 0;
    return await this.#deleteRange(
      end === undefined
        ? { prefix: Keys.dataPrefix(), start: Keys.data(start) }
        : { start: Keys.data(start), end: Keys.data(end) },
    );
  }

  // ---- raft state ----

  /**
   * The encoded raft entries of region `regionId` stored at `[lo, hi)`, in order. The result
   * starts at `lo` and is cut short where the log ends; a hole in the log is corruption.
   */
  async raftEntries(regionId: number, lo: number, hi: number): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    if (lo >= hi) return out;
    const selector = { start: Keys.raftLog(regionId, lo), end: Keys.raftLog(regionId, hi) };
    for await (const e of this.rawKv.list(selector, { batchSize: 500 })) {
      const index = e.key[3];
      if (index !== lo + out.length) {
        throw new CorruptionError(
          `raft log of region ${regionId} has a hole: expected entry ${lo + out.length}, ` +
            `found ${String(index)}`,
        );
      }
      const entry = await this.#resolve(fromKvKey(e.key), e);
      if (entry === null) break; // deleted meanwhile (log truncated): the log ends here
      out.push(entry);
    }
    return out;
  }

  /** The first and last index stored in a region's raft log, or `undefined` if it is empty. */
  async raftLogBounds(regionId: number): Promise<{ first: number; last: number } | undefined> {
    const prefix = Keys.raftLogPrefix(regionId);
    const first = await firstKey(this.rawKv.list({ prefix }, { limit: 1 }));
    const last = await firstKey(this.rawKv.list({ prefix }, { limit: 1, reverse: true }));
    if (first === undefined || last === undefined) return undefined;
    return { first: first[3] as number, last: last[3] as number };
  }

  /**
   * Deletes a region's raft entries at `[lo, hi)` (`hi` undefined: to the end) in bounded
   * commits; repeatable after a crash. Returns the number of entries deleted.
   */
  async deleteRaftLog(regionId: number, lo: number, hi?: number): Promise<number> {
    if (hi !== undefined && lo >= hi) return 0;
    return await this.#deleteRange(
      hi === undefined
        ? { prefix: Keys.raftLogPrefix(regionId), start: Keys.raftLog(regionId, lo) }
        : { start: Keys.raftLog(regionId, lo), end: Keys.raftLog(regionId, hi) },
    );
  }

  /** A region's applied-request records, in key order: `[index, part, value]`. */
  async appliedRequests(regionId: number): Promise<[number, number, Uint8Array][]> {
    const out: [number, number, Uint8Array][] = [];
    const prefix = Keys.appliedRequestsPrefix(regionId);
    for await (const e of this.rawKv.list({ prefix }, { batchSize: 500 })) {
      const [index, part] = [e.key[3], e.key[4]];
      if (typeof index !== "number" || typeof part !== "number") {
        throw new CorruptionError(`unexpected key ${describeKey(e.key)} among applied requests`);
      }
      const value = await this.#resolve(fromKvKey(e.key), e);
      if (value !== null) out.push([index, part, value]);
    }
    return out;
  }

  /** Deletes every applied-request record of a region (in bounded commits). */
  async deleteAppliedRequests(regionId: number): Promise<number> {
    return await this.#deleteRange({ prefix: Keys.appliedRequestsPrefix(regionId) });
  }

  /** A region's raft hard state, if stored. */
  async hardState(regionId: number): Promise<HardState | undefined> {
    const key = Keys.hardState(regionId);
    const v = await this.#getLogical(key);
    return v === null ? undefined : decodeHardState(v, `hard state of region ${regionId}`);
  }

  /** A region's apply state, if stored. */
  async applyState(regionId: number): Promise<ApplyState | undefined> {
    const v = await this.#getLogical(Keys.applyState(regionId));
    return v === null ? undefined : decodeApplyState(v, `apply state of region ${regionId}`);
  }

  /** A region's local state, if stored. */
  async regionState(regionId: number): Promise<RegionLocalState | undefined> {
    const v = await this.#getLogical(Keys.regionState(regionId));
    return v === null ? undefined : decodeRegionState(v, `region state of region ${regionId}`);
  }

  /** Ids of every region with any raft state stored, ascending (two reads per region). */
  async regionIds(): Promise<number[]> {
    const ids: number[] = [];
    let start: StorageKey | undefined;
    for (;;) {
      const prefix = Keys.regionsPrefix();
      const k = await firstKey(
        this.rawKv.list(start === undefined ? { prefix } : { prefix, start }, { limit: 1 }),
      );
      if (k === undefined) return ids;
      const id = k[1];
      if (typeof id !== "number" || !Number.isSafeInteger(id)) {
        throw new CorruptionError(`unexpected key ${describeKey(k)} among region state`);
      }
      ids.push(id);
      start = Keys.regionPrefix(id + 1);
    }
  }

  /** The store identity, if this engine has one. */
  async storeIdent(): Promise<StoreIdent | undefined> {
    const v = await this.#getLogical(Keys.store());
    return v === null ? undefined : decodeStoreIdent(v);
  }

  // ---- internals ----

  async #exclusive<T>(f: () => Promise<T>): Promise<T> {
    const prev = this.#writeQueue;
    let release!: () => void;
    this.#writeQueue = new Promise((r) => release = r);
    await prev;
    try {
      return await f();
    } finally {
      release();
    }
  }

  /** Plans and commits `batch`; call only inside {@link #exclusive}. */
  async #commit(batch: WriteBatch, operation: CommitInfo["operation"]): Promise<void> {
    if (this.#broken !== undefined) throw new EngineBrokenError(this.#broken);
    const commits = planCommits(batch, this.#chunkState, this.#limits);
    for (const [i, c] of commits.entries()) {
      try {
        await this.beforeCommit?.({
          operation,
          commit: i + 1,
          commits: commits.length,
          mutations: c.mutations.length,
        });
        const op = this.rawKv.atomic();
        for (const m of c.mutations) {
          if (m.value === null) op.delete(m.key);
          else op.set(m.key, m.value);
        }
        const res = await op.commit();
        if (!res.ok) throw new Error("Deno KV refused the commit");
        for (const m of c.mutations) {
          if (m.head === undefined) continue;
          if (m.head.ref === undefined) this.#chunked.delete(m.id);
          else this.#chunked.set(m.id, m.head.ref);
        }
        await this.afterCommit?.({
          operation,
          commit: i + 1,
          commits: commits.length,
          mutations: c.mutations.length,
        });
      } catch (e) {
        this.#broken = e;
        throw new Error(
          `storage ${operation} failed at commit ${i + 1} of ${commits.length} ` +
            `(${c.mutations.length} mutations); the engine must be reopened to recover`,
          { cause: e },
        );
      }
    }
  }

  async #deleteRange(selector: Deno.KvListSelector): Promise<number> {
    let deleted = 0;
    for (;;) {
      const n = await this.#exclusive(async () => {
        const batch = new WriteBatch();
        for await (const e of this.rawKv.list(selector, { limit: DELETE_RANGE_PAGE })) {
          batch.delete(fromKvKey(e.key));
        }
        await this.#commit(batch, "deleteRange");
        return batch.size;
      });
      deleted += n;
      if (n < DELETE_RANGE_PAGE) return deleted;
    }
  }

  /** The value stored under any engine key (e.g. a snapshot piece), or `null`. */
  async getRecord(key: StorageKey): Promise<Uint8Array | null> {
    return await this.#getLogical(key);
  }

  async #getLogical(key: StorageKey): Promise<Uint8Array | null> {
    return await this.#resolve(key, await this.rawKv.get<unknown>(key));
  }

  /**
   * The value behind the stored frame `entry` of `key`: the inline bytes, or the reassembled
   * pieces. If the pieces are gone because the head was overwritten meanwhile, reads again;
   * `null` if the key was deleted meanwhile.
   */
  async #resolve(key: StorageKey, entry: Deno.KvEntryMaybe<unknown>): Promise<Uint8Array | null> {
    for (let attempt = 0;; attempt++) {
      if (entry.value === null) return null;
      const frame = decodeFrame(entry.value, () => describeKey(key));
      if (frame.kind === "inline") return frame.value;
      const value = await this.#readChunks(key, frame);
      if (value !== undefined) return value;
      const again = await this.rawKv.get<unknown>(key);
      if (again.versionstamp === entry.versionstamp || attempt >= 10) {
        throw new CorruptionError(
          `value at ${describeKey(key)} is torn: its head names ${frame.chunks} pieces of ` +
            `version ${frame.version} (${frame.size} bytes) that are not all stored`,
        );
      }
      entry = again;
    }
  }

  async #readChunks(
    key: StorageKey,
    frame: Extract<Frame, { kind: "chunked" }>,
  ): Promise<Uint8Array | undefined> {
    const out = new Uint8Array(frame.size);
    let n = 0;
    let offset = 0;
    const prefix = chunkVersionPrefix(key, frame.version);
    for await (const e of this.rawKv.list<unknown>({ prefix }, { batchSize: 32 })) {
      const piece = e.value;
      if (
        e.key[e.key.length - 1] !== n || !(piece instanceof Uint8Array) ||
        offset + piece.length > frame.size
      ) return undefined;
      out.set(piece, offset);
      offset += piece.length;
      n++;
    }
    return n === frame.chunks && offset === frame.size ? out : undefined;
  }

  /** Drops unreferenced chunk pieces and loads the chunk map (see the module comment). */
  async #recover(): Promise<void> {
    const heads = new Map<string, ChunkRef | undefined>();
    const orphans = new WriteBatch();
    let maxVersion = 0;
    for await (const e of this.rawKv.list({ prefix: chunksPrefix() }, { batchSize: 500 })) {
      const parsed = parseChunkKey(e.key);
      if (parsed === undefined) {
        throw new CorruptionError(`malformed chunk key ${describeKey(e.key)}`);
      }
      maxVersion = Math.max(maxVersion, parsed.version);
      const id = keyId(parsed.logical);
      if (!heads.has(id)) {
        const head = await this.rawKv.get<unknown>(parsed.logical);
        let ref: ChunkRef | undefined;
        if (head.value !== null) {
          const f = decodeFrame(head.value, () => describeKey(parsed.logical));
          if (f.kind === "chunked") ref = { version: f.version, chunks: f.chunks };
        }
        heads.set(id, ref);
        if (ref !== undefined) this.#chunked.set(id, ref);
      }
      const ref = heads.get(id);
      if (ref?.version !== parsed.version || parsed.index >= ref.chunks) {
        orphans.deleteRawChunk(fromKvKey(e.key));
      }
    }
    this.#nextVersion = maxVersion + 1;
    if (orphans.size > 0) await this.#exclusive(() => this.#commit(orphans, "recover"));
  }
}

async function firstKey(it: Deno.KvListIterator<unknown>): Promise<Deno.KvKey | undefined> {
  for await (const e of it) return e.key;
  return undefined;
}
