/**
 * The coordinator over a real cluster map: a Down store's replica is removed then rebuilt on a
 * free store; an Offline store is drained and becomes Tombstone; running operators' influence
 * keeps balance-region from piling moves onto one store; a silent store stops being a target;
 * repair replaces balancing.
 */
import assert from "node:assert/strict";
import type { Peer, Region } from "../proto/metapb.ts";
import type { OperatorStep } from "../proto/pdpb.ts";
import { heartbeat, openTestCluster, region, voter } from "./_test_cluster.ts";
import { Coordinator, LiveView, PATROL_MIN_BATCH, patrolBatch } from "./coordinator.ts";
import { emptyStoreStats, seededRandom } from "./_mock_cluster.ts";
import type { Cluster } from "./cluster.ts";
import { createMovePeerOperator } from "./operator/builder.ts";

const stats = emptyStoreStats;

/** Applies a step to a region the way a store would. */
function apply(r: Region, leader: Peer, step: OperatorStep): [Region, Peer] {
  const bump = (peers: Peer[]): Region => ({
    ...r,
    peers,
    epoch: { ...r.epoch, confVer: r.epoch.confVer + 1 },
  });
  switch (step.type) {
    case "AddLearner":
      return [bump([...r.peers, step.peer]), leader];
    case "PromoteLearner":
      return [bump(r.peers.map((p) => (p.id === step.peer.id ? step.peer : p))), leader];
    case "RemovePeer":
      return [bump(r.peers.filter((p) => p.id !== step.peer.id)), leader];
    case "TransferLeader":
      return [r, step.peer];
    default:
      throw new Error("unexpected step");
  }
}

/** Heartbeats and applies steps until the region's operator is gone. */
function drive(c: Cluster, r: Region, leader: Peer): [Region, Peer] {
  for (let i = 0; i < 10; i++) {
    const res = c.handleRegionHeartbeat(heartbeat(r, { leader }));
    if (!res.step) return [r, leader];
    [r, leader] = apply(r, leader, res.step);
  }
  throw new Error("operator did not finish");
}

Deno.test("a Down store's replica is removed, then rebuilt on a free Up store", async () => {
  const t = await openTestCluster({ maxStoreDownTime: 60_000 });
  const c = t.cluster;
  for (const id of [1, 2, 3, 4]) await c.putStore({ id, address: `127.0.0.1:${id}` });
  let r = region(5, "", "", { confVer: 1, version: 1 }, [voter(51, 1), voter(52, 2), voter(53, 3)]);
  let leader = r.peers[0]!;
  c.handleRegionHeartbeat(heartbeat(r, { leader }));
  const co = new Coordinator(c, []);
  assert.deepEqual(await co.tick(), [], "healthy");
  t.clock.advance(120_000);
  for (const id of [1, 2, 4]) c.handleStoreHeartbeat(stats(id));
  const [remove] = await co.tick();
  assert.equal(remove?.desc, "remove-down-replica");
  [r, leader] = drive(c, r, leader);
  assert.deepEqual(r.peers.map((p) => p.storeId), [1, 2]);
  const [add] = await co.tick();
  assert.equal(add?.desc, "make-up-replica");
  [r, leader] = drive(c, r, leader);
  assert.deepEqual(r.peers.map((p) => p.storeId), [1, 2, 4]);
  assert.equal(c.operators.history().at(-1)?.status, "Finished");
  await t.close();
});

Deno.test("an Offline store is drained, leader first, then becomes Tombstone", async () => {
  const t = await openTestCluster();
  const c = t.cluster;
  for (const id of [1, 2, 3, 4]) await c.putStore({ id, address: `127.0.0.1:${id}` });
  let r = region(5, "", "", { confVer: 1, version: 1 }, [voter(51, 1), voter(52, 2), voter(53, 3)]);
  let leader = r.peers[0]!;
  c.handleRegionHeartbeat(heartbeat(r, { leader }));
  await c.setStoreState(1, "Offline");
  const co = new Coordinator(c, []);
  const [op] = await co.tick();
  assert.equal(op?.desc, "replace-offline-replica");
  [r, leader] = drive(c, r, leader);
  assert.deepEqual(r.peers.map((p) => p.storeId).sort(), [2, 3, 4]);
  assert.equal(leader.storeId, 4);
  await co.tick();
  assert.equal(c.getStore(1).state, "Tombstone");
  await t.close();
});

