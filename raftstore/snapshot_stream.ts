/**
 * Streaming snapshots between stores over HTTP. A snapshot's data can be far larger than any
 * sensible request, so the sender posts it in chunks of {@link SNAPSHOT_CHUNK_BYTES}
 * (`POST /raft/snapshot?id=&seq=`), then the envelope itself with the data left out
 * (`&last=1`, a CBOR Raft batch of one envelope). The receiver keeps chunks per stream ID,
 * reassembles them when the envelope arrives and hands the whole message to the store. Streams
 * that stall are dropped after {@link STREAM_TTL_MS}; Raft sends the snapshot again.
 *
 * @module
 */
import { MrkvError } from "../proto/errors.ts";
import type { RaftBatch, RaftEnvelope } from "./transport.ts";

/** Size of one snapshot chunk on the wire. */
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
/** Route receiving snapshot chunks. */
export const RAFT_SNAPSHOT_PATH = "/raft/snapshot";
const STREAM_TTL_MS = 60_000;
/** Largest snapshot accepted, and most streams open at once. */
const MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024 * 1024;
const MAX_STREAMS = 32;

/** Splits an envelope carrying a snapshot into data chunks and a data-less envelope. */
export function splitSnapshotEnvelope(
  env: RaftEnvelope,
): { chunks: Uint8Array[]; head: RaftEnvelope } {
  const snap = env.message.snapshot!;
  const chunks: Uint8Array[] = [];
  for (let off = 0; off < snap.data.length; off += SNAPSHOT_CHUNK_BYTES) {
    chunks.push(snap.data.subarray(off, off + SNAPSHOT_CHUNK_BYTES));
  }
  const head = {
    ...env,
    message: { ...env.message, snapshot: { ...snap, data: new Uint8Array() } },
  };
  return { chunks, head };
}

interface Stream {
  chunks: Uint8Array[];
  size: number;
  startedAt: number;
}

/** Reassembles snapshot streams on the receiving store. */
export class SnapshotAssembler {
  readonly #streams = new Map<string, Stream>();
  /** Snapshots reassembled, for metrics. */
  received = 0;

  /** Adds chunk `seq` of stream `id`. Chunks must come in order from 0. */
  addChunk(id: string, seq: number, chunk: Uint8Array): void {
    this.#expire();
    let s = this.#streams.get(id);
    if (seq === 0) {
      if (!s && this.#streams.size >= MAX_STREAMS) {
        throw new MrkvError("ServerIsBusy", `already receiving ${MAX_STREAMS} snapshots`);
      }
      s = { chunks: [], size: 0, startedAt: Date.now() };
      this.#streams.set(id, s);
    }
    if (!s || s.chunks.length !== seq) {
      this.#streams.delete(id);
      throw new MrkvError("BadRequest", `snapshot stream ${id}: chunk ${seq} is out of order`);
    }
    s.size += chunk.length;
    if (s.size > MAX_SNAPSHOT_BYTES) {
      this.#streams.delete(id);
      throw new MrkvError("TooLarge", `snapshot stream ${id} is over ${MAX_SNAPSHOT_BYTES} bytes`);
    }
    s.chunks.push(chunk);
  }

  /** Completes stream `id` with its envelope; returns the batch to deliver. */
  finish(id: string, batch: RaftBatch): RaftBatch {
    const env = batch.envelopes[0];
    const snap = env?.message.snapshot;
    if (batch.envelopes.length !== 1 || !env || env.message.type !== "MsgSnap" || !snap) {
      throw new MrkvError("BadRequest", `snapshot stream ${id} must end with one MsgSnap envelope`);
    }
    const s = this.#streams.get(id) ?? { chunks: [], size: 0, startedAt: Date.now() };
    this.#streams.delete(id);
    const data = new Uint8Array(s.size);
    let off = 0;
    for (const c of s.chunks) {
      data.set(c, off);
      off += c.length;
    }
    this.received++;
    return {
      ...batch,
      envelopes: [{ ...env, message: { ...env.message, snapshot: { ...snap, data } } }],
    };
  }

  #expire(): void {
    const now = Date.now();
    for (const [id, s] of this.#streams) {
      if (now - s.startedAt > STREAM_TTL_MS) this.#streams.delete(id);
    }
  }
}
