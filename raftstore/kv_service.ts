/**
 * The KV service behind the KV API: any store accepts any key.
 *
 * A request is routed to the region holding its key. If this store leads that region, the
 * command is proposed here (writes answer once applied; reads go through ReadIndex and then the
 * local engine). Otherwise it is forwarded to the store that leads the region — as known
 * locally, else as the scheduler last heard. A forwarded request is never forwarded again.
 * Failed attempts are retried with a short backoff until the request's deadline, so clients see
 * region errors only if the cluster cannot settle in time.
 *
 * **Writes take effect at most once.** Every client write gets a {@link RequestTag} here, kept by
 * every attempt (forwards carry it in {@link REQUEST_TAG_HEADER}, Raft entries in the command):
 * apply skips a tag it has already applied (applied_requests.ts), so a retry after an attempt
 * whose outcome is unknown — a timeout, a lost connection, a leader that paused — is safe. An
 * attempt that ends aborts its forward. A write is answered with an error other than `Timeout`
 * only if no attempt can have taken effect; otherwise with `503 Timeout` and
 * `"outcome": "unknown"` (docs/api.md, "Write outcomes").
 *
 * @module
 */
import { percentEncodeBytes } from "../proto/codec.ts";
import { errorFromResponse, MrkvError, unknownOutcome } from "../proto/errors.ts";
import {
  compareBytes,
  compareEndKeys,
  keyInRegion,
  type Peer as PeerMeta,
  type Region,
} from "../proto/metapb.ts";
import { encodeRouteHint } from "../proto/route_hint.ts";
import type { Peer } from "./peer.ts";
import type { PdClient } from "../proto/pd_client.ts";
import type { Store } from "./store.ts";
import {
  MAX_TAG_CLOCK_AHEAD_MS,
  newRequestTag,
  REQUEST_ID_BYTES,
  type RequestTag,
} from "./applied_requests.ts";

/** How long a request may keep retrying region errors. */
export const REQUEST_DEADLINE_MS = 10_000;
const RETRYABLE = new Set([
  "NotLeader",
  "NoLeader",
  "EpochNotMatch",
  "KeyNotInRegion",
  "StaleCommand",
  "RegionNotFound",
  "ServerIsBusy",
]);

/**
 * Writes outstanding through a follower before new ones go through Raft instead of HTTP
 * (see KvService.#viaLocalFollower). Measured on 3 stores: below this, HTTP forwarding has the
 * lower latency; above it, sharing Raft's batches gives more throughput.
 */
const BUSY_FOLLOWER_WRITES = 8;

/** Longest a single attempt may wait before it is retried. */
const ATTEMPT_MS = 2_000;

/**
 * Most key and value bytes in one scan page (besides the pair limit): a page ends early at this
 * point and `next` says where to continue; one pair larger than the budget still makes a page.
 * 1 MiB: a page of the largest values is read, rendered and sent well within one attempt even
 * on a busy machine (at 4 MiB, 20 concurrent scans of 1 MiB values timed out and retried most
 * pages), and small values still fill thousands of pairs per page.
 */
export const MAX_SCAN_PAGE_BYTES = 1024 * 1024;

/** Header marking a request forwarded by another store (it must be served locally). */
export const FORWARDED_HEADER = "x-mrkv-forwarded";
/** Route of the request stream a store forwards KV requests on (`proto/request_stream.ts`). */
export const FORWARD_STREAM_PATH = "/forward";
/** The protocol the forwarding stream's upgrade asks for. */
export const FORWARD_STREAM_PROTOCOL = "mrkv-forward/1";
/** Header carrying a forwarded write's tag: `<id hex>.<issuedAt>`. */
export const REQUEST_TAG_HEADER = "x-mrkv-request";
/** A tag as {@link REQUEST_TAG_HEADER} carries it. */
export function encodeTagHeader(tag: RequestTag): string {
  return `${tag.id.toHex()}.${tag.issuedAt}`;
}

