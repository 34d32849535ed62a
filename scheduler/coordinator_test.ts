/**
 * The coordinator over a real cluster map: a Down store's replica is removed then rebuilt on a
 * free store; an Offline store is drained and becomes Tombstone; running operators' influence
 * keeps balance-region from piling moves onto one store.
 */
import assert from "node:assert/strict";
import type { Peer, Region } from "../proto/metapb.ts";
import type { OperatorStep } from "../proto/pdpb.ts";
import { heartbeat, openTestCluster, region, voter } from "./_test_cluster.ts";
import { Coordinator, LiveView } from "./coordinator.ts";
import { emptyStoreStats, seededRandom } from "./_mock_cluster.ts";
import type { Cluster } from "./cluster.ts";

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
