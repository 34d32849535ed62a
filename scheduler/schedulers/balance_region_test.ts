/**
 * balance-region rules (after TinyKV's project 3C scheduler tests): each test builds a mock
 * cluster, calls the scheduler and asserts on the operator returned, or on why none was.
 */
import assert from "node:assert/strict";
import { MockCluster } from "../_mock_cluster.ts";
import type { Operator } from "../operator/operator.ts";
import { scheduleBalanceRegion } from "./balance_region.ts";

/** Asserts `op` moves a peer from `source` to `target` (AddLearner, Promote, [TransferLeader], Remove). */
function checkTransferPeer(
  op: Operator | null,
  source: number,
  target: number,
  leaderMoves?: boolean,
): void {
  assert.ok(op, `expected a move ${source} → ${target}, got none`);
  const types = op.steps.map((s) => s.type);
  const withLeader = ["AddLearner", "PromoteLearner", "TransferLeader", "RemovePeer"];
  const without = ["AddLearner", "PromoteLearner", "RemovePeer"];
  if (leaderMoves === true) assert.deepEqual(types, withLeader);
  else if (leaderMoves === false) assert.deepEqual(types, without);
  else assert.ok(types.length === 3 || types.length === 4);
  const add = op.steps[0]!, remove = op.steps[op.steps.length - 1]!;
  assert.ok(add.type === "AddLearner" && add.peer.storeId === target, `target ${target}`);
  assert.ok(remove.type === "RemovePeer" && remove.peer.storeId === source, `source ${source}`);
  assert.equal(op.kind, "region");
}

Deno.test("no suitable store, or a single one, means no move", () => {
  const tc = new MockCluster();
  assert.equal(scheduleBalanceRegion(tc), null, "no stores");
  tc.addRegionStore(1, 10).addLeaderRegion(1, 1);
  tc.maxReplicas = 1;
  assert.equal(scheduleBalanceRegion(tc), null, "a single store");
  tc.addRegionStore(2, 0).setStoreDown(2);
  assert.equal(scheduleBalanceRegion(tc), null, "the only other store is down");
  tc.addRegionStore(3, 0).setStoreOffline(3);
  assert.equal(scheduleBalanceRegion(tc), null, "an Offline store is never a target");
});

Deno.test("3C TestReplicas1: a single-replica region moves its leader with it; offline and down stores are excluded", () => {
  const tc = new MockCluster();
  tc.maxReplicas = 1;
  tc.addRegionStore(1, 6).addRegionStore(2, 8).addRegionStore(3, 8).addRegionStore(4, 16);
  tc.addLeaderRegion(1, 4);
  checkTransferPeer(scheduleBalanceRegion(tc), 4, 1, true);
  const op = scheduleBalanceRegion(tc)!;
  const promoted = op.steps[1]!;
  const transfer = op.steps[2]!;
  assert.ok(transfer.type === "TransferLeader" && promoted.type === "PromoteLearner");
  assert.equal(transfer.peer.id, promoted.peer.id, "the leader goes to the new peer");
  tc.setStoreOffline(1).updateRegionCount(2, 6);
  checkTransferPeer(scheduleBalanceRegion(tc), 4, 2, true);
  tc.maxReplicas = 3;
  assert.equal(scheduleBalanceRegion(tc), null, "a region with too few peers is skipped");
  tc.maxReplicas = 1;
  assert.ok(scheduleBalanceRegion(tc));
});

Deno.test("3C TestReplicas3: largest source, smallest target without the region; a store larger than every source is never worth it", () => {
  const tc = new MockCluster();
  tc.addRegionStore(1, 16).addRegionStore(2, 15).addRegionStore(3, 14);
  tc.addLeaderRegion(1, 1, 2, 3);
  assert.equal(scheduleBalanceRegion(tc), null, "every store already holds the region");
  tc.addRegionStore(4, 2);
  checkTransferPeer(scheduleBalanceRegion(tc), 1, 4, true);
  tc.addRegionStore(5, 1);
  checkTransferPeer(scheduleBalanceRegion(tc), 1, 5, true);
  tc.addRegionStore(6, 0);
  checkTransferPeer(scheduleBalanceRegion(tc), 1, 6, true);
  tc.setStoreDown(6);
  checkTransferPeer(scheduleBalanceRegion(tc), 1, 5, true);
  tc.setStoreDown(4).setStoreDown(5).setStoreDown(6);
  tc.addRegionStore(7, 20);
  assert.equal(scheduleBalanceRegion(tc), null, "store 7 is the only target and larger than all");
});

Deno.test("3C TestReplicas5: five replicas pick the largest source with a follower and the smallest free target", () => {
  const tc = new MockCluster();
  tc.maxReplicas = 5;
  tc.addRegionStore(1, 4).addRegionStore(2, 5).addRegionStore(3, 6).addRegionStore(4, 7)
    .addRegionStore(5, 28);
  tc.addLeaderRegion(1, 1, 2, 3, 4, 5);
  tc.addRegionStore(6, 1);
  checkTransferPeer(scheduleBalanceRegion(tc), 5, 6, false);
  tc.addRegionStore(7, 5);
  checkTransferPeer(scheduleBalanceRegion(tc), 5, 6, false);
  tc.addLeaderRegion(1, 2, 3, 4, 5, 6);
  checkTransferPeer(scheduleBalanceRegion(tc), 5, 1, false);
  tc.addRegionStore(11, 29).addRegionStore(12, 8).addRegionStore(13, 7);
  tc.addLeaderRegion(1, 2, 3, 11, 12, 13);
  checkTransferPeer(scheduleBalanceRegion(tc), 11, 6, false);
});

