/** The replica checker: missing, down, offline, extra and orphan-learner peers. */
import assert from "node:assert/strict";
import { MockCluster } from "../_mock_cluster.ts";
import { checkLostReplicas, checkReplicas } from "./replica_checker.ts";

const types = (op: ReturnType<typeof checkReplicas>) =>
  op?.steps.map((s) => `${s.type}${"peer" in s ? `@${s.peer.storeId}` : ""}`);

Deno.test("a region with too few peers gets one on the smallest Up store without one", () => {
  const tc = new MockCluster();
  tc.addRegionStore(1, 5).addRegionStore(2, 3).addRegionStore(3, 1).addRegionStore(4, 0)
    .setStoreDown(4);
  tc.addLeaderRegion(1, 1);
  assert.deepEqual(types(checkReplicas(tc, tc.region(1)!)), ["AddLearner@3", "PromoteLearner@3"]);
  tc.addLeaderRegion(2, 1, 2, 3);
  assert.equal(checkReplicas(tc, tc.region(2)!), null, "healthy");
});

Deno.test("a peer on a Down store is removed first, then a new one is added", () => {
  const tc = new MockCluster();
  tc.addRegionStore(1, 5).addRegionStore(2, 3).addRegionStore(3, 1).addRegionStore(4, 0);
  tc.addLeaderRegion(1, 1, 2, 3).setStoreDown(3);
  const op = checkReplicas(tc, tc.region(1)!);
  assert.deepEqual(types(op), ["RemovePeer@3"]);
  assert.equal(op?.desc, "remove-down-replica");
  tc.addLeaderRegion(1, 1, 2);
  assert.deepEqual(types(checkReplicas(tc, tc.region(1)!)), ["AddLearner@4", "PromoteLearner@4"]);
});

Deno.test("a peer on an Offline store is moved; extra peers are removed; leaders move first", () => {
  const tc = new MockCluster();
  tc.addRegionStore(1, 5).addRegionStore(2, 3).addRegionStore(3, 1).addRegionStore(4, 0);
  tc.addLeaderRegion(1, 3, 1, 2).setStoreOffline(3);
  assert.deepEqual(types(checkReplicas(tc, tc.region(1)!)), [
    "AddLearner@4",
    "PromoteLearner@4",
    "TransferLeader@4",
    "RemovePeer@3",
  ]);
  const tc2 = new MockCluster();
  tc2.addRegionStore(1, 5).addRegionStore(2, 9).addRegionStore(3, 1).addRegionStore(4, 0);
  tc2.addLeaderRegion(1, 2, 1, 3, 4);
  assert.deepEqual(types(checkReplicas(tc2, tc2.region(1)!)), ["TransferLeader@1", "RemovePeer@2"]);
});

Deno.test("a learner left behind by an ended operator is removed", () => {
  const tc = new MockCluster();
  tc.addRegionStore(1, 5).addRegionStore(2, 3).addRegionStore(3, 1).addRegionStore(4, 0);
  tc.addLeaderRegion(1, 1, 2, 3, 4);
  const r = tc.region(1)!;
  tc.putRegion({
    ...r,
    meta: {
      ...r.meta,
      peers: r.meta.peers.map((p) => p.storeId === 4 ? { ...p, role: "Learner" as const } : p),
    },
  });
  assert.deepEqual(types(checkReplicas(tc, tc.region(1)!)), ["RemovePeer@4"]);
});

Deno.test("a missing peer is never added on a Disconnected store, and a leader never moved onto one", () => {
  const tc = new MockCluster();
  tc.addRegionStore(1, 5).addRegionStore(2, 3).addRegionStore(3, 1).addRegionStore(4, 0);
  tc.setStoreDisconnected(4);
  tc.addLeaderRegion(1, 1, 2);
  assert.deepEqual(types(checkReplicas(tc, tc.region(1)!)), ["AddLearner@3", "PromoteLearner@3"]);
  tc.setStoreDisconnected(3);
  assert.equal(checkReplicas(tc, tc.region(1)!), null, "no Up store without a peer is left");
  tc.addLeaderRegion(2, 1, 4, 2, 3).setStoreOffline(1);
  const leaving = checkReplicas(tc, tc.region(2)!);
  assert.deepEqual(types(leaving), ["TransferLeader@2", "RemovePeer@1"], "2 is the only Up voter");
});

Deno.test("checkLostReplicas finds only a peer on a Down store, not one a live store's leader reports down", () => {
  const tc = new MockCluster();
  tc.addRegionStore(1, 5).addRegionStore(2, 3).addRegionStore(3, 1).addRegionStore(4, 0);
  tc.addLeaderRegion(1, 1, 2, 3, 4);
  assert.equal(checkLostReplicas(tc, tc.region(1)!), null, "an extra peer is not urgent");
  tc.setStoreDisconnected(3);
  assert.equal(checkLostReplicas(tc, tc.region(1)!), null, "Disconnected is not Down yet");
  const r = tc.region(1)!;
  const onTwo = r.meta.peers.find((p) => p.storeId === 2)!;
  tc.putRegion({ ...r, downPeers: [{ peer: onTwo, downSeconds: 30 * 60 + 1 }] });
  assert.equal(checkLostReplicas(tc, tc.region(1)!), null, "store 2 still heartbeats");
  assert.equal(checkReplicas(tc, tc.region(1)!)?.desc, "remove-extra-replica");
  tc.setStoreDown(3);
  assert.deepEqual(types(checkLostReplicas(tc, tc.region(1)!)), ["RemovePeer@3"]);
});
