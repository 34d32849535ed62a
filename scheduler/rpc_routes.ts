/**
 * The internal API stores use: `POST /pd/rpc/v1/<method>` with a CBOR body, answered in CBOR
 * (errors in the spec's JSON). Handlers only decode, call the {@link Cluster}, and encode;
 * `proto/pdpb.ts` holds the messages and `docs/scheduler.md` describes each method.
 *
 * @module
 */
import { Hono } from "hono";
import { expectObject } from "../proto/codec.ts";
import { MrkvError } from "../proto/errors.ts";
import {
  type AllocIdResponse,
  type AskBatchSplitResponse,
  type BootstrapResponse,
  type ClusterIdResponse,
  decodeAllocIdRequest,
  decodeAskBatchSplitRequest,
  decodeAskSplitRequest,
  decodeBootstrapRequest,
  decodeGetRegionByIdRequest,
  decodeGetRegionRequest,
  decodeGetStoreRequest,
  decodePutStoreRequest,
  decodeRegionHeartbeatRequest,
  decodeStoreHeartbeatRequest,
  decodeWaitOperatorStepsRequest,
  type GetAllStoresResponse,
  type GetRegionResponse,
  type GetStoreResponse,
  type IsBootstrappedResponse,
  type RegionHeartbeatResponse,
  RPC_PREFIX,
} from "../proto/pdpb.ts";
import type { Cluster } from "./cluster.ts";
import { cborResponse, readCbor } from "./http.ts";
import { type Caller, callerOf, checkCallerIsStore } from "../proto/http_guard.ts";
import {
  checkEpochHandedOut,
  checkHeartbeatFromCaller,
  checkRegionHasCaller,
} from "./rpc_identity.ts";
import type { RegionInfo } from "./region_info.ts";

/** Routes of the internal API, mounted at the app's root. */
export function rpcRoutes(cluster: Cluster): Hono {
  const app = new Hono();
  // Every method gets the authenticated caller: a store may only speak for itself.
  const rpc = <T>(method: string, handle: (body: unknown, caller: Caller) => T | Promise<T>) =>
    app.post(
      `${RPC_PREFIX}/${method}`,
      async (c) => cborResponse(await handle(await readCbor(c), callerOf(c))),
    );

  rpc("bootstrap", async (body, caller): Promise<BootstrapResponse> => {
    const { store } = decodeBootstrapRequest(body);
    checkCallerIsStore(caller, store.id, "bootstrap");
    return await cluster.bootstrap(store);
  });
  rpc("is_bootstrapped", (body): IsBootstrappedResponse => {
    expectObject(body, "body");
    return { clusterId: cluster.clusterId, bootstrapped: cluster.bootstrapped };
  });
  rpc("alloc_id", async (body): Promise<AllocIdResponse> => {
    const { count } = decodeAllocIdRequest(body);
    return { firstId: await cluster.allocIds(count), count };
  });
  // Only the store itself may register or move its address: the request must be
  // authenticated as that store.
  rpc("put_store", async (body, caller): Promise<ClusterIdResponse> => {
    const { store } = decodePutStoreRequest(body);
    checkCallerIsStore(caller, store.id, "put_store");
    await cluster.putStore(store);
    return { clusterId: cluster.clusterId };
  });
  rpc("store_heartbeat", (body, caller): ClusterIdResponse => {
    const { stats } = decodeStoreHeartbeatRequest(body);
    checkCallerIsStore(caller, stats.storeId, "store_heartbeat");
    cluster.handleStoreHeartbeat(stats);
    return { clusterId: cluster.clusterId };
  });
  rpc("region_heartbeat", (body, caller): RegionHeartbeatResponse => {
    const { heartbeats } = decodeRegionHeartbeatRequest(body);
    for (const hb of heartbeats) {
      checkHeartbeatFromCaller(hb, caller);
      checkEpochHandedOut(hb.region, cluster.ids.highWaterMark);
    }
    return { results: cluster.handleRegionHeartbeats(heartbeats) };
  });
  // A store's long poll for operator steps pushed as soon as they are made (step_push.ts).
  rpc("wait_operator_steps", async (body, caller): Promise<RegionHeartbeatResponse> => {
    const { storeId, waitMs } = decodeWaitOperatorStepsRequest(body);
    checkCallerIsStore(caller, storeId, "wait_operator_steps");
    cluster.getStore(storeId);
    return { results: await cluster.outbox.wait(storeId, waitMs) };
  });
  rpc("ask_split", async (body, caller) => {
    const { region } = decodeAskSplitRequest(body);
    checkRegionHasCaller(region, caller);
    const [id] = await cluster.askBatchSplit(region, 1);
    return id!;
  });
  rpc("ask_batch_split", async (body, caller): Promise<AskBatchSplitResponse> => {
    const req = decodeAskBatchSplitRequest(body);
    checkRegionHasCaller(req.region, caller);
    return { ids: await cluster.askBatchSplit(req.region, req.splitCount) };
  });
  rpc("get_store", (body): GetStoreResponse => {
    const s = cluster.getStore(decodeGetStoreRequest(body).storeId);
    return { store: s.meta, stateName: cluster.stateName(s) };
  });
  rpc("get_all_stores", (): GetAllStoresResponse => ({
    stores: cluster.stores().map((s) => ({ store: s.meta, stateName: cluster.stateName(s) })),
  }));
  const regionResponse = (r: RegionInfo): GetRegionResponse => ({
    region: r.meta,
    leader: r.leader,
  });
  rpc(
    "get_region",
    (body) => regionResponse(cluster.getRegionByKey(decodeGetRegionRequest(body).key)),
  );
  rpc(
    "get_region_by_id",
    (body) => regionResponse(cluster.getRegion(decodeGetRegionByIdRequest(body).regionId)),
  );
  app.all(`${RPC_PREFIX}/*`, (c) => {
    throw new MrkvError("NotFound", `no internal method ${c.req.method} ${c.req.path}`);
  });
  return app;
}
