/**
 * Write batches: an ordered set of puts and deletes, and the planner that turns it into Deno KV
 * atomic commits. Deno KV's limits are enforced here and nowhere else.
 *
 * **Ordering.** Every mutation belongs to a *phase* (a non-negative integer). The guarantee is:
 * once any mutation of phase `p` is durable, every mutation of every phase `< p` is durable too.
 * A batch that fits one commit is one atomic commit; a larger one is cut into commits in phase
 * order, so a crash between two commits leaves a prefix of that order. Callers put the records
 * that make data visible in a later phase than the data (raft entries before the hard state;
 * applied data before the applied index; snapshot data after `Applying` and before `Normal`).
 *
 * **Chunking.** A value over {@link INLINE_MAX} bytes is stored as pieces of at most
 * {@link CHUNK_SIZE} bytes under a fresh version number, `["x", ...key, version, i]`, and a
 * small *head* at the key that names the version. The planner emits every new piece before all
 * phases, each head in its mutation's phase, and the deletion of superseded pieces after all
 * phases: a reader following a head always finds all its pieces, and a crash can only leave
 * unreferenced pieces behind, which the engine removes when it opens.
 *
 * @module
 */
import { chunkKey, describeKey, encodedKeySize, keyId, Keys, type StorageKey } from "./keys.ts";
import {
  type ApplyState,
  encodeApplyState,
  encodeHardState,
  encodeHead,
  encodeInline,
  encodeRegionState,
  encodeStoreIdent,
  type HardState,
  type RegionLocalState,
  type StoreIdent,
} from "./records.ts";

/** Deno KV's hard limits (measured on Deno 2.9: the commit fails past them). */
export const DENO_KV_LIMITS = {
  /** Mutations in one atomic commit. */
  maxMutations: 1000,
  /** Bytes of one encoded key. */
  maxKeyBytes: 2048,
  /** Bytes of one value. */
  maxValueBytes: 65536,
  /** "Total mutation size" of one commit: Deno counts a set as twice its key plus its value. */
  maxCommitBytes: 800 * 1024,
  /** Sum of the encoded keys of one commit. */
  maxCommitKeyBytes: 80 * 1024,
  /** Keys in one `getMany` call. */
  maxReadKeys: 10,
} as const;

/** Largest value the engine stores (a 1 MiB user value plus room for the raft entry around it). */
export const MAX_VALUE_BYTES = 1024 * 1024 + 64 * 1024;
/** Largest value stored whole; the frame adds one byte. */
export const INLINE_MAX = DENO_KV_LIMITS.maxValueBytes - 1;
/** Size of each piece of a chunked value. */
export const CHUNK_SIZE = DENO_KV_LIMITS.maxValueBytes;
/** Extra key bytes a chunk key adds to its logical key: `"x"` plus version and index numbers. */
export const CHUNK_KEY_OVERHEAD = 3 + 9 + 9;

/** How full the planner fills one commit. Tests shrink these to get many commits cheaply. */
export interface CommitLimits {
  readonly maxMutations: number;
  /** Budget for Deno's total mutation size (2 × key + value + {@link MUTATION_SLACK} each). */
  readonly maxCommitBytes: number;
  readonly maxCommitKeyBytes: number;
}

/** Bytes the planner adds to each mutation's cost as a safety margin. */
export const MUTATION_SLACK = 16;

/** The planner's default budgets: Deno's limits less a safety margin. */
export const DEFAULT_COMMIT_LIMITS: CommitLimits = {
  maxMutations: DENO_KV_LIMITS.maxMutations,
  maxCommitBytes: DENO_KV_LIMITS.maxCommitBytes - 16 * 1024,
  maxCommitKeyBytes: DENO_KV_LIMITS.maxCommitKeyBytes - 2 * 1024,
};

/** Checks caller-supplied budgets: positive, and never above Deno's own limits. */
export function commitLimits(overrides: Partial<CommitLimits> = {}): CommitLimits {
  const l = { ...DEFAULT_COMMIT_LIMITS, ...overrides };
  const minBytes = 2 * DENO_KV_LIMITS.maxKeyBytes + DENO_KV_LIMITS.maxValueBytes + MUTATION_SLACK;
  if (!(l.maxMutations >= 1 && l.maxMutations <= DENO_KV_LIMITS.maxMutations)) {
    throw new RangeError(`commit limit maxMutations ${l.maxMutations} is not in 1..1000`);
  }
  if (!(l.maxCommitBytes >= minBytes && l.maxCommitBytes <= DEFAULT_COMMIT_LIMITS.maxCommitBytes)) {
    throw new RangeError(
      `commit limit maxCommitBytes ${l.maxCommitBytes} must be in ${minBytes}..` +
        `${DEFAULT_COMMIT_LIMITS.maxCommitBytes} so that any single mutation fits`,
    );
  }
  if (
    !(l.maxCommitKeyBytes >= DENO_KV_LIMITS.maxKeyBytes &&
      l.maxCommitKeyBytes <= DEFAULT_COMMIT_LIMITS.maxCommitKeyBytes)
  ) {
    throw new RangeError(`commit limit maxCommitKeyBytes ${l.maxCommitKeyBytes} is out of range`);
  }
  return l;
}