/** Parses {@link REQUEST_TAG_HEADER}; throws `BadRequest` if malformed or from the future. */
export function decodeTagHeader(value: string, now = Date.now()): RequestTag {
  const m = /^([0-9a-f]+)\.(\d{1,16})$/.exec(value);
  if (!m || m[1]!.length !== REQUEST_ID_BYTES * 2) {
    throw new MrkvError("BadRequest", `${REQUEST_TAG_HEADER} must be <32 hex digits>.<ms>`);
  }
  const issuedAt = Number(m[2]);
  if (issuedAt > now + MAX_TAG_CLOCK_AHEAD_MS) {
    throw new MrkvError(
      "BadRequest",
      `${REQUEST_TAG_HEADER} was issued ${issuedAt - now} ms in this store's future: the ` +
        `clocks of the stores disagree`,
    );
  }
  return { id: Uint8Array.fromHex(m[1]!), issuedAt };
}

/** Sends a request to another store's HTTP API (production: fetch; tests: the store's app). */
export type ForwardFn = (storeId: number, req: Request) => Promise<Response>;

/** One key-value pair in a scan result. */
export interface KvPair {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

/** A scan's page: pairs in key order and where to continue (null when done). */
export interface ScanPage {
  readonly kvs: KvPair[];
  readonly next: Uint8Array | null;
}

/** The KV operations of one store. */
export class KvService {
  /** Requests forwarded to another store (each attempt), and retried, for metrics. */
  forwarded = 0;
  retries = 0;
  /** Writes proposed on a local follower and forwarded by Raft. */
  viaRaft = 0;
  /** Reads served by a local follower (see {@link #followerGet}). */
  followerReads = 0;

  constructor(
    readonly store: Store,
    readonly scheduler: PdClient,
    readonly forward: ForwardFn,
    readonly deadlineMs = REQUEST_DEADLINE_MS,
    /** Whether a follower serves reads itself (`--follower-read`). */
    readonly followerRead = true,
  ) {}

  /**
   * The URL clients reach a store at (its advertised address with the cluster's scheme), for
   * route hints; undefined when the store's address is not known. Unset: no hints.
   */
  storeUrl: ((storeId: number) => string | undefined) | undefined;

  /**
   * Where the region holding `key` is led from, as this store's peer of it knows, for a client
   * (`proto/route_hint.ts`); undefined when this store has no peer there or it knows no leader.
   * `always` false: only when this store is not that leader (the client asked the wrong store).
   */
  routeHint(key: Uint8Array, always: boolean): string | undefined {
    if (!this.storeUrl) return undefined;
    const peer = this.#localPeerFor(key);
    // An uninitialized peer (waiting for its first snapshot) does not know its region's range.
    if (!peer || !peer.storage.isInitialized() || (!always && peer.isLeader())) return undefined;
    const leader = peer.isLeader() ? this.store.storeId : peer.leader()?.storeId;
    if (leader === undefined) return undefined;
    const url = this.storeUrl(leader);
    if (url === undefined) return undefined;
    const region = peer.region;
    if (!keyInRegion(key, region)) return undefined;
    return encodeRouteHint({
      regionId: region.id,
      version: region.epoch.version,
      start: region.startKey,
      end: region.endKey,
      leaderStoreId: leader,
      leaderUrl: url,
    });
  }

  // ---- local operations (this store leads the key's region) ----

  /** The local leader peer for `key`, or a region error saying where to go. */
  localLeaderFor(key: Uint8Array): Peer {
    const region = this.store.meta.regionForKey(key);
    if (!region) {
      throw new MrkvError(
        "RegionNotFound",
        `store ${this.store.storeId} has no region for the key`,
      );
    }
    const peer = this.store.mustPeer(region.id);
    peer.checkLeader();
    return peer;
  }

