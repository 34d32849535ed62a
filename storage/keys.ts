/**
 * The engine's key layout, and the only place that builds Deno KV key tuples.
 *
 * ```
 * ["d", key]                          user data (key: Uint8Array, ordered bytewise)
 * ["r", regionId, "log", index]       raft log entry
 * ["r", regionId, "hs"]               raft hard state
 * ["r", regionId, "apply"]            apply state: applied index, truncated index/term
 * ["r", regionId, "region"]           region local state: region meta + peer state
 * ["r", regionId, "req", index, part] client requests the region applied recently (dedup)
 * ["store"]                           store identity
 * ["addrs"]                           other stores' addresses, as last learned
 * ["x", ...logicalKey, version, i]    piece i of a value over 64 KiB stored at logicalKey
 * ```
 *
 * Callers get keys from {@link Keys}; the {@link StorageKey} brand stops hand-built tuples from
 * reaching the engine.
 *
 * @module
 */

/** One part of a storage key. Only these three kinds are used by the layout. */
export type KeyPart = string | number | Uint8Array;

/** A Deno KV key built by {@link Keys}. The brand keeps raw tuples out of the engine's API. */
export type StorageKey = readonly KeyPart[] & { readonly __storageKey: true };

function brand(parts: KeyPart[]): StorageKey {
  return parts as unknown as StorageKey;
}

function checkId(what: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`invalid ${what} ${n}: must be a non-negative safe integer`);
  }
  return n;
}

/** Builders for every key of the layout (see the module comment). */
export const Keys = {
  /** `["d", key]`: a user key. */
  data(key: Uint8Array): StorageKey {
    return brand(["d", key]);
  },
  /** `["d"]`: prefix of all user data. */
  dataPrefix(): StorageKey {
    return brand(["d"]);
  },
  /** `["r", regionId, "log", index]`: one raft log entry. */
  raftLog(regionId: number, index: number): StorageKey {
    return brand(["r", checkId("region id", regionId), "log", checkId("raft log index", index)]);
  },
  /** `["r", regionId, "log"]`: prefix of a region's raft log. */
  raftLogPrefix(regionId: number): StorageKey {
    return brand(["r", checkId("region id", regionId), "log"]);
  },
  /** `["r", regionId, "hs"]`: a region's raft hard state. */
  hardState(regionId: number): StorageKey {
    return brand(["r", checkId("region id", regionId), "hs"]);
  },
  /** `["r", regionId, "apply"]`: a region's apply state. */
  applyState(regionId: number): StorageKey {
    return brand(["r", checkId("region id", regionId), "apply"]);
  },
  /** `["r", regionId, "region"]`: a region's local state (meta + peer state). */
  regionState(regionId: number): StorageKey {
    return brand(["r", checkId("region id", regionId), "region"]);
  },
  /** `["r", regionId]`: prefix of everything the engine keeps for one region. */
  regionPrefix(regionId: number): StorageKey {
    return brand(["r", checkId("region id", regionId)]);
  },
  /** `["r"]`: prefix of all per-region raft state. */
  regionsPrefix(): StorageKey {
    return brand(["r"]);
  },
  /** `["store"]`: the store identity. */
  store(): StorageKey {
    return brand(["store"]);
  },
  /** `["addrs"]`: the addresses of other stores this store last learned. */
  storeAddresses(): StorageKey {
    return brand(["addrs"]);
  },
  /**
   * `["r", regionId, "req", index, part]`: a record of client requests the region applied (the
   * apply pass starting at `index`, or a table restored there from a snapshot or a split).
   */
  appliedRequests(regionId: number, index: number, part: number): StorageKey {
    return brand([
      "r",
      checkId("region id", regionId),
      "req",
      checkId("raft log index", index),
      checkId("record part", part),
    ]);
  },
  /** `["r", regionId, "req"]`: prefix of a region's applied-request records. */
  appliedRequestsPrefix(regionId: number): StorageKey {
    return brand(["r", checkId("region id", regionId), "req"]);
  },
  /** `["r", regionId, "snap", i]`: piece `i` of a received snapshot saved while it is applied. */
  snapshotPiece(regionId: number, i: number): StorageKey {
    return brand(["r", checkId("region id", regionId), "snap", i]);
  },
} as const;

