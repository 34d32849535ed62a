/** hot-region: hot leaders and peers leave the hottest store, never toward a dead one. */
import assert from "node:assert/strict";
import { MockCluster } from "../_mock_cluster.ts";
import { KIND_PRIORITY, type Operator } from "../operator/operator.ts";
import {
  explainHotRegion,
  HOT_REGION_COOLDOWN_MS,
  hotLoads,
  hotRegionScheduler,
  scheduleHotRegion,
} from "./hot_region.ts";

const KIB = 1024;

/** Stores 1..n, Up. */
function cluster(n: number): MockCluster {
  const tc = new MockCluster();
  for (let i = 1; i <= n; i++) tc.addLeaderStore(i, 0);
  return tc;
}

/** Carries out a transfer or move on the mock, as the stores would. */
function apply(tc: MockCluster, op: Operator): void {
  const r = tc.region(op.regionId)!;
  let peers = [...r.meta.peers];
  let leader = r.leader;
  for (const s of op.steps) {
    if (s.type === "AddLearner") peers.push({ ...s.peer, role: "Voter" });
    if (s.type === "ChangePeerV2Enter") {
      const newcomer = peers.find((p) => p.id === s.promote[0]!.id)!;
      if (s.demote.some((d) => d.id === leader?.id)) leader = newcomer;
    }
    if (s.type === "TransferLeader") leader = peers.find((p) => p.storeId === s.peer.storeId)!;
    if (s.type === "RemovePeer") peers = peers.filter((p) => p.storeId !== s.peer.storeId);
  }
  tc.putRegion({ ...r, meta: { ...r.meta, peers }, leader });
}

const target = (op: Operator | null) => {
  const s = op?.steps.find((x) => x.type === "TransferLeader" || x.type === "AddLearner");
  return s && "peer" in s ? s.peer.storeId : undefined;
};

Deno.test("hot leaders leave the hot store for its followers' stores", () => {
  const tc = cluster(3);
  for (let id = 1; id <= 4; id++) tc.addLeaderRegion(id, 1, 2, 3).setHot(id, 100 * KIB);
  const op = scheduleHotRegion(tc, "write");
  assert.ok(op);
  assert.equal(op.kind, "hot");
  assert.equal(op.desc, "transfer-hot-write-leader");
  assert.deepEqual(op.steps.map((s) => s.type), ["TransferLeader"]);
  assert.ok([2, 3].includes(target(op)!));
  assert.equal(scheduleHotRegion(tc, "read"), null, "no read traffic");
  assert.ok(KIND_PRIORITY.hot < KIND_PRIORITY.replica, "repair replaces a hot-region move");
});

Deno.test("carried out to the end, moves even the load out and never move a region back", () => {
  const tc = cluster(3);
  // Uneven hot regions, all led by store 1.
  const rates = [300, 200, 150, 120, 100, 80, 50, 30].map((x) => x * KIB);
  rates.forEach((r, i) => tc.addLeaderRegion(i + 1, 1, 2, 3).setHot(i + 1, r));
  // Where each region's leadership has been: it must never return to a store it left.
  const been = new Map(rates.map((_, i) => [i + 1, [1]]));
  let n = 0;
  for (let op = scheduleHotRegion(tc, "write"); op; op = scheduleHotRegion(tc, "write")) {
    assert.ok(++n <= rates.length, `at most ${rates.length} moves`);
    const to = target(op)!;
    const list = been.get(op.regionId)!;
    assert.ok(!list.includes(to), `region ${op.regionId} back to store ${to} after ${list}`);
    list.push(to);
    apply(tc, op);
  }
  const loads = hotLoads(tc, "write").leader;
  const values = [1, 2, 3].map((s) => loads.get(s) ?? 0);
  const spread = Math.max(...values) - Math.min(...values);
  assert.ok(spread <= 300 * KIB, `leader loads ${values} within one region's load`);
  assert.ok(Math.max(...values) < 1030 * KIB / 2, `the hottest store lost most: ${values}`);
});

Deno.test("a Disconnected, Down or Offline store never receives hot leaders or peers", () => {
  const tc = cluster(4);
  for (let id = 1; id <= 4; id++) tc.addLeaderRegion(id, 1, 2, 3).setHot(id, 100 * KIB);
  tc.setStoreDisconnected(2);
  for (let i = 0; i < 3; i++) {
    const op = scheduleHotRegion(tc, "write");
    assert.ok(op);
    assert.notEqual(target(op), 2);
  }
  tc.setStoreDown(3).setStoreOffline(4);
  assert.equal(scheduleHotRegion(tc, "write"), null, "no Up store to move to");
  assert.equal(hotRegionScheduler().schedule(tc), null);
});