  /**
   * Proposes a write on the local leader and waits for it to apply. A write with the same tag
   * still pending on the same leader in the same term (a retry, or a copy the network delivered
   * again) joins that proposal instead of adding another entry.
   */
  async localWrite(
    key: Uint8Array,
    value: Uint8Array | null,
    tag: RequestTag = newRequestTag(),
  ): Promise<void> {
    const peer = this.localLeaderFor(key);
    const hex = tag.id.toHex();
    const term = peer.raw.raft.term;
    const pending = this.#pendingWrites.get(hex);
    if (pending && pending.peer === peer && pending.term === term) return await pending.done;
    const done = peer.propose({
      header: {
        regionId: peer.regionId,
        peerId: peer.meta.id,
        epoch: peer.region.epoch,
        request: tag,
      },
      requests: [value === null ? { type: "Delete", key } : { type: "Put", key, value }],
    });
    this.store.schedule(peer);
    const entry = { peer, term, done };
    this.#pendingWrites.set(hex, entry);
    done.catch(() => {}).finally(() => {
      if (this.#pendingWrites.get(hex) === entry) this.#pendingWrites.delete(hex);
    });
    await this.store.metrics.time(this.store.metrics.proposeApply, done);
  }

  /** Writes proposed here and not yet answered, by tag (see {@link localWrite}). */
  readonly #pendingWrites = new Map<string, { peer: Peer; term: number; done: Promise<void> }>();

  async localGet(key: Uint8Array): Promise<Uint8Array | null> {
    const peer = this.localLeaderFor(key);
    return await this.#getWhen(peer, key, peer.read(true));
  }

  /** Reads `key` from this store's engine once `ready` (a lease, read index or follower read). */
  async #getWhen(peer: Peer, key: Uint8Array, ready: Promise<void>): Promise<Uint8Array | null> {
    const epoch = peer.region.epoch;
    this.store.schedule(peer);
    await ready;
    // A split applied while we waited may have moved the key to another region.
    if (peer.region.epoch.version !== epoch.version && !keyInRegion(key, peer.region)) {
      throw new MrkvError("EpochNotMatch", `region ${peer.regionId} split during the read`);
    }
    // Applied data still on its way to the engine first (a point read may go once its index is
    // visible: Peer.visibleIndex); what is not there has landed.
    const pending = this.store.appliedValue(key);
    const value = pending !== undefined ? pending : await this.store.engine.get(key);
    const bytes = key.length + (value?.length ?? 0);
    this.store.flow.read(peer.regionId, value ? bytes : 0, 1);
    this.store.loadSampler?.record(peer.regionId, key, undefined, bytes);
    return value;
  }

  /**
   * Scans `[start, end)` within the local region holding `start`, at most `limit` pairs and
   * (past the first pair) `maxBytes` of keys and values; returns the region too. Gives up
   * (`Timeout`) once `until` has passed: by then whoever asked has stopped waiting, and a page
   * read for nobody would still hold its memory and the engine.
   */
  async localScanRegion(
    start: Uint8Array,
    end: Uint8Array | undefined,
    limit: number,
    maxBytes = MAX_SCAN_PAGE_BYTES,
    until = Date.now() + ATTEMPT_MS,
  ): Promise<{ kvs: KvPair[]; region: Region }> {
    const peer = this.localLeaderFor(start);
    return await this.#scanWhen(peer, peer.read(), start, end, limit, maxBytes, until);
  }

  /** Reads a scan page from this store's engine once `ready` (see {@link localScanRegion}). */
  async #scanWhen(
    peer: Peer,
    ready: Promise<void>,
    start: Uint8Array,
    end: Uint8Array | undefined,
    limit: number,
    maxBytes: number,
    until: number,
  ): Promise<{ kvs: KvPair[]; region: Region }> {
    this.store.schedule(peer);
    await ready;
    const region = peer.region;
    if (!keyInRegion(start, region)) {
      throw new MrkvError("EpochNotMatch", `region ${peer.regionId} split during the scan`);
    }
    const stop = region.endKey.length === 0
      ? end
      : end === undefined || compareBytes(region.endKey, end) < 0
      ? region.endKey
      : end;
    const kvs: KvPair[] = [];
    let bytes = 0;
    for await (const pair of this.store.engine.iterate(start, stop, limit)) {
      if (Date.now() > until) {
        throw new MrkvError("Timeout", `the scan page was not read within its attempt`);
      }
      kvs.push(pair);
      bytes += pair.key.length + pair.value.length;
      if (bytes >= maxBytes) break;
    }
    this.store.flow.read(region.id, bytes, kvs.length);
    this.store.loadSampler?.record(region.id, start, kvs.at(-1)?.key, bytes);
    return { kvs, region };
  }

  // ---- routed operations (any store) ----

