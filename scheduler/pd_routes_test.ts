/**
 * The PD-shaped read-only routes (cluster, version, health, members, hot regions), `/diagnose`
 * and the drain report of an Offline store, the dashboard's files, `/metrics` in base units, and
 * `405` for a known path under the wrong method — all in-process through `app.request()`.
 */
import assert from "node:assert/strict";
import { admin, openTestApp, type TestApp } from "./_test_app.ts";
import { heartbeat, region, voter } from "./_test_cluster.ts";
import { VERSION } from "../telemetry/mod.ts";

/** Three Up stores and one region with a replica on each, led from store 1. */
async function threeStores(): Promise<TestApp> {
  const t = await openTestApp();
  for (const id of [1, 2, 3]) await t.cluster.putStore({ id, address: `127.0.0.1:${20160 + id}` });
  t.cluster.handleRegionHeartbeat(
    heartbeat(
      region(10, "", "", { confVer: 3, version: 1 }, [voter(11, 1), voter(12, 2), voter(13, 3)]),
    ),
  );
  return t;
}

async function get(t: TestApp, path: string) {
  const res = await t.app.request(path);
  return { status: res.status, json: await res.json() };
}

Deno.test("cluster, version, health and members answer in PD's shape", async () => {
  const t = await threeStores();
  const cluster = await get(t, "/pd/api/v1/cluster");
  assert.deepEqual(cluster.json, { id: t.cluster.clusterId, max_peer_count: 3 });
  assert.deepEqual((await get(t, "/pd/api/v1/version")).json, { version: VERSION });
  const health = (await get(t, "/pd/api/v1/health")).json;
  assert.equal(health.length, 1);
  assert.equal(health[0].health, true);
  assert.deepEqual(health[0].client_urls, ["http://127.0.0.1:2379"]);
  const members = (await get(t, "/pd/api/v1/members")).json;
  assert.equal(members.header.cluster_id, t.cluster.clusterId);
  assert.equal(members.members.length, 1);
  assert.deepEqual(members.leader, members.members[0]);
  const status = (await get(t, "/pd/api/v1/cluster/status")).json;
  assert.deepEqual(status, { is_initialized: false, stores: 3, regions: 1 });
  await t.close();
});

Deno.test("hot regions rank regions by the read and write bytes their leaders report", async () => {
  const t = await threeStores();
  t.cluster.handleRegionHeartbeat(
    heartbeat(
      region(10, "", "", { confVer: 3, version: 1 }, [voter(11, 1), voter(12, 2), voter(13, 3)]),
      {
        flow: {
          bytesWritten: 4000,
          bytesRead: 10_000,
          keysWritten: 200,
          keysRead: 600,
          intervalMs: 2000,
        },
      },
    ),
  );
  const write = (await get(t, "/pd/api/v1/hotspot/regions/write")).json;
  assert.deepEqual(Object.keys(write.as_peer), ["1", "2", "3"], "writes are applied on every peer");
  assert.deepEqual(Object.keys(write.as_leader), ["1"]);
  assert.equal(write.as_leader["1"].total_flow_bytes, 2000);
  assert.deepEqual(write.as_leader["1"].statistics[0], {
    region_id: 10,
    store_id: 1,
    flow_bytes: 2000,
    flow_keys: 100,
    hot_degree: 1,
    is_leader: true,
  });
  assert.equal(write.as_leader["1"].total_flow_keys, 100);
  const read = (await get(t, "/pd/api/v1/hotspot/regions/read")).json;
  assert.deepEqual(Object.keys(read.as_peer), ["1"], "reads are served by the leader");
  assert.equal(read.as_leader["1"].total_flow_bytes, 5000);
  assert.equal((await get(t, "/pd/api/v1/hotspot/regions/sideways")).status, 404);
  const stores = (await get(t, "/pd/api/v1/hotspot/stores")).json;
  assert.deepEqual(stores, {
    bytes_write_stats: { "1": 2000, "2": 2000, "3": 2000 },
    keys_write_stats: { "1": 100, "2": 100, "3": 100 },
    bytes_read_stats: { "1": 5000 },
    keys_read_stats: { "1": 300 },
  });
  const diagnosis = (await get(t, "/pd/api/v1/diagnose")).json;
  const hot = diagnosis.checks.find((c: { name: string }) => c.name === "hot-region-scheduler");
  assert.match(hot.reasons.join("\n"), /write: 1 hot regions; leader load store 1 2.0 KiB\/s/);
  await t.close();
});

