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
  decodeWaitStepsRequest,
  type GetRegionResponse,
  type GetStoreResponse,
  type IsBootstrappedResponse,
  type RegionHeartbeatResponse,
  RPC_PREFIX,
  type WaitStepsResponse,
} from "../proto/pdpb.ts";
import type { Cluster } from "./cluster.ts";
import { cborResponse, readCbor } from "./http.ts";
import type { RegionInfo } from "./region_info.ts";

/** Routes of the internal API, mounted at the app's root. */
export function rpcRoutes(cluster: Cluster): Hono {
  const app = new Hono();
  const rpc = <T>(method: string, handle: (body: unknown) => T | Promise<T>) =>
    app.post(`${RPC_PREFIX}/${method}`, async (c) => cborResponse(await handle(await readCbor(c))));

  rpc("bootstrap", async (body): Promise<BootstrapResponse> => {
    return await cluster.bootstrap(decodeBootstrapRequest(body).store);
  });
  rpc("is_bootstrapped", (body): IsBootstrappedResponse => {
    expectObject(body, "body");
    return { clusterId: cluster.clusterId, bootstrapped: cluster.bootstrapped };
  });
  rpc("alloc_id", async (body): Promise<AllocIdResponse> => {
    const { count } = decodeAllocIdRequest(body);
    return { firstId: await cluster.allocIds(count), count };
  });
  rpc("put_store", async (body): Promise<ClusterIdResponse> => {
    await cluster.putStore(decodePutStoreRequest(body).store);
    return { clusterId: cluster.clusterId };
  });
  rpc("store_heartbeat", (body): ClusterIdResponse => {
    cluster.handleStoreHeartbeat(decodeStoreHeartbeatRequest(body).stats);
    return { clusterId: cluster.clusterId };
  });
  rpc("region_heartbeat", (body): RegionHeartbeatResponse => {
    return {
      results: cluster.handleRegionHeartbeats(decodeRegionHeartbeatRequest(body).heartbeats),
    };
  });
  rpc("wait_steps", async (body): Promise<WaitStepsResponse> => {
    const req = decodeWaitStepsRequest(body);
    cluster.getStore(req.storeId);
    return { regionIds: await cluster.steps.wait(req.storeId, req.timeoutMs) };
  });
  rpc("ask_split", async (body) => {
    const [id] = await cluster.askBatchSplit(decodeAskSplitRequest(body).region, 1);
    return id!;
  });
  rpc("ask_batch_split", async (body): Promise<AskBatchSplitResponse> => {
    const req = decodeAskBatchSplitRequest(body);
    return { ids: await cluster.askBatchSplit(req.region, req.splitCount) };
  });
  rpc("get_store", (body): GetStoreResponse => {
    const s = cluster.getStore(decodeGetStoreRequest(body).storeId);
    return { store: s.meta, stateName: cluster.stateName(s) };
  });
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
