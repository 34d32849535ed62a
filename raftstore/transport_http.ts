/**
 * The {@link Transport} between store processes: one queue and one sender per destination store,
 * so a slow or dead store never holds up another's traffic. Each flush takes everything queued
 * for that store and sends it as one CBOR `POST /raft/batch`, carrying this store's advertised
 * address so the receiver learns it. Addresses come from the store's address book (injected);
 * a failed send keeps the address (the peer may only be slow or briefly cut off), drops the
 * batch (Raft retransmits) and backs off exponentially up to one second.
 *
 * @module
 */
import { CBOR_CONTENT_TYPE } from "../proto/codec.ts";
import type { FetchFn } from "../proto/security.ts";
import { encodeRaftBatch, type RaftEnvelope, type Transport } from "./transport.ts";
import { RAFT_SNAPSHOT_PATH, splitSnapshotEnvelope } from "./snapshot_stream.ts";

/** Route on every store that receives Raft batches. */
export const RAFT_BATCH_PATH = "/raft/batch";

const CBOR_HEADERS: Readonly<Record<string, string>> = { "content-type": CBOR_CONTENT_TYPE };

/** Most envelopes queued for one store; past this the oldest are dropped. */
const MAX_QUEUED = 20_000;
const MIN_BACKOFF_MS = 20;
const MAX_BACKOFF_MS = 1_000;
/**
 * Longest one send may take. A batch to a store behind a partition (packets dropped, not
 * refused) hangs until this fires, and holds up that store's lane meanwhile: short, so the lane
 * carries fresh messages soon after the partition heals (a batch is answered as soon as it is
 * queued, in milliseconds; Raft resends what was lost).
 */
const SEND_TIMEOUT_MS = 3_000;

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
  /** Told how long each send to a store took, in seconds, and whether it succeeded. */
  readonly onSent?: (seconds: number, ok: boolean) => void;
  /** Sends requests with this process's credentials (`Security.fetcher`); default: `fetch`. */
  readonly fetch?: FetchFn;
  /** `http` (default) or `https`. */
  readonly scheme?: string;
}

interface Lane {
  queue: RaftEnvelope[];
  /** An empty batch (a liveness ping) is owed. */
  ping: boolean;
  sending: boolean;
  backoffMs: number;
}

/** Sends Raft batches over HTTP, one lane per destination store. */
export class HttpTransport implements Transport {
  readonly #lanes = new Map<number, Lane>();
  readonly #abort = new AbortController();
  /** The sends in flight, aborted by {@link close}. */
  readonly #sending = new Set<AbortController>();
  /** Batches sent and failed, for metrics. */
  sentBatches = 0;
  snapshotsStreamed = 0;
  failedBatches = 0;

  constructor(readonly options: HttpTransportOptions) {}

  send(toStoreId: number, envelopes: readonly RaftEnvelope[]): void {
    if (this.#abort.signal.aborted) return;
    let lane = this.#lanes.get(toStoreId);
    if (!lane) {
      lane = { queue: [], ping: false, sending: false, backoffMs: 0 };
      this.#lanes.set(toStoreId, lane);
    }
    if (envelopes.length === 0) lane.ping = true;
    lane.queue.push(...envelopes);
    if (lane.queue.length > MAX_QUEUED) lane.queue.splice(0, lane.queue.length - MAX_QUEUED);
    if (!lane.sending) void this.#drain(toStoreId, lane);
  }

  close(): void {
    this.#abort.abort();
    for (const send of this.#sending) send.abort();
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
        const queued = lane.queue;
        lane.queue = [];
        // Anything sent proves this store alive as well as a ping does.
        const ping = lane.ping && queued.length === 0;
        lane.ping = false;
        const envelopes = queued.filter((e) => e.message.type !== "MsgSnap");
        const snapshots = queued.filter((e) => e.message.type === "MsgSnap");
        const started = performance.now();
        try {
          const address = await this.options.resolve(storeId);
          if (envelopes.length > 0 || ping) {
            await this.#post(address, RAFT_BATCH_PATH, this.#encode(envelopes));
          }
          for (const env of snapshots) await this.#sendSnapshot(address, env);
          this.sentBatches++;
          this.options.onSent?.((performance.now() - started) / 1000, true);
          lane.backoffMs = 0;
        } catch {
          this.failedBatches++;
          this.options.onSent?.((performance.now() - started) / 1000, false);
          lane.backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(MIN_BACKOFF_MS, lane.backoffMs * 2));
          if (!this.#abort.signal.aborted) this.options.onUnreachable?.(storeId);
        }
      }
    } finally {
      lane.sending = false;
    }
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
