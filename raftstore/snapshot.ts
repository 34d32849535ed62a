/**
 * Region snapshots: what a leader sends a peer that is too far behind (or new), and how the
 * receiver installs it without ever exposing a half-written region.
 *
 * A snapshot's data is CBOR `{ region, kvs: [[key, value], ...], requests }`: the region meta at
 * the snapshot's index, every pair in its range, and the client writes it applied recently (so
 * the receiver skips their stray copies too; see applied_requests.ts). It is generated between Ready passes, so the
 * region's apply is paused and the data is exactly the state at the applied index.
 *
 * Installing is three durable steps (crash-safe, repeatable):
 * 1. the snapshot itself is saved as pieces, with the region state `Applying`;
 * 2. the region's key range is cleared and the snapshot's pairs written;
 * 3. the apply state, the region state `Normal` and the removal of the pieces, together.
 * A store that restarts and finds `Applying` redoes steps 2 and 3 from the saved pieces.
 *
 * @module
 */
import type { Snapshot } from "../raft/mod.ts";
import { Keys, type KvEngine, type StorageKey, type WriteBatch } from "../storage/mod.ts";
import {
  decodeCbor,
  encodeCbor,
  expectArray,
  expectBytes,
  expectObject,
  field,
  optional,
} from "../proto/codec.ts";
import { decodeRegion, type Region } from "../proto/metapb.ts";
import { confStateOf, type PeerStorage } from "./peer_storage.ts";
import { AppliedRequests } from "./applied_requests.ts";

/** Size of one saved snapshot piece. */
const PIECE_BYTES = 512 * 1024;
/** Pairs read per engine scan while generating. */
const SCAN_PAGE = 1000;
/** Piece number of the record describing a saved snapshot (index, term, piece count). */
const HEAD_PIECE = 1_000_000;

/** The decoded data of a snapshot. */
export interface SnapshotData {
  readonly region: Region;
  readonly kvs: readonly (readonly [Uint8Array, Uint8Array])[];
  /** The client writes the region had applied (a new replica must skip their copies too). */
  readonly requests: AppliedRequests;
}

/** Encodes snapshot data. */
export function encodeSnapshotData(data: SnapshotData): Uint8Array {
  return encodeCbor({ region: data.region, kvs: data.kvs, requests: data.requests.encode() });
}

/** Decodes and validates snapshot data. */
export function decodeSnapshotData(bytes: Uint8Array): SnapshotData {
  const o = expectObject(decodeCbor(bytes, "snapshot"), "snapshot");
  const region = decodeRegion(field(o, "region"), "snapshot.region");
  const kvs = expectArray(field(o, "kvs"), "snapshot.kvs", (v, n) => {
    const pair = expectArray(v, n, (x, m) => expectBytes(x, m, 2 * 1024 * 1024), 2);
    if (pair.length !== 2) throw new TypeError(`${n} is not a [key, value] pair`);
    return [pair[0]!, pair[1]!] as const;
  }, Number.MAX_SAFE_INTEGER);
  const requests = optional(
    field(o, "requests"),
    "snapshot.requests",
    (v, n) => AppliedRequests.decode(v, n),
    undefined,
  ) ?? new AppliedRequests();
  return { region, kvs, requests };
}

/** Reads the region's pairs and builds a snapshot at the peer's applied index. */
export async function generateSnapshot(engine: KvEngine, storage: PeerStorage): Promise<Snapshot> {
  const region = storage.region;
  const index = storage.applyState.appliedIndex;
  const term = storage.term(index);
  const kvs: [Uint8Array, Uint8Array][] = [];
  const end = region.endKey.length === 0 ? undefined : region.endKey;
  let start = region.startKey;
  for (;;) {
    const page = await engine.scan(start, end, SCAN_PAGE);
    for (const { key, value } of page) kvs.push([key, value]);
    if (page.length < SCAN_PAGE) break;
    start = successor(page[page.length - 1]!.key);
  }
  return {
    metadata: { index, term, confState: confStateOf(region) },
    data: encodeSnapshotData({ region, kvs, requests: storage.requests }),
  };
}

/** The smallest key greater than `key`. */
export function successor(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length + 1);
  out.set(key);
  return out;
}

function pieceKey(regionId: number, i: number): StorageKey {
  return Keys.snapshotPiece(regionId, i);
}

/** Step 1: save the snapshot and mark the region `Applying`. */
export function saveSnapshot(wb: WriteBatch, snap: Snapshot, region: Region): void {
  const pieces = Math.max(1, Math.ceil(snap.data.length / PIECE_BYTES));
  for (let i = 0; i < pieces; i++) {
    wb.put(pieceKey(region.id, i), snap.data.subarray(i * PIECE_BYTES, (i + 1) * PIECE_BYTES));
  }
  wb.barrier();
  wb.put(
    pieceKey(region.id, HEAD_PIECE),
    encodeCbor({ pieces, index: snap.metadata.index, term: snap.metadata.term }),
  );
  wb.putRegionState(region.id, { peerState: "Applying", region });
}

/** Reads back a snapshot saved by {@link saveSnapshot} (after a restart in `Applying`). */
export async function loadSavedSnapshot(
  engine: KvEngine,
  regionId: number,
): Promise<Snapshot | undefined> {
  const headBytes = await engine.getRecord(pieceKey(regionId, HEAD_PIECE));
  if (!headBytes) return undefined;
  const head = expectObject(decodeCbor(headBytes, "snapshot head"), "snapshot head");
  const pieces = field(head, "pieces") as number;
  const parts: Uint8Array[] = [];
  for (let i = 0; i < pieces; i++) {
    const p = await engine.getRecord(pieceKey(regionId, i));
    if (!p) throw new Error(`saved snapshot of region ${regionId} is missing piece ${i}`);
    parts.push(p);
  }
  const data = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    data.set(p, off);
    off += p.length;
  }
  const { region } = decodeSnapshotData(data);
  return {
    metadata: {
      index: field(head, "index") as number,
      term: field(head, "term") as number,
      confState: confStateOf(region),
    },
    data,
  };
}

/**
 * Steps 2 and 3: replace the region's data with the snapshot's and mark it `Normal`. `oldRange`
 * is the range the peer held before (its stale data is cleared too).
 */
export async function installSnapshot(
  engine: KvEngine,
  snap: Snapshot,
  oldRange: Pick<Region, "startKey" | "endKey"> | undefined,
): Promise<SnapshotData> {
  const data = decodeSnapshotData(snap.data);
  const { region, kvs, requests } = data;
  // An uninitialized peer has no range of its own: only an initialized one passes `oldRange`.
  for (const r of oldRange ? [oldRange, region] : [region]) {
    await engine.deleteRange(r.startKey, r.endKey.length === 0 ? undefined : r.endKey);
  }
  await engine.deleteRaftLog(region.id, 0);
  await engine.deleteAppliedRequests(region.id);
  const wb = engine.batch();
  for (const [k, v] of kvs) wb.putData(k, v);
  const { index, term } = snap.metadata;
  requests.writeAll(wb, region.id, index);
  wb.barrier();
  wb.putApplyState(region.id, { appliedIndex: index, truncatedIndex: index, truncatedTerm: term });
  wb.putRegionState(region.id, { peerState: "Normal", region });
  const pieces = Math.max(1, Math.ceil(snap.data.length / PIECE_BYTES));
  for (let i = 0; i < pieces; i++) wb.delete(pieceKey(region.id, i));
  wb.delete(pieceKey(region.id, HEAD_PIECE));
  await engine.write(wb);
  return data;
}
