/**
 * The KV service behind the KV API: any store accepts any key.
 *
 * A request is routed to the region holding its key. If this store leads that region, the
 * command is proposed here (writes answer once applied; reads go through ReadIndex and then the
 * local engine). Otherwise it is forwarded once to the store that leads the region — as known
 * locally, else as the scheduler last heard. A forwarded request is never forwarded again.
 * Region errors (`NotLeader`, `EpochNotMatch`, `KeyNotInRegion`, `StaleCommand`,
 * `RegionNotFound`, `NoLeader`) are retried here with a short backoff until the deadline, so
 * clients see them only if the cluster cannot settle in time.
 *
 * @module
 */
import { percentEncodeBytes } from "../proto/codec.ts";
import { errorFromResponse, MrkvError } from "../proto/errors.ts";
import {
  compareBytes,
  compareEndKeys,
  keyInRegion,
  type Peer as PeerMeta,
  type Region,
} from "../proto/metapb.ts";
import type { Peer } from "./peer.ts";
import type { PdClient } from "../proto/pd_client.ts";
import type { Store } from "./store.ts";

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

/** Header marking a request forwarded by another store (it must be served locally). */
export const FORWARDED_HEADER = "x-mrkv-forwarded";

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
  /** Requests forwarded and retried, for metrics. */
  forwarded = 0;
  retries = 0;
  /** Writes proposed on a local follower and forwarded by Raft. */
  viaRaft = 0;

  constructor(
    readonly store: Store,
    readonly scheduler: PdClient,
    readonly forward: ForwardFn,
    readonly deadlineMs = REQUEST_DEADLINE_MS,
  ) {}

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

  async localWrite(key: Uint8Array, value: Uint8Array | null): Promise<void> {
    const peer = this.localLeaderFor(key);
    const p = peer.propose({
      header: { regionId: peer.regionId, peerId: peer.meta.id, epoch: peer.region.epoch },
      requests: [value === null ? { type: "Delete", key } : { type: "Put", key, value }],
    });
    this.store.schedule(peer);
    await this.store.metrics.time(this.store.metrics.proposeApply, p);
  }

  async localGet(key: Uint8Array): Promise<Uint8Array | null> {
    const peer = this.localLeaderFor(key);
    const epoch = peer.region.epoch;
    const ready = peer.read();
    this.store.schedule(peer);
    await ready;
    // A split applied while we waited may have moved the key to another region.
    if (peer.region.epoch.version !== epoch.version && !keyInRegion(key, peer.region)) {
      throw new MrkvError("EpochNotMatch", `region ${peer.regionId} split during the read`);
    }
    const value = await this.store.engine.get(key);
    if (value) this.store.flow.read(peer.regionId, key.length + value.length);
    return value;
  }

  /** Scans `[start, end)` within the local region holding `start`; returns the region too. */
  async localScanRegion(
    start: Uint8Array,
    end: Uint8Array | undefined,
    limit: number,
  ): Promise<{ kvs: KvPair[]; region: Region }> {
    const peer = this.localLeaderFor(start);
    const ready = peer.read();
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
    const kvs = await this.store.engine.scan(start, stop, limit);
    this.store.flow.read(region.id, kvs.reduce((n, p) => n + p.key.length + p.value.length, 0));
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
  #viaLocalFollower(key: Uint8Array, value: Uint8Array | null): Promise<void> | undefined {
    const region = this.store.meta.regionForKey(key);
    const peer = region ? this.store.peers.get(region.id) : undefined;
    if (!peer || peer.destroyed || peer.isLeader() || peer.leaderId() === 0) return undefined;
    if (this.#httpForwardsInFlight + peer.forwardedInFlight() < BUSY_FOLLOWER_WRITES) {
      return undefined;
    }
    const p = peer.proposeViaLeader({
      header: { regionId: peer.regionId, peerId: peer.meta.id, epoch: peer.region.epoch },
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
    method: string,
    key: Uint8Array,
    value?: Uint8Array,
  ): Promise<void> {
    this.#httpForwardsInFlight++;
    try {
      await this.#forwardKv(leader, method, key, value);
    } finally {
      this.#httpForwardsInFlight--;
    }
  }

  async put(key: Uint8Array, value: Uint8Array): Promise<void> {
    await this.#routed(key, () => this.localWrite(key, value), async (leader) => {
      await (this.#viaLocalFollower(key, value) ?? this.#forwardWrite(leader, "PUT", key, value));
    });
  }

  async delete(key: Uint8Array): Promise<void> {
    await this.#routed(key, () => this.localWrite(key, null), async (leader) => {
      await (this.#viaLocalFollower(key, null) ?? this.#forwardWrite(leader, "DELETE", key));
    });
  }

  async get(key: Uint8Array): Promise<Uint8Array | null> {
    return await this.#routed(key, () => this.localGet(key), async (leader) => {
      const res = await this.#forwardKv(leader, "GET", key);
      return res;
    });
  }

  /** Scans `[start, end)` across regions, in key order, at most `limit` pairs. */
  async scan(start: Uint8Array, end: Uint8Array | undefined, limit: number): Promise<ScanPage> {
    const kvs: KvPair[] = [];
    let cursor = start;
    while (kvs.length < limit) {
      if (end !== undefined && compareBytes(cursor, end) >= 0) return { kvs, next: null };
      const part = await this.#routed(
        cursor,
        () => this.localScanRegion(cursor, end, limit - kvs.length),
        (leader) => this.#forwardScan(leader, cursor, end, limit - kvs.length),
      );
      kvs.push(...part.kvs);
      const regionEnd = part.region.endKey;
      if (kvs.length >= limit) break;
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
   * store; retries region errors until the deadline.
   */
  async #routed<T>(
    key: Uint8Array,
    local: () => Promise<T>,
    remote: (leaderStore: number) => Promise<T>,
  ): Promise<T> {
    const deadline = Date.now() + this.deadlineMs;
    let backoff = 10;
    let lastError: MrkvError | undefined;
    for (let attempt = 0;; attempt++) {
      if (this.store.fatal) {
        throw new MrkvError(
          "ServerIsBusy",
          `store ${this.store.storeId} has failed: ${this.store.fatal.message}`,
        );
      }
      try {
        const target = await this.#leaderStoreFor(key, attempt > 0);
        // One attempt waits at most ATTEMPT_MS: Puts and Deletes are idempotent, so a retry
        // after a lost proposal is safe, and much faster than waiting out the whole deadline.
        const attemptEnd = Math.min(deadline, Date.now() + ATTEMPT_MS);
        if (target === this.store.storeId) return await withDeadline(local(), attemptEnd);
        if (target === undefined) {
          throw new MrkvError("NoLeader", "the key's region has no leader right now");
        }
        this.forwarded++;
        return await withDeadline(remote(target), attemptEnd);
      } catch (e) {
        if (!(e instanceof MrkvError) || !(RETRYABLE.has(e.code) || e.code === "Timeout")) throw e;
        lastError = e;
      }
      if (Date.now() + backoff > deadline) {
        throw new MrkvError(
          lastError.code === "NotLeader" || lastError.code === "NoLeader" ? "NoLeader" : "Timeout",
          `gave up after ${attempt + 1} attempts: ${lastError.message}`,
          lastError.details,
        );
      }
      this.retries++;
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 200);
    }
  }

  /** The store leading the key's region: local knowledge first, then the scheduler. */
  async #leaderStoreFor(key: Uint8Array, askScheduler: boolean): Promise<number | undefined> {
    const region = this.store.meta.regionForKey(key);
    const peer = region ? this.store.peers.get(region.id) : undefined;
    if (peer && !peer.destroyed) {
      if (peer.isLeader()) return this.store.storeId;
      const leader = peer.leader();
      if (leader && (!askScheduler || leader.storeId !== this.store.storeId)) return leader.storeId;
    }
    const { leader } = await this.scheduler.getRegion(key);
    return leader?.storeId;
  }

  async #forwardKv(
    leaderStore: number,
    method: string,
    key: Uint8Array,
    body?: Uint8Array,
  ): Promise<Uint8Array | null> {
    const path = `/kv/${percentEncodeBytes(key)}`;
    const res = await this.forward(
      leaderStore,
      new Request(`http://store${path}`, {
        method,
        headers: { [FORWARDED_HEADER]: "1" },
        body: (body ?? null) as Uint8Array<ArrayBuffer> | null,
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
  ): Promise<{ kvs: KvPair[]; region: Region }> {
    const q = new URLSearchParams({
      start: start.toBase64(),
      limit: String(limit),
      encoding: "base64",
      region: "1",
    });
    if (end !== undefined) q.set("end", end.toBase64());
    const res = await this.forward(
      leaderStore,
      new Request(`http://store/kv?${q}`, { headers: { [FORWARDED_HEADER]: "1" } }),
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
 * Settles with `p`, or with a retryable `Timeout` at `deadline`: a proposal whose entry was lost
 * may never be answered by Raft, and a request must not wait for it forever.
 */
function withDeadline<T>(p: Promise<T>, deadline: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new MrkvError("Timeout", "the request was not answered before its deadline")),
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