Deno.test("an Offline store with nowhere to move its replicas says why, in /store and /diagnose", async () => {
  const t = await threeStores();
  const off = await admin(t.app, "DELETE", "/store/2");
  assert.equal(off.json.store.state_name, "Offline");
  assert.equal(off.json.drain.regions_left, 1);
  assert.match(off.json.drain.blocked, /no Up store without a replica of region 10/);
  const d = (await get(t, "/pd/api/v1/diagnose")).json;
  assert.equal(d.idle, true);
  const replica = d.checks.find((c: { name: string }) => c.name === "replica-checker");
  assert.equal(replica.state, "blocked");
  assert.match(
    replica.reasons[0],
    /^store 2 is offline: no Up store without a replica of region 10/,
  );
  assert.deepEqual(d.drains.map((x: { store_id: number }) => x.store_id), [2]);

  // A fourth store gives the replica somewhere to go: the drain is no longer blocked.
  await t.cluster.putStore({ id: 4, address: "127.0.0.1:20164" });
  const again = await admin(t.app, "GET", "/store/2");
  assert.equal(again.json.drain.blocked, null);
  const up = await admin(t.app, "GET", "/store/1");
  assert.equal(up.json.drain, undefined, "only Offline stores report a drain");
  await t.close();
});

Deno.test("a balanced idle cluster says why nothing moves", async () => {
  const t = await threeStores();
  const d = (await get(t, "/pd/api/v1/diagnose")).json;
  const byName = Object.fromEntries(d.checks.map((c: { name: string }) => [c.name, c]));
  assert.equal(byName["replica-checker"].state, "idle");
  assert.match(byName["replica-checker"].reasons[0], /every region has 3 replicas/);
  assert.match(byName["balance-region-scheduler"].reasons[0], /^balanced: /);
  assert.match(byName["balance-leader-scheduler"].reasons[0], /^balanced: /);
  await t.coordinator.removeScheduler("balance-leader-scheduler");
  const off = (await get(t, "/pd/api/v1/diagnose")).json;
  assert.equal(off.checks[2].state, "disabled");
  await t.close();
});

Deno.test("the dashboard is served at /, /metrics uses base units, wrong methods are 405", async () => {
  const t = await threeStores();
  const page = await t.app.request("/");
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type") ?? "", /text\/html/);
  assert.match(await page.text(), /<script type="module" src="\/dashboard\/app.js">/);
  const js = await t.app.request("/dashboard/app.js");
  assert.match(js.headers.get("content-type") ?? "", /javascript/);
  assert.match(await js.text(), /export async function api\(/);

  const metrics = await (await t.app.request("/metrics")).text();
  assert.match(metrics, /^mrkv_scheduler_store_region_size_bytes\{store="1"\} 0$/m);
  assert.match(metrics, /^mrkv_scheduler_store_regions\{store="1"\} 1$/m);
  assert.match(metrics, /^mrkv_scheduler_operators_running\{kind="admin"\} 0$/m);
  assert.match(metrics, /^# TYPE process_cpu_seconds_total counter$/m);
  assert.match(metrics, /^mrkv_build_info\{version="[^"]+",role="scheduler",/m);
  assert.doesNotMatch(metrics, /_mib\b|_count\{|_count \d/, "no MiB, no _count on gauges");

  const post = await t.app.request("/pd/api/v1/stores", { method: "POST" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET");
  const del = await t.app.request("/pd/api/v1/operators/5", { method: "PUT" });
  assert.equal(del.status, 405);
  assert.equal(del.headers.get("allow"), "GET, DELETE");
  assert.equal((await t.app.request("/pd/api/v1/nothing")).status, 404);
  await t.close();
});
