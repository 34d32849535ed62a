/**
 * Region health: a region that lost a replica, one with a reported down or pending peer, one
 * whose leader's store went silent, counted cluster-wide and per store in `/metrics` and listed
 * by `GET /regions/check/{problem}`.
 */
import assert from "node:assert/strict";
import { emptyStoreStats } from "./_mock_cluster.ts";
import { admin, openTestApp } from "./_test_app.ts";
import { heartbeat, region, voter } from "./_test_cluster.ts";

Deno.test("each problem is counted cluster-wide and per store, and listed by the check route", async () => {
  const t = await openTestApp({ storeDisconnectTime: 2_000 });
  const c = t.cluster;
  for (const id of [1, 2, 3, 4]) await c.putStore({ id, address: `127.0.0.1:${id}` });
  const e = { confVer: 1, version: 1 };
  // 10: healthy. 20: store 2's peer reported down. 30: store 3's peer pending. 40: only two
  // peers. 50: led from store 4, which goes silent.
  c.handleRegionHeartbeat(
    heartbeat(region(10, "", "b", e, [voter(11, 1), voter(12, 2), voter(13, 3)])),
  );
  c.handleRegionHeartbeat(
    heartbeat(region(20, "b", "c", e, [voter(21, 1), voter(22, 2), voter(23, 3)]), {
      downPeers: [{ peer: voter(22, 2), downSeconds: 12 }],
    }),
  );
  c.handleRegionHeartbeat(
    heartbeat(region(30, "c", "d", e, [voter(31, 1), voter(32, 2), voter(33, 3)]), {
      pendingPeers: [voter(33, 3)],
    }),
  );
  c.handleRegionHeartbeat(heartbeat(region(40, "d", "e", e, [voter(41, 1), voter(42, 2)])));
  c.handleRegionHeartbeat(
    heartbeat(region(50, "e", "", e, [voter(51, 4), voter(52, 1), voter(53, 2)])),
  );
  t.clock.advance(2_001);
  for (const id of [1, 2, 3]) c.handleStoreHeartbeat(emptyStoreStats(id));

  const ids = async (problem: string) =>
    (await admin(t.app, "GET", `/regions/check/${problem}`)).json.regions.map(
      (r: { id: number }) => r.id,
    );
  assert.deepEqual(await ids("down-peer"), [20, 50], "reported down, or on a silent store");
  assert.deepEqual(await ids("pending-peer"), [30]);
  assert.deepEqual(await ids("miss-peer"), [20, 30, 40, 50], "fewer than 3 healthy voters");
  assert.deepEqual(await ids("no-leader"), [50], "its leader's store is Disconnected");
  assert.equal((await admin(t.app, "GET", "/regions/check/extra-peer")).status, 404);

  const m = await (await t.app.request("/metrics")).text();
  const gauge = (labels: string) => {
    const line = m.split("\n").find((l) => l.startsWith(`mrkv_scheduler_${labels} `));
    assert.ok(line, `metric ${labels}`);
    return Number(line.split(" ")[1]);
  };
  assert.equal(gauge(`unhealthy_regions{problem="miss_peer"}`), 4);
  assert.equal(gauge(`unhealthy_regions{problem="down_peer"}`), 2);
  assert.equal(gauge(`unhealthy_regions{problem="pending_peer"}`), 1);
  assert.equal(gauge(`unhealthy_regions{problem="no_leader"}`), 1);
  assert.equal(gauge(`store_unhealthy_regions{store="2",problem="down_peer"}`), 1);
  assert.equal(gauge(`store_unhealthy_regions{store="4",problem="down_peer"}`), 1);
  assert.equal(gauge(`store_unhealthy_regions{store="1",problem="down_peer"}`), 0);
  assert.equal(gauge(`store_unhealthy_regions{store="3",problem="pending_peer"}`), 1);
  assert.equal(gauge(`store_unhealthy_regions{store="3",problem="miss_peer"}`), 2, "20 and 30");
  assert.equal(gauge(`store_unhealthy_regions{store="2",problem="no_leader"}`), 1);
  await t.close();
});
