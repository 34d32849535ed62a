/**
 * The {@link Transport} between store processes: one queue and one sender per destination store,
 * so a slow or dead store never holds up another's traffic. Batches go over a Raft stream to
 * each store (`raft_stream.ts`: one upgraded connection, one frame per batch), or, to a store
 * that refuses streams (an older version) and when no stream credentials are given, as one CBOR
 * `POST /raft/batch` each. A batch carries this store's advertised address so the receiver
 * learns it. Snapshots always go as `POST`ed chunks (`snapshot_stream.ts`), beside the stream.
 *
 * Addresses come from the store's address book (injected). A failed send keeps the address (the
 * peer may only be slow or briefly cut off), drops what was in flight (Raft retransmits), tells
 * the store the peer is unreachable and backs off exponentially up to one second.
 *
 * @module
 */
import { CBOR_CONTENT_TYPE } from "../proto/codec.ts";
import type { FetchFn, TlsFiles } from "../proto/security.ts";
import { UpgradeRefusedError } from "../proto/http_upgrade.ts";
import { encodeRaftBatch, type RaftEnvelope, type Transport } from "./transport.ts";
import { RAFT_SNAPSHOT_PATH, splitSnapshotEnvelope } from "./snapshot_stream.ts";
import { StreamSender } from "./raft_stream.ts";

/** Route on every store that receives Raft batches. */
export const RAFT_BATCH_PATH = "/raft/batch";

const CBOR_HEADERS: Readonly<Record<string, string>> = { "content-type": CBOR_CONTENT_TYPE };

/** Most envelopes queued for one store; past this the oldest are dropped. */
const MAX_QUEUED = 20_000;
const MIN_BACKOFF_MS = 20;
const MAX_BACKOFF_MS = 1_000;
/**
 * Longest one send may take: a request's answer, or a stream's acknowledgement of a batch. A
 * batch to a store behind a partition (packets dropped, not refused) gets neither, and holds up
 * that store's lane until this fires: short, so the lane carries fresh messages soon after the
 * partition heals (a batch is answered as soon as it is queued, in milliseconds; Raft resends
 * what was lost).
 */
const SEND_TIMEOUT_MS = 3_000;
/** Bytes written to a stream and not yet acknowledged before its lane waits. */
const STREAM_WINDOW_BYTES = 8 * 1024 * 1024;
/** A stream unused this long is closed (its receiver closes at 60 s; liveness pings keep it). */
const STREAM_IDLE_MS = 30_000;
/** How long a store that refused a stream gets `POST`s before a stream is tried again. */
const POST_AFTER_REFUSAL_MS = 60_000;
/** How often streams are checked for a missing acknowledgement. */
const WATCH_EVERY_MS = 200;

export interface HttpTransportOptions {
  readonly fromStoreId: number;
  /** This store's advertised HOST:PORT, sent with every batch. */
  readonly fromAddress?: string;
  /** This process's incarnation, sent with every batch (see liveness.ts). */
  readonly incarnation?: number;
  /** HOST:PORT of a store (see address_book.ts). Throws if unknown. */
  readonly resolve: (storeId: number) => Promise<string>;
  /** Called when a store could not be reached (the Raft peers report it unreachable). */
  readonly onUnreachable?: (storeId: number) => void;
  /**
   * Told how long each batch took, in seconds (a request's answer, or a stream's
   * acknowledgement), and whether it got there.
   */
  readonly onSent?: (seconds: number, ok: boolean) => void;
  /** Sends requests with this process's credentials (`Security.fetcher`); default: `fetch`. */
  readonly fetch?: FetchFn;
  /** `http` (default) or `https`. */
  readonly scheme?: string;
  /**
   * Open Raft streams with these credentials (the headers `Security.fetcher` adds, and the TLS
   * files); without it every batch is a `POST`.
   */
  readonly stream?: {
    readonly headers: () => Record<string, string>;
    readonly tls?: TlsFiles;
  };
}

interface Lane {
  queue: RaftEnvelope[];
  /** An empty batch (a liveness ping) is owed. */
  ping: boolean;
  sending: boolean;
  backoffMs: number;
  snapshots: RaftEnvelope[];
  sendingSnapshots: boolean;
  stream?: StreamSender;
  /** The address `stream` is connected to. */
  streamAddress?: string;
  /** Until then (performance.now()), batches to this store are `POST`ed. */
  postUntil: number;
}

