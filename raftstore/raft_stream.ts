/**
 * A Raft stream: one long-lived connection from a store to another that carries all its Raft
 * batches, instead of one HTTP request per batch. It starts as an HTTP upgrade of
 * `GET /raft/stream` (`proto/http_upgrade.ts`), so it is authenticated once by the same guard
 * and TLS as every request; then each batch is one frame, and the receiver answers with
 * acknowledgements.
 *
 * Why: an HTTP exchange costs each side several hundred microseconds of CPU and a write makes
 * about eight of them between stores; a frame on an open connection costs tens.
 *
 * Wire format, both directions big-endian:
 * - sender → receiver: frames of a 4-byte length and that many bytes of a CBOR Raft batch
 *   (`encodeRaftBatch`); an empty batch is a liveness ping;
 * - receiver → sender: 4-byte counts, each the number of batches the receiver has taken so far
 *   (modulo 2^32), sent after each read that completed a frame.
 *
 * A receiver that refuses a frame (too large, undecodable, from the wrong store) closes the
 * stream. A sender whose oldest batch has waited {@link StreamSender} `timeoutMs` for its
 * acknowledgement gives up on the stream: a peer behind a partition that drops packets never
 * fails a write, only its silence tells.
 *
 * @module
 */
import type { Socket } from "node:net";
import { type DialOptions, dialUpgrade, writeAll } from "../proto/http_upgrade.ts";
import { frame, FRAME_HEADER_BYTES as HEADER_BYTES, FrameReader } from "../proto/frames.ts";

/** Route on every store that accepts Raft streams. */
export const RAFT_STREAM_PATH = "/raft/stream";
/** The protocol name asked for in the upgrade. */
export const RAFT_STREAM_PROTOCOL = "mrkv-raft/1";

/** What {@link serveRaftStream} needs. */
export interface ServeStreamOptions {
  readonly maxFrameBytes: number;
  /** A stream with no frame for this long is closed (senders ping well within it). */
  readonly idleMs: number;
  /** Takes one batch's bytes; throws to refuse it (the stream is then closed). */
  readonly onBatch: (bytes: Uint8Array) => void;
  /** Why a stream was refused (closed by this side for a bad frame). */
  readonly onRefused: (message: string) => void;
}

/** Serves one accepted stream: frames in, acknowledgements out. */
export function serveRaftStream(socket: Socket, head: Uint8Array, opts: ServeStreamOptions): void {
  const reader = new FrameReader(opts.maxFrameBytes);
  const ack = new Uint8Array(HEADER_BYTES);
  const ackView = new DataView(ack.buffer);
  let taken = 0;
  socket.setNoDelay(true);
  socket.setTimeout(opts.idleMs, () => socket.destroy());
  socket.on("error", () => socket.destroy());
  const onData = (chunk: Uint8Array) => {
    if (socket.destroyed) return;
    let frames: Uint8Array[];
    try {
      frames = reader.push(chunk);
      for (const f of frames) {
        opts.onBatch(f);
        taken = (taken + 1) >>> 0;
      }
    } catch (e) {
      opts.onRefused((e as Error).message);
      socket.destroy();
      return;
    }
    if (frames.length > 0) {
      ackView.setUint32(0, taken);
      socket.write(ack.slice());
    }
  };
  socket.on("data", onData);
  if (head.length > 0) onData(head);
}

/** A batch written and not yet acknowledged. */
interface Unacked {
  readonly sentAt: number;
  readonly bytes: number;
}

/** What a {@link StreamSender} reports to its owner. */
export interface StreamEvents {
  /** A batch was acknowledged, `seconds` after it was written. */
  readonly onAck: (seconds: number) => void;
  /** The stream is done (closed, broken or timed out); called once. */
  readonly onClose: (error: Error) => void;
}

/** The sending end of one Raft stream. */
export class StreamSender {
  readonly #unacked: Unacked[] = [];
  #acked = 0;
  #unackedBytes = 0;
  #closed: Error | undefined;
  #lastWrite = performance.now();

  private constructor(
    readonly conn: Deno.Conn,
    readonly timeoutMs: number,
    readonly events: StreamEvents,
    head: Uint8Array,
  ) {
    void this.#readAcks(head);
  }

  /** Dials `opts.address` and upgrades the connection to a Raft stream. */
  static async open(
    opts: Omit<DialOptions, "path" | "protocol" | "timeoutMs">,
    timeoutMs: number,
    events: StreamEvents,
  ): Promise<StreamSender> {
    const { conn, head } = await dialUpgrade({
      ...opts,
      path: RAFT_STREAM_PATH,
      protocol: RAFT_STREAM_PROTOCOL,
      timeoutMs,
    });
    return new StreamSender(conn, timeoutMs, events, head);
  }

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  get unackedBytes(): number {
    return this.#unackedBytes;
  }

  get unackedBatches(): number {
    return this.#unacked.length;
  }

  /** Milliseconds since the last write. */
  idleFor(now: number): number {
    return now - this.#lastWrite;
  }

  /** Writes one batch; rejects if the stream is or becomes closed. */
  async send(batch: Uint8Array): Promise<void> {
    if (this.#closed) throw this.#closed;
    const now = performance.now();
    this.#lastWrite = now;
    this.#unacked.push({ sentAt: now, bytes: batch.length });
    this.#unackedBytes += batch.length;
    try {
      await writeAll(this.conn, frame(batch));
    } catch (e) {
      this.close(new Error(`stream write failed: ${(e as Error).message}`));
      throw this.#closed;
    }
  }

  /** Closes the stream if its oldest batch has waited longer than the timeout. */
  checkTimeout(now: number): void {
    const oldest = this.#unacked[0];
    if (oldest && now - oldest.sentAt > this.timeoutMs) {
      this.close(new Error(`no acknowledgement in ${this.timeoutMs} ms`));
    }
  }

  /** Ends the stream (idempotent); `error` says why, for the owner. */
  close(error = new Error("stream closed")): void {
    if (this.#closed) return;
    this.#closed = error;
    try {
      this.conn.close();
    } catch { /* already closed */ }
    this.events.onClose(error);
  }

  async #readAcks(head: Uint8Array): Promise<void> {
    const buf = new Uint8Array(4096);
    const pending = new Uint8Array(HEADER_BYTES);
    let have = 0;
    let chunk: Uint8Array = head;
    try {
      for (;;) {
        for (const b of chunk) {
          pending[have++] = b;
          if (have === HEADER_BYTES) {
            have = 0;
            this.#acknowledge(new DataView(pending.buffer).getUint32(0));
          }
        }
        if (this.#closed) return;
        const n = await this.conn.read(buf);
        if (n === null) return this.close(new Error("the receiver closed the stream"));
        chunk = buf.subarray(0, n);
      }
    } catch (e) {
      this.close(
        this.#closed ?? new Error(`stream read failed: ${(e as Error).message}`),
      );
    }
  }

  /** The receiver has taken `count` batches in all (modulo 2^32). */
  #acknowledge(count: number): void {
    const newly = (count - this.#acked) >>> 0;
    if (newly > this.#unacked.length) {
      return this.close(new Error(`acknowledged ${newly} batches of ${this.#unacked.length}`));
    }
    this.#acked = count;
    const now = performance.now();
    for (const u of this.#unacked.splice(0, newly)) {
      this.#unackedBytes -= u.bytes;
      this.events.onAck((now - u.sentAt) / 1000);
    }
  }
}