/** `["x", ...logical, version, index]`: piece `index` of version `version` of a chunked value. */
export function chunkKey(logical: StorageKey, version: number, index: number): StorageKey {
  return brand(["x", ...logical, version, index]);
}

/** `["x", ...logical, version]`: prefix of the pieces of one version of a chunked value. */
export function chunkVersionPrefix(logical: StorageKey, version: number): StorageKey {
  return brand(["x", ...logical, version]);
}

/** `["x"]`: prefix of every chunk. */
export function chunksPrefix(): StorageKey {
  return brand(["x"]);
}

/**
 * Splits a chunk key back into the logical key, version and piece index, or returns
 * `undefined` when `key` is not a well-formed chunk key.
 */
export function parseChunkKey(
  key: Deno.KvKey,
): { logical: StorageKey; version: number; index: number } | undefined {
  if (key.length < 4 || key[0] !== "x") return undefined;
  const version = key[key.length - 2];
  const index = key[key.length - 1];
  if (typeof version !== "number" || typeof index !== "number") return undefined;
  const logical = key.slice(1, -2);
  if (!logical.every(isKeyPart)) return undefined;
  return { logical: brand(logical as KeyPart[]), version, index };
}

function isKeyPart(p: Deno.KvKeyPart): p is KeyPart {
  return typeof p === "string" || typeof p === "number" || p instanceof Uint8Array;
}

/** Re-brands a key read back from Deno KV whose parts the layout can produce. */
export function fromKvKey(key: Deno.KvKey): StorageKey {
  if (!key.every(isKeyPart)) {
    throw new TypeError(`unexpected key ${describeKey(key)}: only string, number and bytes parts`);
  }
  return brand(key as KeyPart[]);
}

/**
 * The number of bytes Deno KV's tuple encoding uses for `key`, the size its 2 KiB key limit and
 * its per-commit totals count. Strings and bytes cost a type byte, their bytes with every 0x00
 * escaped as two bytes, and a terminating 0x00; numbers cost 9 bytes.
 */
export function encodedKeySize(key: readonly KeyPart[]): number {
  let size = 0;
  for (const part of key) {
    if (typeof part === "number") {
      size += 9;
      continue;
    }
    if (typeof part === "string") {
      size += 2 + stringSize(part);
      continue;
    }
    size += 2 + part.length;
    for (let i = 0; i < part.length; i++) if (part[i] === 0) size++;
  }
  return size;
}

const utf8 = new TextEncoder();
const stringSizes = new Map<string, number>();

/** Escaped UTF-8 size of a string part; the layout's strings are few, so it is cached. */
function stringSize(s: string): number {
  let n = stringSizes.get(s);
  if (n === undefined) {
    const bytes = utf8.encode(s);
    n = bytes.length + bytes.filter((b) => b === 0).length;
    if (stringSizes.size < 1024) stringSizes.set(s, n);
  }
  return n;
}

/**
 * A string that identifies a key exactly (used to index keys in maps). Two keys get the same id
 * only if they are equal part by part.
 */
export function keyId(key: readonly KeyPart[]): string {
  let id = "";
  for (const part of key) {
    if (typeof part === "number") id += `n${part};`;
    else if (typeof part === "string") id += `s${part.length}:${part};`;
    else id += `b${part.length}:${latin1(part)};`;
  }
  return id;
}

/** One char per byte (for map keys, not for display). */
function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return s;
}

/** Lowercase hex of `bytes`. */
export function hex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** A short human-readable form of a key for error messages; long byte parts are elided. */
export function describeKey(key: Deno.KvKey): string {
  const parts = key.map((p) => {
    if (p instanceof Uint8Array) {
      const h = hex(p.length > 16 ? p.subarray(0, 16) : p);
      return p.length > 16 ? `0x${h}…(${p.length} bytes)` : `0x${h}`;
    }
    return typeof p === "string" ? JSON.stringify(p) : String(p);
  });
  return `[${parts.join(", ")}]`;
}

/** Bytewise comparison of two byte strings, the order Deno KV gives `Uint8Array` key parts. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}
