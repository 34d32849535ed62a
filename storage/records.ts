/**
 * How values are laid out in Deno KV: the frame every stored value carries (inline bytes or a
 * head pointing at chunks), and the CBOR records kept per region and per store.
 *
 * @module
 */
import { decode, encode } from "cborg";

/** Frame tag of a value stored whole: `[0x00, ...value]`. */
const TAG_INLINE = 0;
/** Frame tag of a chunk head: `[0x01, version f64, chunk count u32, total size u32]`. */
const TAG_CHUNKED = 1;
const HEAD_SIZE = 17;

/** What a stored frame says: the value itself, or where its chunks are. */
export type Frame =
  | { readonly kind: "inline"; readonly value: Uint8Array }
  | {
    readonly kind: "chunked";
    readonly version: number;
    readonly chunks: number;
    readonly size: number;
  };

/** Thrown when bytes read back from the engine are not what the engine writes. */
export class CorruptionError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CorruptionError";
  }
}

/** Frames a value small enough to be stored in one Deno KV value. */
export function encodeInline(value: Uint8Array): Uint8Array {
  const out = new Uint8Array(value.length + 1);
  out[0] = TAG_INLINE;
  out.set(value, 1);
  return out;
}

/** Frames the head of a chunked value: which version of the chunks holds it, and its shape. */
export function encodeHead(version: number, chunks: number, size: number): Uint8Array {
  const out = new Uint8Array(HEAD_SIZE);
  const view = new DataView(out.buffer);
  out[0] = TAG_CHUNKED;
  view.setFloat64(1, version);
  view.setUint32(9, chunks);
  view.setUint32(13, size);
  return out;
}

/**
 * Reads a frame written by {@link encodeInline} or {@link encodeHead}; `what` names the key in
 * error messages (a function, so that the hot path builds no string).
 */
export function decodeFrame(raw: unknown, what: () => string): Frame {
  if (!(raw instanceof Uint8Array) || raw.length === 0) {
    throw new CorruptionError(`stored value of ${what()} is not a framed byte string`);
  }
  if (raw[0] === TAG_INLINE) return { kind: "inline", value: raw.subarray(1) };
  if (raw[0] === TAG_CHUNKED && raw.length === HEAD_SIZE) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    return {
      kind: "chunked",
      version: view.getFloat64(1),
      chunks: view.getUint32(9),
      size: view.getUint32(13),
    };
  }
  throw new CorruptionError(`stored value of ${what()} has unknown frame tag ${raw[0]}`);
}

/** Raft hard state of one region (etcd's `HardState`). */
export interface HardState {
  readonly term: number;
  readonly vote: number;
  readonly commit: number;
}

/** How far a region has applied its log and where the log now starts. */
export interface ApplyState {
  readonly appliedIndex: number;
  /** Index of the last entry removed by log compaction (0 if none). */
  readonly truncatedIndex: number;
  /** Term of the entry at `truncatedIndex`. */
  readonly truncatedTerm: number;
}

/**
 * State of the local peer of a region: `Applying` while snapshot data is being written (the data
 * in the region's range is not trustworthy until `Normal`), `Merging` while the region is frozen
 * to be merged into another, `Tombstone` once the peer is removed (or merged away).
 */
export type PeerState = "Normal" | "Applying" | "Merging" | "Tombstone";

/**
 * Region meta and the local peer's state. `region` and `merge` are opaque here (raftstore's
 * types): `merge` is the merge state of a `Merging` region, or of a `Tombstone` merged away.
 */
export interface RegionLocalState {
  readonly peerState: PeerState;
  readonly region: unknown;
  readonly merge?: unknown;
}

/** Identity of the store owning this engine. */
export interface StoreIdent {
  readonly clusterId: number;
  readonly storeId: number;
}

function record(bytes: Uint8Array, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = decode(bytes);
  } catch (e) {
    throw new CorruptionError(`${what} is not valid CBOR`, { cause: e });
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new CorruptionError(`${what} is not a CBOR map`);
  }
  return v as Record<string, unknown>;
}

function uint(r: Record<string, unknown>, field: string, what: string): number {
  const v = r[field];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new CorruptionError(
      `${what}: field ${field} is ${String(v)}, not a non-negative integer`,
    );
  }
  return v;
}

/** CBOR-encodes a {@link HardState}. */
export function encodeHardState(hs: HardState): Uint8Array {
  return encode({ term: hs.term, vote: hs.vote, commit: hs.commit });
}

/** Decodes and validates a {@link HardState}. */
export function decodeHardState(bytes: Uint8Array, what = "hard state"): HardState {
  const r = record(bytes, what);
  return {
    term: uint(r, "term", what),
    vote: uint(r, "vote", what),
    commit: uint(r, "commit", what),
  };
}

/** CBOR-encodes an {@link ApplyState}. */
export function encodeApplyState(s: ApplyState): Uint8Array {
  return encode({
    appliedIndex: s.appliedIndex,
    truncatedIndex: s.truncatedIndex,
    truncatedTerm: s.truncatedTerm,
  });
}

/** Decodes and validates an {@link ApplyState}. */
export function decodeApplyState(bytes: Uint8Array, what = "apply state"): ApplyState {
  const r = record(bytes, what);
  return {
    appliedIndex: uint(r, "appliedIndex", what),
    truncatedIndex: uint(r, "truncatedIndex", what),
    truncatedTerm: uint(r, "truncatedTerm", what),
  };
}

const PEER_STATES: readonly PeerState[] = ["Normal", "Applying", "Merging", "Tombstone"];

/** CBOR-encodes a {@link RegionLocalState}; `region` must be CBOR-encodable. */
export function encodeRegionState(s: RegionLocalState): Uint8Array {
  return encode(
    s.merge === undefined
      ? { peerState: s.peerState, region: s.region }
      : { peerState: s.peerState, region: s.region, merge: s.merge },
  );
}

/** Decodes a {@link RegionLocalState}, validating the peer state (not the region). */
export function decodeRegionState(bytes: Uint8Array, what = "region state"): RegionLocalState {
  const r = record(bytes, what);
  const peerState = r.peerState;
  if (!PEER_STATES.includes(peerState as PeerState)) {
    throw new CorruptionError(
      `${what}: peer state ${String(peerState)} is not one of ${PEER_STATES}`,
    );
  }
  return r.merge === undefined
    ? { peerState: peerState as PeerState, region: r.region }
    : { peerState: peerState as PeerState, region: r.region, merge: r.merge };
}

/** CBOR-encodes a {@link StoreIdent}. */
export function encodeStoreIdent(s: StoreIdent): Uint8Array {
  return encode({ clusterId: s.clusterId, storeId: s.storeId });
}

/** Decodes and validates a {@link StoreIdent}. */
export function decodeStoreIdent(bytes: Uint8Array, what = "store identity"): StoreIdent {
  const r = record(bytes, what);
  return { clusterId: uint(r, "clusterId", what), storeId: uint(r, "storeId", what) };
}
