/** The admin API exactly as docs/api.md lists it, in-process through `app.request()`. */
import assert from "node:assert/strict";
import { admin, openTestApp, type TestApp } from "./_test_app.ts";
import { heartbeat, region, voter } from "./_test_cluster.ts";
import { emptyStoreStats } from "./_mock_cluster.ts";

async function withCluster(): Promise<TestApp> {
  const t = await openTestApp();
  for (const id of [1, 2, 3, 4]) {
    await t.cluster.putStore({ id, address: `127.0.0.1:${20160 + id}` });
  }
  t.cluster.handleStoreHeartbeat({
    storeId: 1,
    capacity: 10,
    available: 5,
    usedSize: 5,
    regionCount: 0,
    leaderCount: 0,
    sendingSnapCount: 0,
    receivingSnapCount: 0,
    isBusy: false,
  });
  t.cluster.handleRegionHeartbeat(
    heartbeat(
      region(10, "", "m", { confVer: 3, version: 2 }, [voter(11, 1), voter(12, 2), voter(13, 3)]),
      { approximateSize: 5 << 20 },
    ),
  );
  t.cluster.handleRegionHeartbeat(
    heartbeat(
      region(20, "m", new Uint8Array([0x6e, 0xff]), { confVer: 1, version: 2 }, [voter(21, 1)]),
    ),
  );
  t.cluster.handleRegionHeartbeat(
    heartbeat(
      region(30, new Uint8Array([0x6e, 0xff]), "", { confVer: 1, version: 2 }, [voter(31, 2)]),
    ),
  );
  return t;
}

Deno.test("stores: list and one, with state and status", async () => {
  const t = await withCluster();
  const all = await admin(t.app, "GET", "/stores");
  assert.equal(all.status, 200);
  assert.equal(all.json.count, 4);
  const s1 = all.json.stores[0];
  assert.deepEqual(s1.store, { id: 1, address: "127.0.0.1:20161", state_name: "Up" });
  assert.equal(s1.status.region_count, 2);
  assert.equal(s1.status.leader_count, 2);
  assert.equal(s1.status.region_size, 6);
  assert.equal(typeof s1.status.last_heartbeat_ts, "string");
  assert.equal(all.json.stores[3].status.last_heartbeat_ts, null, "never heard from");
  assert.deepEqual((await admin(t.app, "GET", "/store/2")).json.store.id, 2);
  assert.equal((await admin(t.app, "GET", "/store/77")).json.error.code, "StoreNotFound");
  assert.equal((await admin(t.app, "GET", "/store/abc")).status, 400);
  const off = await admin(t.app, "DELETE", "/store/4");
  assert.equal(off.json.store.state_name, "Offline");
  await t.close();
});

Deno.test("regions: list, by id, by key; non-UTF-8 keys come back hex-encoded", async () => {
  const t = await withCluster();
  const all = await admin(t.app, "GET", "/regions");
  assert.equal(all.json.count, 3);
  const r10 = all.json.regions[0];
  assert.equal(r10.id, 10);
  assert.equal(r10.start_key, "");
  assert.equal(r10.end_key, "m");
  assert.deepEqual(r10.epoch, { conf_ver: 3, version: 2 });
  assert.deepEqual(r10.peers.map((p: { id: number; store_id: number }) => [p.id, p.store_id]), [
    [11, 1],
    [12, 2],
    [13, 3],
  ]);
  assert.deepEqual([r10.leader.id, r10.leader.store_id], [11, 1]);
  assert.equal(r10.approximate_size, 5);
  assert.equal(all.json.regions[1].end_key_hex, "6eff");
  assert.equal(all.json.regions[2].start_key_hex, "6eff");
  assert.equal((await admin(t.app, "GET", "/region/id/20")).json.id, 20);
  assert.equal((await admin(t.app, "GET", "/region/key/a")).json.id, 10);
  assert.equal((await admin(t.app, "GET", "/region/key/n%ff%00")).json.id, 30);
  assert.equal((await admin(t.app, "GET", "/region/key/n")).json.id, 20);
  assert.equal((await admin(t.app, "GET", "/region/id/999")).json.error.code, "RegionNotFound");
  assert.equal((await admin(t.app, "GET", "/region/key/%zz")).status, 400);
  await t.close();
});