Deno.test("running operators' influence is counted, so balance-region stops once the moves under way suffice", async () => {
  const t = await openTestCluster({ maxReplicas: 1 });
  const c = t.cluster;
  for (const id of [1, 2]) await c.putStore({ id, address: `127.0.0.1:${id}` });
  for (let i = 0; i < 8; i++) {
    const r = region(10 + i, String(i), String(i + 1), { confVer: 1, version: 1 }, [
      voter(100 + i, 1),
    ]);
    c.handleRegionHeartbeat(heartbeat(r, { approximateSize: 10 << 20 }));
  }
  await c.ids.reserve(16);
  const view = new LiveView(c, seededRandom(1));
  assert.deepEqual(view.stores().map((s) => s.regionSize), [80, 0]);
  const co = new Coordinator(c, ["balance-region-scheduler"], seededRandom(1));
  assert.equal((await co.tick()).length, 1);
  assert.deepEqual(
    new LiveView(c).stores().map((s) => s.regionSize),
    [70, 10],
    "the running move counts",
  );
  assert.equal((await co.tick()).length, 1);
  assert.equal((await co.tick()).length, 1);
  assert.deepEqual(new LiveView(c).stores().map((s) => s.regionSize), [50, 30]);
  assert.equal((await co.tick()).length, 0, "50/30 differ by only twice a region: nothing more");
  assert.equal(c.operators.running().length, 3);
  await t.close();
});

Deno.test("a store that stops heartbeating is Disconnected within store-disconnect-time: operators toward it are cancelled and no new one targets it", async () => {
  const t = await openTestCluster({ storeDisconnectTime: 2_000, leaderScheduleLimit: 8 });
  const c = t.cluster;
  for (const id of [1, 2, 3, 4]) await c.putStore({ id, address: `127.0.0.1:${id}` });
  const heartbeatAll = (ids: number[]) => ids.forEach((id) => c.handleStoreHeartbeat(stats(id)));
  heartbeatAll([1, 2, 3, 4]);
  // Six regions led from store 1, each with a follower on store 4: balance-leader wants to move
  // leaders to 4 (it leads nothing).
  const regions = Array.from(
    { length: 6 },
    (_, i) =>
      region(10 + i, `a${i}`, `a${i + 1}`, { confVer: 1, version: 1 }, [
        voter(100 + 3 * i, 1),
        voter(101 + 3 * i, i % 2 === 0 ? 2 : 3),
        voter(102 + 3 * i, 4),
      ]),
  );
  // Stores 2 and 3 lead three regions each, so store 4 is the one that leads fewest.
  const others = Array.from(
    { length: 6 },
    (_, i) =>
      region(20 + i, `b${i}`, `b${i + 1}`, { confVer: 1, version: 1 }, [
        voter(200 + 3 * i, i < 3 ? 2 : 3),
        voter(201 + 3 * i, 1),
        voter(202 + 3 * i, i < 3 ? 3 : 2),
      ]),
  );
  for (const r of [...regions, ...others]) c.handleRegionHeartbeat(heartbeat(r));
  const co = new Coordinator(c, ["balance-leader-scheduler"]);
  const first = [...await co.tick(), ...await co.tick(), ...await co.tick()];
  const toFour = first.filter((op) => op.targetStores().includes(4));
  assert.equal(toFour.length, 3, "store 4 is Up: leaders move to it");
  // Store 4 dies: the others keep heartbeating.
  t.clock.advance(1_000);
  heartbeatAll([1, 2, 3]);
  t.clock.advance(1_001);
  heartbeatAll([1, 2, 3]);
  assert.equal(c.stateName(c.getStore(4)), "Disconnected");
  const moved = regions.find((r) => r.id === toFour[0]!.regionId)!;
  const hb = c.handleRegionHeartbeat(heartbeat(moved));
  assert.equal(hb.step, undefined, "no step toward the silent store is sent");
  assert.equal(toFour[0]!.status, "Cancelled");
  const later = await co.tick();
  for (const op of toFour) {
    assert.equal(op.status, "Cancelled");
    assert.match(op.reason, /target store 4 is (Disconnected|Down)/);
  }
  for (let i = 0; i < 5; i++) later.push(...(await co.tick()));
  const all = [...c.operators.running(), ...later];
  assert.deepEqual(all.filter((op) => op.targetStores().includes(4)), [], "nothing targets 4");
  await t.close();
});

Deno.test("repair replaces a balance operator at once when a replica of its region is lost", async () => {
  const t = await openTestCluster({ maxStoreDownTime: 10_000, storeDisconnectTime: 2_000 });
  const c = t.cluster;
  for (const id of [1, 2, 3, 4, 5]) await c.putStore({ id, address: `127.0.0.1:${id}` });
  for (const id of [1, 2, 3, 4, 5]) c.handleStoreHeartbeat(stats(id));
  const r = region(5, "", "", { confVer: 1, version: 1 }, [
    voter(51, 1),
    voter(52, 2),
    voter(53, 3),
  ]);
  c.handleRegionHeartbeat(heartbeat(r));
  await c.ids.reserve(16);
  const view = new LiveView(c);
  const balance = createMovePeerOperator(
    "balance-region",
    "region",
    c.getRegion(5),
    1,
    5,
    view.build,
  );
  assert.ok(c.operators.addOperator(balance, c.now()));
  const co = new Coordinator(c, []);
  assert.deepEqual(await co.tick(), [], "healthy: the balance operator runs undisturbed");
  t.clock.advance(10_001); // store 3 goes Down; the others keep heartbeating
  for (const id of [1, 2, 4, 5]) c.handleStoreHeartbeat(stats(id));
  const [repair] = await co.tick();
  assert.equal(repair?.desc, "remove-down-replica");
  assert.equal(balance.status, "Cancelled");
  assert.match(balance.reason, /replaced by remove-down-replica/);
  assert.equal(c.operators.get(5), repair);
  assert.deepEqual(await co.tick(), [], "a replica operator is not replaced by another check");
  await t.close();
});

