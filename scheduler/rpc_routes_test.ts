/** The internal API as a store uses it: bootstrap, IDs, registration, heartbeats, splits, lookups. */
import assert from "node:assert/strict";
import { encodeCbor } from "../proto/codec.ts";
import {
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
} from "../proto/pdpb.ts";
import { admin, openTestApp, rpc, rpcRaw } from "./_test_app.ts";
import { b } from "./_test_cluster.ts";

const stats = (storeId: number) => ({
  storeId,
  capacity: 1 << 30,
  available: 1 << 29,
  usedSize: 1 << 29,
  regionCount: 1,
  leaderCount: 1,
});

Deno.test("a store's life: bootstrap once, register, heartbeat, receive steps, split, look up", async () => {
  const t = await openTestApp();
  const { app } = t;
  const boot0 = decodeIsBootstrappedResponse(await rpc(app, "is_bootstrapped"));
  assert.equal(boot0.bootstrapped, false);
  assert.equal(boot0.clusterId, t.cluster.clusterId);

  const { firstId: storeId } = decodeAllocIdResponse(await rpc(app, "alloc_id", { count: 1 }));
  assert.ok(storeId >= 2, "ID 1 is reserved for the first region");
  const boot = decodeBootstrapResponse(
    await rpc(app, "bootstrap", { store: { id: storeId, address: "127.0.0.1:20161" } }),
  );
  assert.equal(boot.region.id, 1);
  assert.deepEqual(boot.region.startKey, new Uint8Array());
  assert.deepEqual(boot.region.endKey, new Uint8Array());
  assert.equal(boot.region.peers.length, 1);
  assert.equal(boot.region.peers[0]!.storeId, storeId);

  const again = await rpcRaw(
    app,
    "bootstrap",
    encodeCbor({ store: { id: 99, address: "127.0.0.1:20199" } }),
  );
  assert.equal(again.status, 400);
  const err = await again.json();
  assert.equal(err.error.code, "BadRequest");
  assert.equal(err.error.already_bootstrapped, true);
  assert.equal(decodeIsBootstrappedResponse(await rpc(app, "is_bootstrapped")).bootstrapped, true);

  const { firstId: store2 } = decodeAllocIdResponse(await rpc(app, "alloc_id", { count: 1 }));
  decodeClusterIdResponse(
    await rpc(app, "put_store", { store: { id: store2, address: "127.0.0.1:20162" } }),
  );
  for (const id of [storeId, store2]) {
    assert.equal(
      decodeClusterIdResponse(await rpc(app, "store_heartbeat", { stats: stats(id) })).clusterId,
      t.cluster.clusterId,
    );
  }
  const hb = {
    region: boot.region,
    leader: boot.region.peers[0],
    approximateSize: 1 << 20,
    approximateKeys: 10,
  };
  let res = decodeRegionHeartbeatResponse(await rpc(app, "region_heartbeat", { heartbeats: [hb] }));
  assert.deepEqual(res.results, [], "nothing to say: no result");

  // max-replicas 3 but only 2 stores: the replica checker adds a learner on the second store.
  await t.coordinator.tick();
  res = decodeRegionHeartbeatResponse(await rpc(app, "region_heartbeat", { heartbeats: [hb] }));
  const step = res.results[0]!.step;
  assert.ok(
    step && step.type === "AddLearner" && step.peer.storeId === store2 &&
      step.peer.role === "Learner",
  );
  assert.deepEqual(res.results[0]!.epoch, boot.region.epoch);
  const ops = await admin(app, "GET", "/operators");
  assert.equal(ops.json.count, 1);
  assert.equal(ops.json.operators[0].status, "Running");

  // A stale heartbeat in a batch fails alone.
  const stale = {
    region: { ...boot.region, epoch: { confVer: 0, version: 1 } },
    leader: boot.region.peers[0],
  };
  const other = {
    region: {
      id: 50,
      startKey: b("zz"),
      endKey: new Uint8Array(),
      epoch: { confVer: 9, version: 0 },
      peers: [],
    },
  };
  res = decodeRegionHeartbeatResponse(
    await rpc(app, "region_heartbeat", { heartbeats: [stale, hb] }),
  );
  assert.equal(res.results[0]!.error?.code, "EpochNotMatch");
  assert.equal(res.results[0]!.regionId, 1);
  assert.equal(res.results[1]!.step?.type, "AddLearner", "the fresh one still gets its step");
  res = decodeRegionHeartbeatResponse(await rpc(app, "region_heartbeat", { heartbeats: [other] }));
  assert.equal(
    res.results[0]!.error?.code,
    "EpochNotMatch",
    "region 50 overlaps region 1 with a lower version (conf_ver does not compare across regions)",
  );

  const one = decodeAskSplitResponse(await rpc(app, "ask_split", { region: boot.region }));
  assert.equal(one.newPeerIds.length, 1);
  const many = decodeAskBatchSplitResponse(
    await rpc(app, "ask_batch_split", { region: boot.region, splitCount: 3 }),
  );
  const all = [
    one.newRegionId,
    ...one.newPeerIds,
    ...many.ids.flatMap((x) => [x.newRegionId, ...x.newPeerIds]),
  ];
  assert.equal(new Set(all).size, all.length, "every ID is fresh");
  assert.ok(all.every((id) => id > store2));

  const st = decodeGetStoreResponse(await rpc(app, "get_store", { storeId: store2 }));
  assert.deepEqual(st, { store: { id: store2, address: "127.0.0.1:20162" }, stateName: "Up" });
  const listed = decodeGetAllStoresResponse(await rpc(app, "get_all_stores", {}));
  assert.deepEqual(
    listed.stores.find((x) => x.store.id === store2),
    st,
    "get_all_stores lists each store as get_store does",
  );
  assert.ok(listed.stores.some((x) => x.store.id === storeId));
  const byKey = decodeGetRegionResponse(await rpc(app, "get_region", { key: b("anything") }));
  assert.equal(byKey.region.id, 1);
  assert.equal(byKey.leader?.storeId, storeId);
  assert.equal(
    decodeGetRegionResponse(await rpc(app, "get_region_by_id", { regionId: 1 })).region.id,
    1,
  );

  const missing = await rpcRaw(app, "get_region_by_id", encodeCbor({ regionId: 12345 }));
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, "RegionNotFound");
  const noStore = await rpcRaw(app, "get_store", encodeCbor({ storeId: 12345 }));
  assert.equal((await noStore.json()).error.code, "StoreNotFound");
  const unknown = await rpcRaw(app, "nope", encodeCbor({}));
  assert.equal(unknown.status, 404);
  await t.close();
});

