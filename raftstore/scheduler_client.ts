/**
 * The store's client for the scheduler's internal API (`/pd/rpc/v1/*`, CBOR). The `fetch`
 * function is injected so an in-process test cluster can call the scheduler's Hono app
 * directly; in production it is the platform's `fetch`.
 *
 * @module
 */
import { CBOR_CONTENT_TYPE, decodeCbor, encodeCbor } from "../proto/codec.ts";
import { isErrorCode, MrkvError } from "../proto/errors.ts";
import type { Region, Store } from "../proto/metapb.ts";
import {
  type AskBatchSplitResponse,
  type BootstrapResponse,
  decodeAllocIdResponse,
  decodeAskBatchSplitResponse,
  decodeBootstrapResponse,
  decodeGetRegionResponse,
  decodeGetStoreResponse,
  decodeIsBootstrappedResponse,
  decodeRegionHeartbeatResponse,
  type GetRegionResponse,
  type GetStoreResponse,
  type IsBootstrappedResponse,
  type RegionHeartbeat,
  type RegionHeartbeatResponse,
  RPC_PREFIX,
  type StoreStats,
} from "../proto/pdpb.ts";

/** A `fetch`-shaped function. */
export type FetchFn = (input: Request) => Promise<Response>;

const TIMEOUT_MS = 5_000;

/** Calls the scheduler on behalf of one store. */
export class SchedulerClient {
  readonly #base: string;

  constructor(baseUrl: string, readonly fetchFn: FetchFn = (r) => fetch(r)) {
    this.#base = baseUrl.replace(/\/+$/, "");
  }

  async #call<T>(method: string, body: unknown, decode: (v: unknown) => T): Promise<T> {
    const req = new Request(`${this.#base}${RPC_PREFIX}/${method}`, {
      method: "POST",
      headers: { "content-type": CBOR_CONTENT_TYPE },
      body: encodeCbor(body),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    let res: Response;
    try {
      res = await this.fetchFn(req);
    } catch (e) {
      throw new MrkvError("Timeout", `scheduler ${method} failed: ${(e as Error).message}`, {}, {
        cause: e,
      });
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (!res.ok) {
      let code = "Timeout";
      let message = `scheduler ${method} answered ${res.status}`;
      try {
        const err = JSON.parse(new TextDecoder().decode(bytes)).error;
        if (isErrorCode(err?.code)) code = err.code;
        if (typeof err?.message === "string") message = `scheduler ${method}: ${err.message}`;
      } catch { /* not JSON */ }
      throw new MrkvError(isErrorCode(code) ? code : "Timeout", message);
    }
    return decode(decodeCbor(bytes, `scheduler ${method} response`));
  }

  isBootstrapped(): Promise<IsBootstrappedResponse> {
    return this.#call("is_bootstrapped", {}, decodeIsBootstrappedResponse);
  }

  bootstrap(store: Store): Promise<BootstrapResponse> {
    return this.#call("bootstrap", { store }, decodeBootstrapResponse);
  }

  /** `count` fresh IDs; returns the first. */
  async allocId(count = 1): Promise<number> {
    return (await this.#call("alloc_id", { count }, decodeAllocIdResponse)).firstId;
  }

  async putStore(store: Store): Promise<void> {
    await this.#call("put_store", { store }, (v) => v);
  }

  async storeHeartbeat(stats: StoreStats): Promise<void> {
    await this.#call("store_heartbeat", { stats }, (v) => v);
  }

  regionHeartbeat(heartbeats: readonly RegionHeartbeat[]): Promise<RegionHeartbeatResponse> {
    return this.#call("region_heartbeat", { heartbeats }, decodeRegionHeartbeatResponse);
  }

  askBatchSplit(region: Region, splitCount: number): Promise<AskBatchSplitResponse> {
    return this.#call("ask_batch_split", { region, splitCount }, decodeAskBatchSplitResponse);
  }

  getStore(storeId: number): Promise<GetStoreResponse> {
    return this.#call("get_store", { storeId }, decodeGetStoreResponse);
  }

  getRegion(key: Uint8Array): Promise<GetRegionResponse> {
    return this.#call("get_region", { key }, decodeGetRegionResponse);
  }

  getRegionById(regionId: number): Promise<GetRegionResponse> {
    return this.#call("get_region_by_id", { regionId }, decodeGetRegionResponse);
  }
}