/** Sends Raft batches to other stores, one lane per destination store. */
export class HttpTransport implements Transport {
  readonly #lanes = new Map<number, Lane>();
  readonly #abort = new AbortController();
  /** The sends in flight, aborted by {@link close}. */
  readonly #sending = new Set<AbortController>();
  #watch: ReturnType<typeof setInterval> | undefined;
  /** Batches sent and failed, for metrics. */
  sentBatches = 0;
  snapshotsStreamed = 0;
  failedBatches = 0;
  streamsOpened = 0;

  constructor(readonly options: HttpTransportOptions) {}

  send(toStoreId: number, envelopes: readonly RaftEnvelope[]): void {
    if (this.#abort.signal.aborted) return;
    let lane = this.#lanes.get(toStoreId);
    if (!lane) {
      lane = {
        queue: [],
        ping: false,
        sending: false,
        backoffMs: 0,
        snapshots: [],
        sendingSnapshots: false,
        postUntil: 0,
      };
      this.#lanes.set(toStoreId, lane);
    }
    if (envelopes.length === 0) lane.ping = true;
    for (const env of envelopes) {
      if (env.message.type === "MsgSnap") lane.snapshots.push(env);
      else lane.queue.push(env);
    }
    if (lane.queue.length > MAX_QUEUED) lane.queue.splice(0, lane.queue.length - MAX_QUEUED);
    if (!lane.sending && (lane.queue.length > 0 || lane.ping)) void this.#drain(toStoreId, lane);
    if (!lane.sendingSnapshots && lane.snapshots.length > 0) {
      void this.#drainSnapshots(toStoreId, lane);
    }
  }

  close(): void {
    this.#abort.abort();
    for (const send of this.#sending) send.abort();
    for (const lane of this.#lanes.values()) this.#retire(lane);
    clearInterval(this.#watch);
    this.#watch = undefined;
    this.#lanes.clear();
  }

  #encode(envelopes: readonly RaftEnvelope[]): Uint8Array<ArrayBuffer> {
    return encodeRaftBatch({
      fromStoreId: this.options.fromStoreId,
      fromAddress: this.options.fromAddress,
      incarnation: this.options.incarnation,
      envelopes,
    });
  }

  async #post(address: string, path: string, body: Uint8Array<ArrayBuffer>): Promise<void> {
    const send = this.options.fetch ?? fetch;
    // One controller and one timer per send, both gone when it ends. (AbortSignal.any with
    // AbortSignal.timeout left a timer behind every send that fired seconds later, and
    // registered each send's signal on the transport's own: measurable at hundreds of sends a
    // second.)
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), SEND_TIMEOUT_MS);
    this.#sending.add(abort);
    try {
      const res = await send(`${this.options.scheme ?? "http"}://${address}${path}`, {
        method: "POST",
        headers: CBOR_HEADERS,
        body,
        signal: abort.signal,
      });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`${address}${path} answered ${res.status}`);
    } finally {
      clearTimeout(timer);
      this.#sending.delete(abort);
    }
  }

  /** Streams a snapshot in chunks, then its envelope (see snapshot_stream.ts). */
  async #sendSnapshot(address: string, env: RaftEnvelope): Promise<void> {
    const { chunks, head } = splitSnapshotEnvelope(env);
    const id = streamId();
    for (const [seq, chunk] of chunks.entries()) {
      await this.#post(address, `${RAFT_SNAPSHOT_PATH}?id=${id}&seq=${seq}`, chunk.slice());
    }
    const batch = this.#encode([head]);
    await this.#post(address, `${RAFT_SNAPSHOT_PATH}?id=${id}&seq=${chunks.length}&last=1`, batch);
    this.snapshotsStreamed++;
  }

  async #drain(storeId: number, lane: Lane): Promise<void> {
    lane.sending = true;
    try {
      while ((lane.queue.length > 0 || lane.ping) && !this.#abort.signal.aborted) {
        if (lane.backoffMs > 0) await sleep(lane.backoffMs, this.#abort.signal);
        // A full window: the next acknowledgement (or the stream's end) resumes the lane.
        if ((lane.stream?.unackedBytes ?? 0) >= STREAM_WINDOW_BYTES) return;
        const envelopes = lane.queue;
        lane.queue = [];
        lane.ping = false;
        const started = performance.now();
        let stream: StreamSender | undefined;
        try {
          const address = await this.options.resolve(storeId);
          stream = await this.#streamTo(storeId, lane, address);
          if (stream) {
            // Acknowledged or failed later, through the stream's events.
            await stream.send(this.#encode(envelopes));
          } else {
            await this.#post(address, RAFT_BATCH_PATH, this.#encode(envelopes));
            this.#delivered(lane, (performance.now() - started) / 1000);
          }
        } catch {
          // A broken stream has reported itself (see #onStreamClose).
          if (!stream) this.#failed(storeId, lane, started);
        }
      }
    } finally {
      lane.sending = false;
    }
  }

  async #drainSnapshots(storeId: number, lane: Lane): Promise<void> {
    lane.sendingSnapshots = true;
    try {
      while (lane.snapshots.length > 0 && !this.#abort.signal.aborted) {
        const env = lane.snapshots.shift()!;
        const started = performance.now();
        try {
          await this.#sendSnapshot(await this.options.resolve(storeId), env);
          this.#delivered(lane, (performance.now() - started) / 1000);
        } catch {
          this.#failed(storeId, lane, started);
          if (lane.backoffMs > 0) await sleep(lane.backoffMs, this.#abort.signal);
        }
      }
    } finally {
      lane.sendingSnapshots = false;
    }
  }

  #delivered(lane: Lane, seconds: number): void {
    this.sentBatches++;
    this.options.onSent?.(seconds, true);
    lane.backoffMs = 0;
  }

  #failed(storeId: number, lane: Lane, started: number): void {
    this.failedBatches++;
    this.options.onSent?.((performance.now() - started) / 1000, false);
    lane.backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(MIN_BACKOFF_MS, lane.backoffMs * 2));
    if (!this.#abort.signal.aborted) this.options.onUnreachable?.(storeId);
  }

  /** The lane's stream to `address`, opened if needed; undefined: `POST` instead. */
  async #streamTo(storeId: number, lane: Lane, address: string): Promise<StreamSender | undefined> {
    const creds = this.options.stream;
    if (!creds || performance.now() < lane.postUntil) return undefined;
    if (lane.stream && lane.streamAddress === address) return lane.stream;
    // The store moved (or there is no stream yet).
    this.#retire(lane);
    const opened = performance.now();
    let stream: StreamSender;
    try {
      stream = await StreamSender.open(
        { address, headers: creds.headers(), tls: creds.tls },
        SEND_TIMEOUT_MS,
        {
          onAck: (seconds) => {
            this.#delivered(lane, seconds);
            if (!lane.sending && (lane.queue.length > 0 || lane.ping)) {
              void this.#drain(storeId, lane);
            }
          },
          onClose: () => this.#onStreamClose(storeId, lane, stream, opened),
        },
      );
    } catch (e) {
      // Not found or not understood: a store of an older version, which takes POSTs.
      if (e instanceof UpgradeRefusedError && [404, 405, 426].includes(e.status)) {
        lane.postUntil = performance.now() + POST_AFTER_REFUSAL_MS;
        return undefined;
      }
      throw e;
    }
    if (this.#abort.signal.aborted) {
      stream.close();
      throw new Error("transport closed");
    }
    lane.stream = stream;
    lane.streamAddress = address;
    this.streamsOpened++;
    this.#watch ??= this.#startWatch();
    return stream;
  }

  /** A stream ended: if it was the lane's and took batches with it, that is a failed send. */
  #onStreamClose(storeId: number, lane: Lane, stream: StreamSender, opened: number): void {
    if (lane.stream !== stream) return;
    lane.stream = undefined;
    lane.streamAddress = undefined;
    if (stream.unackedBatches > 0) this.#failed(storeId, lane, opened);
    if (!lane.sending && (lane.queue.length > 0 || lane.ping)) void this.#drain(storeId, lane);
  }

  /** Closes the lane's stream without counting a failure (idle, moved, shut down). */
  #retire(lane: Lane): void {
    const stream = lane.stream;
    lane.stream = undefined;
    lane.streamAddress = undefined;
    stream?.close();
  }

  #startWatch(): ReturnType<typeof setInterval> {
    const id = setInterval(() => {
      const now = performance.now();
      for (const lane of this.#lanes.values()) {
        const stream = lane.stream;
        if (!stream) continue;
        stream.checkTimeout(now);
        if (lane.stream && stream.unackedBatches === 0 && stream.idleFor(now) > STREAM_IDLE_MS) {
          this.#retire(lane);
        }
      }
    }, WATCH_EVERY_MS);
    Deno.unrefTimer(id);
    return id;
  }
}

/** A random ID for one snapshot stream. */
function streamId(): string {
  return crypto.getRandomValues(new Uint8Array(8)).toHex();
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