Deno.test("alloc_id batches are contiguous", async () => {
  const t = await openTestApp();
  const a = decodeAllocIdResponse(await rpc(t.app, "alloc_id", { count: 100 }));
  const b2 = decodeAllocIdResponse(await rpc(t.app, "alloc_id", { count: 1 }));
  assert.equal(b2.firstId, a.firstId + 100);
  await t.close();
});

Deno.test("2,000 concurrent region_heartbeat requests all succeed, and the replica checker's steps reach them", async () => {
  const t = await openTestApp();
  for (const id of [1, 2, 3]) {
    await rpc(t.app, "put_store", { store: { id, address: `127.0.1.1:${id}` } });
  }
  const key = (
    i: number,
  ) => (i === 0 || i === 2000 ? new Uint8Array() : b(String(i).padStart(5, " ")));
  const send = (i: number) =>
    rpc(t.app, "region_heartbeat", {
      heartbeats: [{
        region: {
          id: 10 + i,
          startKey: key(i),
          endKey: key(i + 1),
          epoch: { confVer: 1, version: 1 },
          peers: [{ id: 5000 + i, storeId: 1 }],
        },
        leader: { id: 5000 + i, storeId: 1 },
      }],
    }).then(decodeRegionHeartbeatResponse);
  const first = await Promise.all(Array.from({ length: 2000 }, (_, i) => send(i)));
  assert.ok(first.every((r) => r.results.length === 0));
  assert.equal(t.cluster.regions.count, 2000);
  await t.coordinator.tick();
  const second = await Promise.all(Array.from({ length: 2000 }, (_, i) => send(i)));
  const steps = second.flatMap((r) => r.results).filter((x) => x.step?.type === "AddLearner");
  assert.equal(
    steps.length,
    t.cluster.config.replicaScheduleLimit,
    "one step per operator the checker made",
  );
  await t.close();
});

Deno.test("a step the leader reports refusing ends its operator with the reason; a malformed refusal is a 400", async () => {
  const t = await openTestApp();
  for (const id of [1, 2]) {
    await rpc(t.app, "put_store", { store: { id, address: `127.0.1.1:${id}` } });
  }
  const region = {
    id: 10,
    startKey: new Uint8Array(),
    endKey: new Uint8Array(),
    epoch: { confVer: 1, version: 1 },
    peers: [{ id: 11, storeId: 1 }, { id: 12, storeId: 2 }],
  };
  const hb = (extra: Record<string, unknown> = {}) =>
    rpc(t.app, "region_heartbeat", {
      heartbeats: [{ region, leader: { id: 11, storeId: 1 }, ...extra }],
    }).then(decodeRegionHeartbeatResponse);
  await hb();
  const op = await admin(t.app, "POST", "/operators", {
    name: "transfer-leader",
    region_id: 10,
    to_store_id: 2,
  });
  assert.equal(op.status, 201);
  assert.equal((await hb()).results[0]?.step?.type, "TransferLeader");
  const refused = await hb({
    refusedStep: { type: "TransferLeader", reason: "peer 12 was last heard from 5000 ms ago" },
  });
  assert.deepEqual(refused.results, [], "no step any more");
  const ended = await admin(t.app, "GET", "/operators/10");
  assert.equal(ended.json.status, "Cancelled");
  assert.match(ended.json.reason, /leader refused TransferLeader: peer 12 was last heard/);
  const bad = await rpcRaw(
    t.app,
    "region_heartbeat",
    encodeCbor({
      heartbeats: [{ region, leader: region.peers[0], refusedStep: { type: "Merge", reason: "" } }],
    }),
  );
  assert.equal(bad.status, 400);
  assert.match(
    (await bad.json()).error.message,
    /refusedStep.type "Merge" is not an operator step/,
  );
  await t.close();
});