Deno.test("3C TestReplacePendingRegion: a pending region wins over leader regions on the source", () => {
  const tc = new MockCluster();
  tc.addRegionStore(1, 16).addRegionStore(2, 7).addRegionStore(3, 15).addRegionStore(4, 10);
  tc.addLeaderRegion(1, 1, 2, 3).addLeaderRegion(2, 1, 2, 3).addLeaderRegion(3, 2, 1, 3);
  tc.setPending(3, 1);
  assert.equal(scheduleBalanceRegion(tc)?.regionId, 3);
  checkTransferPeer(scheduleBalanceRegion(tc), 1, 4, false);
});

Deno.test("a follower region is preferred over a leader region", () => {
  const tc = new MockCluster();
  tc.addRegionStore(1, 20).addRegionStore(2, 10).addRegionStore(3, 10).addRegionStore(4, 0);
  tc.addLeaderRegion(1, 1, 2, 3).addLeaderRegion(2, 2, 1, 3);
  for (let i = 0; i < 10; i++) assert.equal(scheduleBalanceRegion(tc)?.regionId, 2);
});

Deno.test("a difference of at most twice the region size is not worth a move", () => {
  const tc = new MockCluster();
  tc.addRegionStore(1, 4).addRegionStore(2, 4).addRegionStore(3, 4).addRegionStore(4, 2);
  tc.addLeaderRegion(1, 1, 2, 3); // size 10: 40 - 20 = 20 is not > 20
  assert.equal(scheduleBalanceRegion(tc), null);
  tc.updateRegionCount(1, 5);
  checkTransferPeer(scheduleBalanceRegion(tc), 1, 4, true);
});

Deno.test("regions with an operator are left alone", () => {
  const tc = new MockCluster();
  tc.addRegionStore(1, 16).addRegionStore(2, 15).addRegionStore(3, 14).addRegionStore(4, 0);
  tc.addLeaderRegion(1, 1, 2, 3).setOperator(1);
  assert.equal(scheduleBalanceRegion(tc), null);
});

Deno.test("a pending region is preferred over a follower region", () => {
  const tc = new MockCluster();
  tc.addRegionStore(1, 20).addRegionStore(2, 10).addRegionStore(3, 10).addRegionStore(4, 0);
  tc.addLeaderRegion(1, 2, 1, 3).addLeaderRegion(2, 3, 1, 2).setPending(2, 1);
  for (let i = 0; i < 10; i++) assert.equal(scheduleBalanceRegion(tc)?.regionId, 2);
});

Deno.test("a region is never moved back onto a store balance-region took it from", () => {
  const tc = new MockCluster();
  tc.addRegionStore(1, 16).addRegionStore(2, 15).addRegionStore(3, 14).addRegionStore(4, 2)
    .addRegionStore(5, 4);
  tc.addLeaderRegion(1, 1, 2, 3).setMovedFrom(1, 4);
  checkTransferPeer(scheduleBalanceRegion(tc), 1, 5, true);
});

Deno.test("a Disconnected store is neither a target nor a source", () => {
  const tc = new MockCluster();
  tc.addRegionStore(1, 16).addRegionStore(2, 15).addRegionStore(3, 14).addRegionStore(4, 0);
  tc.addLeaderRegion(1, 1, 2, 3);
  checkTransferPeer(scheduleBalanceRegion(tc), 1, 4, true);
  tc.setStoreDisconnected(4);
  assert.equal(scheduleBalanceRegion(tc), null, "the only store with room missed heartbeats");
  tc.addRegionStore(4, 0).setStoreDisconnected(1);
  const op = scheduleBalanceRegion(tc);
  assert.ok(op, "store 2 is now the largest suitable source");
  checkTransferPeer(op, 2, 4, false);
});

Deno.test("stores of equal size are balanced without drawing a single region", () => {
  // Scenario: three stores holding every region (3 replicas on 3 stores, the usual small
  // cluster) have equal sizes, so no move can pass the size rule: no store's region list is
  // read. A fourth, empty store makes moves worth it again.
  const tc = new MockCluster();
  tc.addRegionStore(1, 50).addRegionStore(2, 50).addRegionStore(3, 50);
  for (let i = 1; i <= 50; i++) {
    tc.addLeaderRegion(i, 1 + (i % 3), 1 + ((i + 1) % 3), 1 + ((i + 2) % 3));
  }
  const read = tc.regionListsRead;
  assert.equal(scheduleBalanceRegion(tc), null);
  assert.deepEqual(read, [], "no region list read while every store is the same size");
  tc.addRegionStore(4, 0);
  assert.ok(scheduleBalanceRegion(tc), "an empty fourth store takes a peer");
  assert.ok(read.length > 0);
});
