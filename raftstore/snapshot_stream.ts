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
/** A stream that receives nothing for this long is dropped (and its memory released). */
export const STREAM_TTL_MS = 60_000;
/**
 * Most bytes buffered across all incoming streams, and so also the largest snapshot accepted.
 * A region is split near 64 MiB (`--region-split-size`), so a snapshot is rarely above ~100 MiB;
 * the cap bounds what senders (or a flood of half-finished streams) can make a store hold.
 */
export const MAX_BUFFERED_SNAPSHOT_BYTES = 512 * 1024 * 1024;
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
  /** Drops the stream when it stalls. */
  timer: ReturnType<typeof setTimeout>;
}

/** Reassembles snapshot streams on the receiving store. */
export class SnapshotAssembler {
  readonly #streams = new Map<string, Stream>();
  #buffered = 0;
  /** Snapshots reassembled, and streams dropped for stalling, for metrics. */
  received = 0;
  expired = 0;

  constructor(
    readonly maxBufferedBytes = MAX_BUFFERED_SNAPSHOT_BYTES,
    readonly ttlMs = STREAM_TTL_MS,
  ) {}

  /** Bytes held by unfinished streams. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Adds chunk `seq` of stream `id`. Chunks must come in order from 0. */
  addChunk(id: string, seq: number, chunk: Uint8Array): void {
    let s = this.#streams.get(id);
    if (seq === 0) {
      if (s) this.#drop(id);
      else if (this.#streams.size >= MAX_STREAMS) {
        throw new MrkvError("ServerIsBusy", `already receiving ${MAX_STREAMS} snapshots`);
      }
      s = { chunks: [], size: 0, timer: this.#expiry(id) };
      this.#streams.set(id, s);
    }
    if (!s || s.chunks.length !== seq) {
      this.#drop(id);
      throw new MrkvError("BadRequest", `snapshot stream ${id}: chunk ${seq} is out of order`);
    }
    if (this.#buffered + chunk.length > this.maxBufferedBytes) {
      this.#drop(id);
      throw new MrkvError(
        "ServerIsBusy",
        `snapshot stream ${id}: snapshots being received would exceed ${this.maxBufferedBytes} bytes`,
      );
    }
    s.size += chunk.length;
    this.#buffered += chunk.length;
    // A copy: the chunk may be a view into a larger buffer that should not stay alive.
    s.chunks.push(chunk.slice());
    clearTimeout(s.timer);
    s.timer = this.#expiry(id);
  }

  /** Completes stream `id` with its envelope; returns the batch to deliver. */
  finish(id: string, batch: RaftBatch): RaftBatch {
    const env = batch.envelopes[0];
    const snap = env?.message.snapshot;
    if (batch.envelopes.length !== 1 || !env || env.message.type !== "MsgSnap" || !snap) {
      this.#drop(id);
      throw new MrkvError("BadRequest", `snapshot stream ${id} must end with one MsgSnap envelope`);
    }
    const s = this.#streams.get(id);
    const chunks = s?.chunks ?? [];
    const data = new Uint8Array(s?.size ?? 0);
    this.#drop(id);
    let off = 0;
    for (const c of chunks) {
      data.set(c, off);
      off += c.length;
    }
    this.received++;
    return {
      ...batch,
      envelopes: [{ ...env, message: { ...env.message, snapshot: { ...snap, data } } }],
    };
  }

  /** Drops every stream (the store is stopping). */
  close(): void {
    for (const id of [...this.#streams.keys()]) this.#drop(id);
  }

  #expiry(id: string): ReturnType<typeof setTimeout> {
    const t = setTimeout(() => {
      this.expired++;
      this.#drop(id);
    }, this.ttlMs);
    Deno.unrefTimer(t);
    return t;
  }

  #drop(id: string): void {
    const s = this.#streams.get(id);
    if (!s) return;
    clearTimeout(s.timer);
    this.#buffered -= s.size;
    this.#streams.delete(id);
  }
}