Deno.test("operators: each kind is accepted with 201, shown, cancelled; impossible ones are refused", async () => {
  const t = await withCluster();
  const post = (body: unknown) => admin(t.app, "POST", "/operators", body);
  const tl = await post({ name: "transfer-leader", region_id: 10, to_store_id: 2 });
  assert.equal(tl.status, 201);
  assert.equal(tl.json.steps[0].type, "TransferLeader");
  assert.equal(tl.json.status, "Created");
  assert.equal((await admin(t.app, "GET", "/operators/10")).json.desc, "admin-transfer-leader");
  assert.equal(
    (await post({ name: "add-peer", region_id: 10, store_id: 2 })).status,
    400,
    "peer already there (and an admin op is running)",
  );
  const del = await admin(t.app, "DELETE", "/operators/10");
  assert.equal(del.json.status, "Cancelled");
  assert.equal((await admin(t.app, "DELETE", "/operators/10")).status, 404);
  assert.equal(
    (await admin(t.app, "GET", "/operators/10")).json.status,
    "Cancelled",
    "the last ended one",
  );

  const add = await post({ name: "add-peer", region_id: 20, store_id: 2 });
  assert.deepEqual(add.json.steps.map((s: { type: string }) => s.type), [
    "AddLearner",
    "PromoteLearner",
  ]);
  await admin(t.app, "DELETE", "/operators/20");
  const rm = await post({ name: "remove-peer", region_id: 10, store_id: 1 });
  assert.deepEqual(rm.json.steps.map((s: { type: string }) => s.type), [
    "TransferLeader",
    "RemovePeer",
  ]);
  await admin(t.app, "DELETE", "/operators/10");
  const tr = await post({ name: "transfer-region", region_id: 10, to_store_ids: [2, 3, 4] });
  assert.deepEqual(tr.json.steps.map((s: { type: string }) => s.type), [
    "AddLearner",
    "PromoteLearner",
    "TransferLeader",
    "RemovePeer",
  ]);
  await admin(t.app, "DELETE", "/operators/10");
  const sp = await post({ name: "split-region", region_id: 10, keys: ["c", "f"] });
  assert.equal(sp.json.steps[0].keys.length, 2);
  await admin(t.app, "DELETE", "/operators/10");
  assert.equal(
    (await post({ name: "split-region", region_id: 10 })).status,
    201,
    "no keys: midpoint",
  );
  await admin(t.app, "DELETE", "/operators/10");

  const refuse = async (body: unknown, status: number, re: RegExp) => {
    const r = await post(body);
    assert.equal(r.status, status, JSON.stringify(r.json));
    assert.match(r.json.error.message, re);
  };
  await refuse({ name: "remove-peer", region_id: 20, store_id: 1 }, 400, /last peer/);
  await refuse({ name: "add-peer", region_id: 999, store_id: 2 }, 404, /region 999/);
  await refuse({ name: "add-peer", region_id: 10, store_id: 999 }, 404, /store 999/);
  await refuse({ name: "add-peer", region_id: 10, store_id: 1 }, 400, /already has a peer/);
  await refuse(
    { name: "transfer-leader", region_id: 10, to_store_id: 4 },
    400,
    /no peer on store 4/,
  );
  await refuse({ name: "split-region", region_id: 10, keys: ["z"] }, 400, /inside region/);
  await refuse({ name: "split-region", region_id: 20 }, 400, /last reported empty/);
  // Store 3 misses heartbeats past store-disconnect-time: it is no target for anything.
  t.clock.advance(t.cluster.config.storeDisconnectTime + 1);
  for (const id of [1, 2, 4]) t.cluster.handleStoreHeartbeat(emptyStoreStats(id));
  await refuse(
    { name: "transfer-leader", region_id: 10, to_store_id: 3 },
    400,
    /store 3 is Disconnected and cannot take leadership/,
  );
  await refuse({ name: "add-peer", region_id: 20, store_id: 3 }, 400, /store 3 is Disconnected/);
  await refuse({ name: "merge-region", region_id: 10 }, 400, /supports region merge/);
  await refuse({ name: "bogus", region_id: 10 }, 400, /unknown operator/);
  await refuse({ region_id: 10 }, 400, /name must be a string/);
  await admin(t.app, "DELETE", "/store/4");
  await refuse({ name: "add-peer", region_id: 20, store_id: 4 }, 400, /Offline/);
  assert.ok((await admin(t.app, "GET", "/operators/records")).json.count >= 6);
  assert.equal((await admin(t.app, "GET", "/operators")).json.count, 0);
  await t.close();
});

Deno.test("schedulers can be listed, removed and added back; config is read and changed", async () => {
  const t = await withCluster();
  assert.deepEqual((await admin(t.app, "GET", "/schedulers")).json, [
    "balance-region-scheduler",
    "balance-leader-scheduler",
    "hot-region-scheduler",
  ]);
  assert.equal((await admin(t.app, "DELETE", "/schedulers/balance-region-scheduler")).status, 200);
  assert.equal((await admin(t.app, "DELETE", "/schedulers/balance-region-scheduler")).status, 404);
  assert.deepEqual((await admin(t.app, "GET", "/schedulers")).json, [
    "balance-leader-scheduler",
    "hot-region-scheduler",
  ]);
  assert.equal(
    (await admin(t.app, "POST", "/schedulers", { name: "balance-region-scheduler" })).status,
    201,
  );
  assert.equal(
    (await admin(t.app, "POST", "/schedulers", { name: "balance-region-scheduler" })).status,
    400,
  );
  assert.equal((await admin(t.app, "POST", "/schedulers", { name: "shuffle" })).status, 400);

  const cfg = await admin(t.app, "GET", "/config");
  assert.equal(cfg.json.max_replicas, 3);
  const changed = await admin(t.app, "POST", "/config", {
    max_replicas: 5,
    max_store_down_time: "10m",
  });
  assert.equal(changed.json.max_replicas, 5);
  assert.equal(changed.json.max_store_down_time, 600_000);
  assert.equal(t.cluster.config.maxReplicas, 5);
  assert.equal((await admin(t.app, "POST", "/config", { max_replicas: 0 })).status, 400);
  assert.equal((await admin(t.app, "POST", "/config", { bogus: 1 })).status, 400);
  assert.equal(t.cluster.config.maxReplicas, 5, "a refused change changes nothing");
  await t.close();
});

Deno.test("/status and /metrics", async () => {
  const t = await withCluster();
  const st = await (await t.app.request("/status")).json();
  assert.equal(st.role, "scheduler");
  assert.equal(st.healthy, true);
  const m = await (await t.app.request("/metrics")).text();
  assert.match(m, /^mrkv_scheduler_region_heartbeats_total 3$/m);
  assert.match(m, /^mrkv_scheduler_stores\{state="Up"\} 4$/m);
  await t.close();
});