/** A key too long for Deno KV once encoded (with room for chunk keys). */
export class KeyTooLargeError extends Error {
  constructor(readonly key: StorageKey, readonly encodedBytes: number) {
    super(
      `cannot write key ${describeKey(key)}: it encodes to ${encodedBytes} bytes and chunk keys ` +
        `derived from it need ${CHUNK_KEY_OVERHEAD} more, over Deno KV's ` +
        `${DENO_KV_LIMITS.maxKeyBytes}-byte key limit (each 0x00 byte of a key counts twice)`,
    );
    this.name = "KeyTooLargeError";
  }
}

/** A value larger than {@link MAX_VALUE_BYTES}. */
export class ValueTooLargeError extends Error {
  constructor(readonly key: StorageKey, readonly size: number) {
    super(
      `cannot write value of ${size} bytes at ${describeKey(key)}: the engine stores at most ` +
        `${MAX_VALUE_BYTES} bytes per value`,
    );
    this.name = "ValueTooLargeError";
  }
}

/** One mutation as the caller stated it. */
interface Op {
  readonly phase: number;
  readonly key: StorageKey;
  readonly id: string;
  /** `null` deletes. */
  readonly value: Uint8Array | null;
  /** A raw delete of a chunk piece (recovery only): no head or chunk bookkeeping. */
  readonly raw: boolean;
  /** Encoded size of `key`. */
  readonly keyBytes: number;
}

/**
 * Puts and deletes to be written together, in phases (see the module comment). Get one from
 * `KvEngine.batch()` and hand it to `KvEngine.write()`. Values are not copied: do not mutate
 * them until the write has resolved. Keys and value sizes are checked as mutations are added.
 */
export class WriteBatch {
  readonly #ops: Op[] = [];
  #phase = 0;
  #maxPhase = 0;
  /** Whether `#ops` is already in phase order (the common case: no sort needed). */
  #sorted = true;

  /** Number of mutations added (as stated, before chunking and deduplication). */
  get size(): number {
    return this.#ops.length;
  }

  /** The phase the next mutation goes to. */
  get phase(): number {
    return this.#phase;
  }