Deno.test("hot leaders leave their store through the cluster map, within the hot-region limit; repair replaces such a move", async () => {
  const t = await openTestCluster({
    maxStoreDownTime: 10_000,
    storeDisconnectTime: 2_000,
    hotRegionScheduleLimit: 1,
  });
  const c = t.cluster;
  for (const id of [1, 2, 3, 4]) await c.putStore({ id, address: `127.0.0.1:${id}` });
  const regions = [
    region(10, "", "m", { confVer: 1, version: 2 }, [voter(101, 1), voter(102, 2), voter(103, 3)]),
    region(11, "m", "", { confVer: 1, version: 2 }, [voter(111, 1), voter(112, 2), voter(113, 3)]),
  ];
  const flow = { bytesWritten: 100_000, bytesRead: 0, keysWritten: 1_000, intervalMs: 1000 };
  for (let i = 0; i < 3; i++) {
    for (const id of [1, 2, 3, 4]) c.handleStoreHeartbeat(stats(id));
    for (const r of regions) c.handleRegionHeartbeat(heartbeat(r, { flow }));
    t.clock.advance(1000);
  }
  const co = new Coordinator(c, ["hot-region-scheduler"]);
  for (const id of [1, 2, 3, 4]) c.handleStoreHeartbeat(stats(id));
  const [hot, ...more] = await co.tick();
  assert.equal(hot?.desc, "transfer-hot-write-leader");
  assert.equal(hot.kind, "hot");
  assert.equal(more.length, 0);
  assert.deepEqual(await co.tick(), [], "hot_region_schedule_limit is 1");
  const step = hot.steps[0]!;
  assert.ok(step.type === "TransferLeader");
  // The other follower's store goes Down: repair replaces the hot move at once.
  const down = step.peer.storeId === 2 ? 3 : 2;
  t.clock.advance(10_001);
  for (const id of [1, 2, 3, 4].filter((x) => x !== down)) c.handleStoreHeartbeat(stats(id));
  const repairs = await co.tick();
  const repair = repairs.find((op) => op.regionId === hot.regionId);
  assert.equal(repair?.desc, "remove-down-replica");
  assert.equal(hot.status, "Cancelled");
  assert.match(hot.reason, /replaced by remove-down-replica/);
  await t.close();
});

Deno.test("the checkers visit each region about once a second, and a small map whole every run", () => {
  assert.equal(patrolBatch(0, 100), 0);
  assert.equal(patrolBatch(10, 100), 10, "a small cluster: every region, every run");
  assert.equal(patrolBatch(PATROL_MIN_BATCH + 1, 100), PATROL_MIN_BATCH);
  assert.equal(patrolBatch(5_000, 50), PATROL_MIN_BATCH, "250 a run would do; 256 is the floor");
  assert.equal(patrolBatch(10_000, 100), 1_000);
  assert.equal(patrolBatch(100_000, 100), 10_000);
});

Deno.test("a region short of a replica is found among thousands within a second of runs", async () => {
  // Scenario: 3,000 healthy regions on stores 1–3, and one more (the last in key order, so the
  // farthest from the patrol cursor) with a single voter. At 100 ms a run and 300 regions a run
  // (the pace of once a second), the checker must reach it within 11 runs, not visit it every
  // run, and never bother the healthy ones.
  const t = await openTestCluster({ scheduleIntervalMs: 100 });
  const c = t.cluster;
  for (const id of [1, 2, 3]) await c.putStore({ id, address: `127.0.0.1:${id}` });
  const key = (i: number) => `k${String(i).padStart(5, "0")}`;
  for (let i = 0; i < 3_000; i++) {
    const peers = [1, 2, 3].map((s) => voter(10_000 + 3 * i + s, s));
    const r = region(100 + i, i === 0 ? "" : key(i), key(i + 1), { confVer: 1, version: 1 }, peers);
    c.handleRegionHeartbeat(heartbeat(r, { leader: peers[0]! }));
  }
  const lonely = region(99, key(3_000), "", { confVer: 1, version: 1 }, [voter(9_001, 1)]);
  c.handleRegionHeartbeat(heartbeat(lonely, { leader: lonely.peers[0]! }));
  assert.equal(patrolBatch(3_001, 100), 301);
  const co = new Coordinator(c, []);
  const found: number[] = [];
  for (let run = 1; run <= 11; run++) {
    const ops = await co.tick();
    for (const op of ops) {
      assert.equal(op.regionId, 99, "only the short region needs anything");
      assert.equal(op.desc, "make-up-replica");
      found.push(run);
    }
  }
  assert.equal(found.length, 1, `found in runs ${found}`);
  assert.ok(found[0]! >= 5, `the last region is not reached at once (run ${found[0]})`);
  await t.close();
});
