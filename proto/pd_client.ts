/**
 * A typed client for the scheduler's internal API (`/pd/rpc/v1/*`, `docs/scheduler.md`), for
 * stores: one method per route, CBOR in and out, every answer decoded and validated, errors
 * turned back into {@link MrkvError}s.
 *
 * @module
 */
import { CBOR_CONTENT_TYPE, decodeCbor, encodeCbor } from "./codec.ts";
import { errorFromResponse, MrkvError } from "./errors.ts";
import { describeFetchError } from "./fetch_error.ts";
import type { Region, Store } from "./metapb.ts";
import {
  type AllocIdResponse,
  type AskBatchSplitResponse,
  type AskSplitResponse,
  type BootstrapResponse,
  decodeAllocIdResponse,
  decodeAskBatchSplitResponse,
  decodeAskSplitResponse,
  decodeBootstrapResponse,
  decodeClusterIdResponse,
  decodeGetAllStoresResponse,
  decodeGetRegionResponse,
  decodeGetStoreResponse,
  decodeIsBootstrappedResponse,
  decodeRegionHeartbeatResponse,
  type GetAllStoresResponse,
  type GetRegionResponse,
  type GetStoreResponse,
  type IsBootstrappedResponse,
  type RegionHeartbeat,
  type RegionHeartbeatResponse,
  RPC_PREFIX,
  type StoreStats,
} from "./pdpb.ts";

/** How requests are sent: `fetch`, or e.g. a Hono app's `request` in tests. */
export type Fetcher = (url: string, init: RequestInit) => Response | Promise<Response>;

/** Options for {@link PdClient}. */
export interface PdClientOptions {
  /** Defaults to the global `fetch`. */
  readonly fetch?: Fetcher;
  /** Per-request timeout; default 10 s. */
  readonly timeoutMs?: number;
}

/** The scheduler's internal API, from a store's side. */
export class PdClient {
  readonly #fetch: Fetcher;
  readonly #timeoutMs: number;

  /** `baseUrl` is the scheduler's URL, e.g. `http://127.0.0.1:2379`. */
  constructor(readonly baseUrl: string, opts: PdClientOptions = {}) {
    this.#fetch = opts.fetch ?? ((url, init) => fetch(url, init));
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** The same client with another per-request timeout. */
  withTimeout(timeoutMs: number): PdClient {
    return new PdClient(this.baseUrl, { fetch: this.#fetch, timeoutMs });
  }

  async #call<T>(
    method: string,
    body: unknown,
    decode: (v: unknown) => T,
    signal?: AbortSignal,
  ): Promise<T> {
    let res: Response;
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const url = `${this.baseUrl}${RPC_PREFIX}/${method}`;
    try {
      res = await this.#fetch(url, {
        method: "POST",
        body: encodeCbor(body),
        headers: { "content-type": CBOR_CONTENT_TYPE },
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (e) {
      // Unreachable or too slow: a retryable condition for the caller, not a bug.
      const why = describeFetchError(e, url, this.#timeoutMs);
      throw new MrkvError("Timeout", `scheduler ${method}: ${why}`, {}, { cause: e });
    }
    if (!res.ok) throw await errorFromResponse(res);
    return decode(decodeCbor(new Uint8Array(await res.arrayBuffer()), `${method} response`));
  }

  /** Whether a store has bootstrapped the cluster, and the cluster ID. */
  isBootstrapped(): Promise<IsBootstrappedResponse> {
    return this.#call("is_bootstrapped", {}, decodeIsBootstrappedResponse);
  }
  /** Bootstraps with `store`; a loser of a race gets a `BadRequest` with `already_bootstrapped`. */
  bootstrap(store: Store): Promise<BootstrapResponse> {
    return this.#call("bootstrap", { store }, decodeBootstrapResponse);
  }
  /** `count` fresh consecutive IDs. */
  allocIds(count: number): Promise<AllocIdResponse> {
    return this.#call("alloc_id", { count }, decodeAllocIdResponse);
  }
  /** One fresh ID. */
  async allocId(): Promise<number> {
    return (await this.allocIds(1)).firstId;
  }
  /** Registers the store (also after every restart); returns the cluster ID. */
  async putStore(store: Store): Promise<number> {
    return (await this.#call("put_store", { store }, decodeClusterIdResponse)).clusterId;
  }
  /** Reports the store's stats; a `StoreNotFound` means: `putStore` again. */
  async storeHeartbeat(stats: StoreStats): Promise<number> {
    return (await this.#call("store_heartbeat", { stats }, decodeClusterIdResponse)).clusterId;
  }
  /** Reports regions this store leads; the answer lists steps and refusals only. */
  regionHeartbeat(heartbeats: readonly RegionHeartbeat[]): Promise<RegionHeartbeatResponse> {
    return this.#call("region_heartbeat", { heartbeats }, decodeRegionHeartbeatResponse);
  }
  /**
   * Waits up to `waitMs` for operator steps the scheduler pushes to this store (give the client
   * a timeout above `waitMs`); `signal` ends the wait early.
   */
  waitOperatorSteps(
    storeId: number,
    waitMs: number,
    signal?: AbortSignal,
  ): Promise<RegionHeartbeatResponse> {
    return this.#call(
      "wait_operator_steps",
      { storeId, waitMs },
      decodeRegionHeartbeatResponse,
      signal,
    );
  }
  /** IDs for one new region split out of `region`. */
  askSplit(region: Region): Promise<AskSplitResponse> {
    return this.#call("ask_split", { region }, decodeAskSplitResponse);
  }
  /** IDs for `splitCount` new regions split out of `region`. */
  askBatchSplit(region: Region, splitCount: number): Promise<AskBatchSplitResponse> {
    return this.#call("ask_batch_split", { region, splitCount }, decodeAskBatchSplitResponse);
  }
  /** A store's address and state. */
  getStore(storeId: number): Promise<GetStoreResponse> {
    return this.#call("get_store", { storeId }, decodeGetStoreResponse);
  }
  /** Every store the scheduler knows, with its address and state. */
  getAllStores(): Promise<GetAllStoresResponse> {
    return this.#call("get_all_stores", {}, decodeGetAllStoresResponse);
  }
  /** The region holding `key`, with its leader. */
  getRegion(key: Uint8Array): Promise<GetRegionResponse> {
    return this.#call("get_region", { key }, decodeGetRegionResponse);
  }
  /** A region by ID, with its leader. */
  getRegionById(regionId: number): Promise<GetRegionResponse> {
    return this.#call("get_region_by_id", { regionId }, decodeGetRegionResponse);
  }
}