Deno.test("only regions hot for a while, without an operator and out of cool-down, move", () => {
  const tc = cluster(3);
  tc.addLeaderRegion(1, 1, 2, 3).setHot(1, 100 * KIB, 0, 1);
  tc.addLeaderRegion(2, 1, 2, 3).setHot(2, 100 * KIB);
  tc.setOperator(2);
  assert.equal(scheduleHotRegion(tc, "write"), null, "1 is hot once only, 2 is busy");
  tc.setHot(1, 100 * KIB, 0, 2, 1_000);
  assert.equal(scheduleHotRegion(tc, "write"), null, "1 is known for 1 s only");
  tc.setHot(1, 100 * KIB, 0, 2).setLastOperator(1, HOT_REGION_COOLDOWN_MS - 1);
  assert.equal(scheduleHotRegion(tc, "write"), null, "1 moved just now");
  tc.setLastOperator(1, HOT_REGION_COOLDOWN_MS);
  assert.equal(scheduleHotRegion(tc, "write")?.regionId, 1);
  assert.match(explainHotRegion(tc).join("\n"), /write: 2 hot regions.*next: transfer-hot-write/);
});

Deno.test("leadership never goes to a follower reported pending or down", () => {
  const tc = cluster(3);
  tc.addLeaderRegion(1, 1, 2, 3).setHot(1, 100 * KIB);
  tc.addLeaderRegion(2, 1, 2, 3).setHot(2, 100 * KIB);
  for (const id of [1, 2]) {
    const r = tc.region(id)!;
    tc.putRegion({
      ...r,
      pendingPeers: [r.meta.peers[1]!],
      downPeers: [{ peer: r.meta.peers[2]!, downSeconds: 20 }],
    });
  }
  assert.equal(scheduleHotRegion(tc, "write"), null);
});

Deno.test("writes: a hot peer moves to a store without one when leaders alone cannot help", () => {
  const tc = cluster(4);
  // Each of stores 1-3 leads one hot region and holds a peer of all three; store 4 holds none.
  tc.addLeaderRegion(1, 1, 2, 3).setHot(1, 100 * KIB);
  tc.addLeaderRegion(2, 2, 3, 1).setHot(2, 100 * KIB);
  tc.addLeaderRegion(3, 3, 1, 2).setHot(3, 100 * KIB);
  const moves: string[] = [];
  for (let op = scheduleHotRegion(tc, "write"); op; op = scheduleHotRegion(tc, "write")) {
    assert.ok(moves.length < 3, `few moves: ${moves}`);
    assert.equal(op.desc, "move-hot-write-peer");
    assert.equal(target(op), 4);
    moves.push(`${op.regionId}`);
    apply(tc, op);
  }
  assert.equal(moves.length, 2, "9 hot peers on 4 stores: 3/2/2/2 takes two moves");
  const peers = hotLoads(tc, "write").peer;
  assert.deepEqual([1, 2, 3, 4].map((s) => (peers.get(s) ?? 0) / KIB).sort(), [200, 200, 200, 300]);
  const leaders = hotLoads(tc, "write").leader;
  assert.ok([1, 2, 3, 4].every((s) => (leaders.get(s) ?? 0) <= 100 * KIB), "one hot leader each");
});

Deno.test("reads: a hot leader's peer moves to an idle store when its followers are as busy", () => {
  const tc = cluster(4);
  tc.addLeaderRegion(1, 1, 2, 3).setHot(1, 0, 100 * KIB);
  tc.addLeaderRegion(2, 1, 2, 3).setHot(2, 0, 100 * KIB);
  tc.addLeaderRegion(3, 2, 1, 3).setHot(3, 0, 100 * KIB);
  tc.addLeaderRegion(4, 3, 1, 2).setHot(4, 0, 100 * KIB);
  const op = scheduleHotRegion(tc, "read");
  assert.ok(op);
  assert.equal(op.desc, "move-hot-read-leader");
  assert.ok([1, 2].includes(op.regionId));
  assert.equal(target(op), 4);
  assert.equal(scheduleHotRegion(tc, "write"), null, "no write traffic");
});