  /**
   * Starts a new phase after every phase used so far: what follows becomes durable only after
   * everything added before. A no-op while the batch is empty.
   */
  barrier(): this {
    if (this.#ops.length > 0) this.#maxPhase = Math.max(this.#maxPhase, this.#phase) + 1;
    this.#phase = this.#maxPhase;
    return this;
  }

  /** Sends the following mutations to phase `phase` (handy when looping over many regions). */
  atPhase(phase: number): this {
    if (!Number.isSafeInteger(phase) || phase < 0) {
      throw new RangeError(`invalid write batch phase ${phase}: must be a non-negative integer`);
    }
    this.#phase = phase;
    this.#maxPhase = Math.max(this.#maxPhase, phase);
    return this;
  }

  /** Puts `value` at `key` (any key of the layout). */
  put(key: StorageKey, value: Uint8Array): this {
    const keyBytes = checkKey(key);
    if (value.length > MAX_VALUE_BYTES) throw new ValueTooLargeError(key, value.length);
    this.#push(key, value, false, keyBytes);
    return this;
  }

  /** Deletes `key` (and the pieces of its value, if chunked). Deleting an absent key is fine. */
  delete(key: StorageKey): this {
    this.#push(key, null, false, checkKey(key));
    return this;
  }

  /** Puts a user key. */
  putData(key: Uint8Array, value: Uint8Array): this {
    return this.put(Keys.data(key), value);
  }

  /** Deletes a user key. */
  deleteData(key: Uint8Array): this {
    return this.delete(Keys.data(key));
  }

  /** Puts the raft entry at `index` of region `regionId` (the encoded entry). */
  putRaftEntry(regionId: number, index: number, entry: Uint8Array): this {
    return this.put(Keys.raftLog(regionId, index), entry);
  }

  /** Deletes the raft entries `[lo, hi)` of a region, one delete per index. */
  deleteRaftEntries(regionId: number, lo: number, hi: number): this {
    for (let i = lo; i < hi; i++) this.delete(Keys.raftLog(regionId, i));
    return this;
  }

  /** Puts a region's raft hard state. */
  putHardState(regionId: number, hs: HardState): this {
    return this.put(Keys.hardState(regionId), encodeHardState(hs));
  }

  /** Puts a region's apply state. */
  putApplyState(regionId: number, s: ApplyState): this {
    return this.put(Keys.applyState(regionId), encodeApplyState(s));
  }

  /** Puts a region's local state (region meta and peer state). */
  putRegionState(regionId: number, s: RegionLocalState): this {
    return this.put(Keys.regionState(regionId), encodeRegionState(s));
  }

  /** Deletes a region's hard state and apply state (when its peer is destroyed). */
  deleteRaftState(regionId: number): this {
    return this.delete(Keys.hardState(regionId)).delete(Keys.applyState(regionId));
  }

  /** Puts the store identity. */
  putStoreIdent(ident: StoreIdent): this {
    return this.put(Keys.store(), encodeStoreIdent(ident));
  }

  /**
   * A point to roll back to: {@link rollbackTo} drops every mutation added after it. Apply uses
   * it so that a command failing half-way leaves nothing of itself in the batch.
   */
  savepoint(): number {
    return this.#ops.length;
  }

  /** Drops the mutations added since `savepoint` (a value from {@link savepoint}). */
  rollbackTo(savepoint: number): this {
    if (!Number.isSafeInteger(savepoint) || savepoint < 0 || savepoint > this.#ops.length) {
      throw new RangeError(`invalid write batch savepoint ${savepoint}`);
    }
    this.#ops.length = savepoint;
    return this;
  }

  /**
   * Adds every mutation of `later` after this batch's own, each in its phase: written as one,
   * the two batches land as if `later` were written after this one (a key both set ends with
   * `later`'s value; a phase of either lands after the lower phases of both). `later` is left
   * as it was; this batch's current phase does not change.
   */
  append(later: WriteBatch): this {
    for (const op of later.#ops) {
      if (op.phase < (this.#ops.at(-1)?.phase ?? 0)) this.#sorted = false;
      this.#ops.push(op);
    }
    this.#maxPhase = Math.max(this.#maxPhase, later.#maxPhase);
    return this;
  }

  /**
   * The user keys this batch puts or deletes (`putData`, `deleteData`), each with the value it
   * writes (`null`: deleted), in the order they were added: a key added twice comes twice.
   */
  *dataWrites(): Generator<[Uint8Array, Uint8Array | null]> {
    for (const op of this.#ops) {
      if (!op.raw && op.key.length === 2 && op.key[0] === "d") {
        yield [op.key[1] as Uint8Array, op.value];
      }
    }
  }

  /** @internal Deletes a chunk piece directly (used by recovery to drop orphaned pieces). */
  deleteRawChunk(key: StorageKey): this {
    this.#push(key, null, true, encodedKeySize(key));
    return this;
  }

  #push(key: StorageKey, value: Uint8Array | null, raw: boolean, keyBytes: number): void {
    const phase = this.#phase;
    if (phase < (this.#ops.at(-1)?.phase ?? 0)) this.#sorted = false;
    this.#ops.push({ phase, key, id: keyId(key), value, raw, keyBytes });
  }

  /** @internal The mutations in phase order (stable within a phase). */
  ops(): readonly Op[] {
    if (this.#sorted) return this.#ops;
    return this.#ops.map((op, i) => [op, i] as const)
      .sort(([a, i], [b, j]) => a.phase - b.phase || i - j)
      .map(([op]) => op);
  }
}

/** Returns the encoded size of `key` after checking that it and its chunk keys fit. */
function checkKey(key: StorageKey): number {
  const size = encodedKeySize(key);
  if (size + CHUNK_KEY_OVERHEAD > DENO_KV_LIMITS.maxKeyBytes) throw new KeyTooLargeError(key, size);
  return size;
}

/** Where a chunked value's pieces are. */
export interface ChunkRef {
  readonly version: number;
  readonly chunks: number;
}

/** What the planner needs to know of the engine's chunked values. */
export interface ChunkState {
  /** The version the committed head of logical key `id` points at, if it is chunked. */
  current(id: string): ChunkRef | undefined;
  /** A version number never used before by this engine. */
  allocateVersion(): number;
}

/** One Deno KV mutation of a planned commit. */
export interface Mutation {
  readonly key: StorageKey;
  readonly id: string;
  readonly value: Uint8Array | null;
  /** Cost against {@link CommitLimits.maxCommitBytes}. */
  readonly cost: number;
  readonly keyBytes: number;
  /** For heads: the chunk state of `id` once this mutation is committed (undefined: none). */
  readonly head?: { readonly ref: ChunkRef | undefined };
}

/** One Deno KV atomic commit. */
export interface PlannedCommit {
  readonly mutations: Mutation[];
}

function mutation(
  key: StorageKey,
  id: string,
  value: Uint8Array | null,
  head?: { ref: ChunkRef | undefined },
  keyBytes = encodedKeySize(key),
): Mutation {
  const cost = 2 * keyBytes + (value?.length ?? 0) + MUTATION_SLACK;
  return { key, id, value, cost, keyBytes, head };
}

/**
 * Turns a batch into commits: new chunk pieces first, then every phase in order, then the
 * deletion of superseded pieces; packed greedily so that each commit fits `limits`. Two
 * mutations of one key that land in the same commit collapse into the later one.
 */
export function planCommits(
  batch: WriteBatch,
  chunks: ChunkState,
  limits: CommitLimits = DEFAULT_COMMIT_LIMITS,
): PlannedCommit[] {
  const pieces: Mutation[] = [];
  const main: Mutation[] = [];
  // Per logical key: every chunk version it had or gets in this batch, and the final one.
  const versions = new Map<string, { key: StorageKey; seen: ChunkRef[]; final?: ChunkRef }>();

  for (const op of batch.ops()) {
    if (op.raw) {
      main.push(mutation(op.key, op.id, null, undefined, op.keyBytes));
      continue;
    }
    const chunked = op.value !== null && op.value.length > INLINE_MAX;
    let v = versions.get(op.id);
    if (v === undefined) {
      const old = chunks.current(op.id);
      // Keys never chunked before or in this batch need no version bookkeeping.
      if (old !== undefined || chunked) {
        v = { key: op.key, seen: old ? [old] : [], final: old };
        versions.set(op.id, v);
      }
    }
    if (op.value === null) {
      if (v) v.final = undefined;
      main.push(mutation(op.key, op.id, null, { ref: undefined }, op.keyBytes));
    } else if (!chunked) {
      if (v) v.final = undefined;
      main.push(mutation(op.key, op.id, encodeInline(op.value), { ref: undefined }, op.keyBytes));
    } else {
      const ref = {
        version: chunks.allocateVersion(),
        chunks: Math.ceil(op.value.length / CHUNK_SIZE),
      };
      for (let i = 0; i < ref.chunks; i++) {
        // A plain Uint8Array view (not a subclass such as Buffer), so Deno KV stores raw bytes.
        const offset = i * CHUNK_SIZE;
        const length = Math.min(CHUNK_SIZE, op.value.length - offset);
        const piece = new Uint8Array(op.value.buffer, op.value.byteOffset + offset, length);
        const k = chunkKey(op.key, ref.version, i);
        pieces.push(mutation(k, keyId(k), piece));
      }
      v!.seen.push(ref);
      v!.final = ref;
      main.push(
        mutation(
          op.key,
          op.id,
          encodeHead(ref.version, ref.chunks, op.value.length),
          { ref },
          op.keyBytes,
        ),
      );
    }
  }

  const cleanup: Mutation[] = [];
  for (const v of versions.values()) {
    for (const ref of v.seen) {
      if (ref === v.final) continue;
      for (let i = 0; i < ref.chunks; i++) {
        const k = chunkKey(v.key, ref.version, i);
        cleanup.push(mutation(k, keyId(k), null));
      }
    }
  }
  return pack([...pieces, ...main, ...cleanup], limits);
}

function pack(sequence: Mutation[], limits: CommitLimits): PlannedCommit[] {
  const commits: PlannedCommit[] = [];
  let muts: Mutation[] = [];
  let byId = new Map<string, number>();
  let cost = 0;
  let keyBytes = 0;
  for (const m of sequence) {
    const at = byId.get(m.id);
    if (at !== undefined) {
      const prev = muts[at]!;
      if (
        cost - prev.cost + m.cost <= limits.maxCommitBytes &&
        keyBytes - prev.keyBytes + m.keyBytes <= limits.maxCommitKeyBytes
      ) {
        muts[at] = m;
        cost += m.cost - prev.cost;
        keyBytes += m.keyBytes - prev.keyBytes;
        continue;
      }
    }
    if (
      muts.length > 0 &&
      (at !== undefined || muts.length + 1 > limits.maxMutations ||
        cost + m.cost > limits.maxCommitBytes || keyBytes + m.keyBytes > limits.maxCommitKeyBytes)
    ) {
      commits.push({ mutations: muts });
      muts = [];
      byId = new Map();
      cost = 0;
      keyBytes = 0;
    }
    byId.set(m.id, muts.length);
    muts.push(m);
    cost += m.cost;
    keyBytes += m.keyBytes;
  }
  if (muts.length > 0) commits.push({ mutations: muts });
  return commits;
}