  /**
   * A write through a local follower peer: Raft forwards it to the leader with the next
   * message batch (no extra HTTP request) and it settles when this follower applies it.
   * That costs one more step than forwarding over HTTP (the follower must hear of the commit
   * and apply), so it is used only when the follower is busy: once writes are already
   * outstanding through it, new ones join them and share their batches (measured: +12% writes
   * at concurrency 64; alone, HTTP forwarding halves the latency). Undefined means: forward
   * over HTTP.
   */
  #viaLocalFollower(
    key: Uint8Array,
    value: Uint8Array | null,
    tag: RequestTag,
  ): Promise<void> | undefined {
    const peer = this.#followerFor(key);
    if (!peer) return undefined;
    if (this.#httpForwardsInFlight + peer.forwardedInFlight() < BUSY_FOLLOWER_WRITES) {
      return undefined;
    }
    const p = peer.proposeViaLeader({
      header: {
        regionId: peer.regionId,
        peerId: peer.meta.id,
        epoch: peer.region.epoch,
        request: tag,
      },
      requests: [value === null ? { type: "Delete", key } : { type: "Put", key, value }],
    });
    this.store.schedule(peer);
    this.viaRaft++;
    return p;
  }

  /** Writes being forwarded over HTTP right now (see {@link #viaLocalFollower}). */
  #httpForwardsInFlight = 0;

  async #forwardWrite(
    leader: number,
    key: Uint8Array,
    value: Uint8Array | null,
    tag: RequestTag,
    signal: AbortSignal,
  ): Promise<void> {
    this.#httpForwardsInFlight++;
    try {
      await this.#forwardKv(leader, value === null ? "DELETE" : "PUT", key, signal, value, tag);
    } finally {
      this.#httpForwardsInFlight--;
    }
  }

  async put(key: Uint8Array, value: Uint8Array): Promise<void> {
    await this.#write(key, value);
  }

  async delete(key: Uint8Array): Promise<void> {
    await this.#write(key, null);
  }

  /** A client write: one tag for all its attempts (see the module comment). */
  async #write(key: Uint8Array, value: Uint8Array | null): Promise<void> {
    const tag = newRequestTag();
    await this.#routed(
      key,
      "write",
      () => this.localWrite(key, value, tag),
      async (leader, signal) => {
        await (this.#viaLocalFollower(key, value, tag) ??
          this.#forwardWrite(leader, key, value, tag, signal));
      },
    );
  }

  async get(key: Uint8Array): Promise<Uint8Array | null> {
    return await this.#routed(
      key,
      "read",
      () => this.localGet(key),
      (leader, signal, attempt) =>
        (attempt === 0 ? this.#followerGet(key) : undefined) ??
          this.#forwardKv(leader, "GET", key, signal),
    );
  }

  /**
   * A read served by this store's follower of the key's region (see Peer.followerRead): the
   * leader is asked for a read index in a batched Raft message, instead of being sent the
   * request, so reads spread over all of a region's stores. Only on a request's first attempt: a
   * retry is forwarded, so a follower cut off from its region's progress (or removed from it
   * without knowing yet) cannot hold a read back. Undefined means: forward.
   */
  #followerGet(key: Uint8Array): Promise<Uint8Array | null> | undefined {
    const peer = this.#readableFollower(key);
    if (!peer) return undefined;
    this.followerReads++;
    return this.#getWhen(peer, key, peer.followerRead(true));
  }

  /** A scan page served by this store's follower of the region holding `start` (as a GET). */
  #followerScan(
    start: Uint8Array,
    end: Uint8Array | undefined,
    limit: number,
    maxBytes: number,
    until: number,
  ): Promise<{ kvs: KvPair[]; region: Region }> | undefined {
    const peer = this.#readableFollower(start);
    if (!peer) return undefined;
    this.followerReads++;
    return this.#scanWhen(peer, peer.followerRead(), start, end, limit, maxBytes, until);
  }

  /** This store's follower of the region holding `key`, if follower reads may use it. */
  #readableFollower(key: Uint8Array): Peer | undefined {
    if (!this.followerRead) return undefined;
    const peer = this.#followerFor(key);
    return peer && !peer.mergeState && peer.storage.isInitialized() ? peer : undefined;
  }

  /** This store's live peer of the region holding `key`, if it follows a known leader. */
  #followerFor(key: Uint8Array): Peer | undefined {
    const peer = this.#localPeerFor(key);
    return peer && !peer.isLeader() && peer.leaderId() !== 0 ? peer : undefined;
  }

  /** This store's peer of the region holding `key`, unless it has none or it was destroyed. */
  #localPeerFor(key: Uint8Array): Peer | undefined {
    const region = this.store.meta.regionForKey(key);
    const peer = region ? this.store.peers.get(region.id) : undefined;
    return peer && !peer.destroyed ? peer : undefined;
  }

  /**
   * Scans `[start, end)` across regions, in key order, at most `limit` pairs and about
   * {@link MAX_SCAN_PAGE_BYTES} of data.
   */
  async scan(start: Uint8Array, end: Uint8Array | undefined, limit: number): Promise<ScanPage> {
    const kvs: KvPair[] = [];
    let bytes = 0;
    let cursor = start;
    while (kvs.length < limit) {
      if (end !== undefined && compareBytes(cursor, end) >= 0) return { kvs, next: null };
      const budget = MAX_SCAN_PAGE_BYTES - bytes;
      const part = await this.#routed(
        cursor,
        "read",
        (until) => this.localScanRegion(cursor, end, limit - kvs.length, budget, until),
        (leader, signal, attempt, until) =>
          (attempt === 0
            ? this.#followerScan(cursor, end, limit - kvs.length, budget, until)
            : undefined) ??
            this.#forwardScan(leader, cursor, end, limit - kvs.length, budget, signal),
      );
      kvs.push(...part.kvs);
      for (const p of part.kvs) bytes += p.key.length + p.value.length;
      const regionEnd = part.region.endKey;
      if (kvs.length >= limit || bytes >= MAX_SCAN_PAGE_BYTES) break;
      if (regionEnd.length === 0 || (end !== undefined && compareEndKeys(regionEnd, end) >= 0)) {
        return { kvs, next: null };
      }
      cursor = regionEnd;
    }
    const last = kvs[kvs.length - 1]!.key;
    const next = new Uint8Array(last.length + 1);
    next.set(last);
    return { kvs, next: end !== undefined && compareBytes(next, end) >= 0 ? null : next };
  }

  /**
   * Runs `local` if this store leads the key's region, else `remote` against the leader's
   * store; retries until the deadline. Each attempt waits at most {@link ATTEMPT_MS}, then its
   * forward is aborted. For a write, every retry is safe (its tag makes apply skip a copy that
   * already took effect); what matters is the answer at the end: if any attempt may have taken
   * effect, the write's outcome is unknown.
   */
  async #routed<T>(
    key: Uint8Array,
    kind: "read" | "write",
    /** Called with the attempt's end, after which nobody waits for its result. */
    local: (until: number) => Promise<T>,
    /** `attempt` counts from 0 for the request's first; `until` is the attempt's end. */
    remote: (
      leaderStore: number,
      signal: AbortSignal,
      attempt: number,
      until: number,
    ) => Promise<T>,
  ): Promise<T> {
    const deadline = Date.now() + this.deadlineMs;
    let backoff = 10;
    let lastError: MrkvError | undefined;
    /** Set once an attempt of a write ended without knowing whether it took effect. */
    let unknown = false;
    const fail = (e: MrkvError, attempts: number): MrkvError => {
      if (kind === "write" && unknown) {
        return unknownOutcome(
          `the write may or may not have been applied: gave up after ${attempts} attempts ` +
            `(last: ${e.message})`,
          e.details,
        );
      }
      return e;
    };
    for (let attempt = 0;; attempt++) {
      if (this.store.fatal) {
        throw fail(
          new MrkvError(
            "ServerIsBusy",
            `store ${this.store.storeId} has failed: ${this.store.fatal.message}`,
          ),
          attempt,
        );
      }
      const attemptEnd = Math.min(deadline, Date.now() + ATTEMPT_MS);
      // Ends a forward still in flight when its attempt fails (a timeout). Made only for remote
      // attempts and aborted only on failure: aborting builds a DOMException.
      let abort: AbortController | undefined;
      try {
        const target = await this.#leaderStoreFor(key, attempt > 0, attemptEnd);
        if (target === this.store.storeId) return await withDeadline(local(attemptEnd), attemptEnd);
        if (target === undefined) {
          throw new MrkvError("NoLeader", "the key's region has no leader right now");
        }
        abort = new AbortController();
        return await withDeadline(remote(target, abort.signal, attempt, attemptEnd), attemptEnd);
      } catch (e) {
        abort?.abort();
        const err = e instanceof MrkvError
          ? e
          : unknownOutcome(`the attempt failed: ${(e as Error)?.message ?? String(e)}`);
        if (err.code === "Timeout") unknown = true;
        if (!RETRYABLE.has(err.code) && err.code !== "Timeout") throw fail(err, attempt + 1);
        lastError = err;
      }
      if (Date.now() + backoff > deadline) {
        const last = lastError!;
        throw fail(
          last.code === "NotLeader" || last.code === "NoLeader"
            ? new MrkvError(
              "NoLeader",
              `gave up after ${attempt + 1} attempts: ${last.message}`,
              last.details,
            )
            : new MrkvError(
              last.code,
              `gave up after ${attempt + 1} attempts: ${last.message}`,
              last.details,
            ),
          attempt + 1,
        );
      }
      this.retries++;
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 200);
    }
  }

  /**
   * The store leading the key's region: local knowledge first, then the scheduler (asked with a
   * short timeout; its failure is a plain "no leader known": nothing was sent to any store).
   */
  async #leaderStoreFor(
    key: Uint8Array,
    askScheduler: boolean,
    until: number,
  ): Promise<number | undefined> {
    const peer = this.#localPeerFor(key);
    if (peer) {
      if (peer.isLeader()) return this.store.storeId;
      // The region is needed: a sleeping follower wakes (and wakes its leader), so a dead leader
      // is replaced within an election timeout.
      this.store.schedule(peer);
      const leader = peer.leader();
      if (leader && (!askScheduler || leader.storeId !== this.store.storeId)) return leader.storeId;
    }
    try {
      const pd = this.scheduler.withTimeout(Math.max(1, Math.min(until - Date.now(), 1_000)));
      const { leader } = await pd.getRegion(key);
      return leader?.storeId;
    } catch (e) {
      throw new MrkvError(
        "NoLeader",
        `no leader known locally, and the scheduler did not say: ${(e as Error).message}`,
      );
    }
  }

  async #forwardKv(
    leaderStore: number,
    method: string,
    key: Uint8Array,
    signal: AbortSignal,
    body?: Uint8Array | null,
    tag?: RequestTag,
  ): Promise<Uint8Array | null> {
    this.forwarded++;
    const path = `/kv/${percentEncodeBytes(key)}`;
    const headers: Record<string, string> = { [FORWARDED_HEADER]: "1" };
    if (tag) headers[REQUEST_TAG_HEADER] = encodeTagHeader(tag);
    const res = await this.forward(
      leaderStore,
      new Request(`http://store${path}`, {
        method,
        headers,
        body: (body ?? null) as Uint8Array<ArrayBuffer> | null,
        signal,
      }),
    );
    if (res.status === 204) return null;
    if (res.status === 200) return new Uint8Array(await res.arrayBuffer());
    if (res.status === 404 && method === "GET") {
      const err = await storeError(res);
      if (err.code === "KeyNotFound") return null;
      throw err;
    }
    throw await storeError(res);
  }

  async #forwardScan(
    leaderStore: number,
    start: Uint8Array,
    end: Uint8Array | undefined,
    limit: number,
    maxBytes: number,
    signal: AbortSignal,
  ): Promise<{ kvs: KvPair[]; region: Region }> {
    this.forwarded++;
    const q = new URLSearchParams({
      start: start.toBase64(),
      limit: String(limit),
      encoding: "base64",
      region: "1",
      max_bytes: String(maxBytes),
    });
    if (end !== undefined) q.set("end", end.toBase64());
    const res = await this.forward(
      leaderStore,
      new Request(`http://store/kv?${q}`, { headers: { [FORWARDED_HEADER]: "1" }, signal }),
    );
    if (!res.ok) throw await storeError(res);
    const body = await res.json() as { kvs: { key: string; value: string }[]; region_end: string };
    return {
      kvs: body.kvs.map((kv) => ({
        key: Uint8Array.fromBase64(kv.key),
        value: Uint8Array.fromBase64(kv.value),
      })),
      region: {
        id: 0,
        startKey: start,
        endKey: Uint8Array.fromBase64(body.region_end),
        epoch: { confVer: 0, version: 0 },
        peers: [] as PeerMeta[],
      },
    };
  }
}

/**
 * Settles with `p`, or at `deadline` with an unknown outcome: a proposal whose entry was lost
 * may never be answered by Raft, and a request must not wait for it forever — but the entry may
 * also still commit.
 */
function withDeadline<T>(p: Promise<T>, deadline: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(unknownOutcome("the attempt was not answered in time")),
      Math.max(0, deadline - Date.now()),
    );
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Turns another store's error response back into a region error (a bug there is "busy" here). */
async function storeError(res: Response): Promise<MrkvError> {
  const e = await errorFromResponse(res);
  return e instanceof MrkvError
    ? e
    : new MrkvError("ServerIsBusy", `another store failed: ${e.message}`);
}
