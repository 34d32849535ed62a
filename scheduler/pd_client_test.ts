/** proto's PdClient against the scheduler's app: every method, and errors come back typed. */
import assert from "node:assert/strict";
import { MrkvError } from "../proto/errors.ts";
import { PdClient } from "../proto/pd_client.ts";
import { openTestApp } from "./_test_app.ts";
import { b } from "./_test_cluster.ts";

Deno.test("PdClient drives a store's start-up and turns error responses back into MrkvErrors", async () => {
  const t = await openTestApp();
  const pd = new PdClient("http://scheduler", { fetch: (url, init) => t.app.request(url, init) });
  assert.equal((await pd.isBootstrapped()).bootstrapped, false);
  const storeId = await pd.allocId();
  const { region } = await pd.bootstrap({ id: storeId, address: "127.0.0.1:20161" });
  await assert.rejects(
    pd.bootstrap({ id: 77, address: "127.0.0.1:20177" }),
    (e) =>
      e instanceof MrkvError && e.code === "BadRequest" && e.details.already_bootstrapped === true,
  );
  assert.equal(await pd.putStore({ id: storeId, address: "127.0.0.1:20161" }), t.cluster.clusterId);
  await pd.storeHeartbeat({
    storeId,
    capacity: 1,
    available: 1,
    usedSize: 0,
    regionCount: 1,
    leaderCount: 1,
    sendingSnapCount: 0,
    receivingSnapCount: 0,
    isBusy: false,
  });
  const hb = await pd.regionHeartbeat([{
    region,
    leader: region.peers[0]!,
    pendingPeers: [],
    downPeers: [],
    approximateSize: 0,
    approximateKeys: 0,
  }]);
  assert.deepEqual(hb.results, []);
  assert.equal((await pd.askSplit(region)).newPeerIds.length, 1);
  assert.equal((await pd.askBatchSplit(region, 2)).ids.length, 2);
  assert.equal((await pd.getStore(storeId)).stateName, "Up");
  assert.equal((await pd.getRegion(b("x"))).leader?.storeId, storeId);
  assert.equal((await pd.getRegionById(1)).region.id, 1);
  await assert.rejects(
    pd.getRegionById(999),
    (e) => e instanceof MrkvError && e.code === "RegionNotFound",
  );
  await assert.rejects(
    pd.getStore(999),
    (e) => e instanceof MrkvError && e.code === "StoreNotFound",
  );
  await assert.rejects(pd.allocIds(0), (e) => e instanceof MrkvError && /count/.test(e.message));
  await t.close();
});
