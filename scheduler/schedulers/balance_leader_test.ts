/** balance-leader: transfers from the store with most leaders to the follower with fewest. */
import assert from "node:assert/strict";
import { MockCluster } from "../_mock_cluster.ts";
import { scheduleBalanceLeader } from "./balance_leader.ts";

Deno.test("leaders move from the most loaded store to its follower store with the fewest", () => {
  const tc = new MockCluster();
  tc.addLeaderStore(1, 10).addLeaderStore(2, 3).addLeaderStore(3, 5).addLeaderStore(4, 0);
  tc.addLeaderRegion(1, 1, 2, 3);
  const op = scheduleBalanceLeader(tc);
  assert.ok(op);
  assert.deepEqual(op.steps.map((s) => s.type), ["TransferLeader"]);
  const step = op.steps[0]!;
  assert.ok(step.type === "TransferLeader" && step.peer.storeId === 2, "store 4 holds no peer");
  assert.equal(op.kind, "leader");
});

Deno.test("no transfer when the difference is under two, or targets are down or offline", () => {
  const tc = new MockCluster();
  tc.addLeaderStore(1, 4).addLeaderStore(2, 3).addLeaderStore(3, 3);
  tc.addLeaderRegion(1, 1, 2, 3);
  assert.equal(scheduleBalanceLeader(tc), null, "4 vs 3 is balanced");
  tc.updateLeaderCount(1, 9).setStoreDown(2).setStoreOffline(3);
  assert.equal(scheduleBalanceLeader(tc), null, "no suitable follower store");
});

Deno.test("learners never receive leadership", () => {
  const tc = new MockCluster();
  tc.addLeaderStore(1, 10).addLeaderStore(2, 0);
  tc.addLeaderRegion(1, 1, 2);
  const r = tc.region(1)!;
  tc.putRegion({
    ...r,
    meta: { ...r.meta, peers: [r.meta.peers[0]!, { ...r.meta.peers[1]!, role: "Learner" }] },
  });
  assert.equal(scheduleBalanceLeader(tc), null);
});

Deno.test("a Disconnected store never receives leadership, nor does a follower its leader reports down or pending", () => {
  const tc = new MockCluster();
  tc.addLeaderStore(1, 10).addLeaderStore(2, 0).addLeaderStore(3, 4);
  tc.addLeaderRegion(1, 1, 2, 3);
  const first = scheduleBalanceLeader(tc)?.steps[0];
  assert.ok(first?.type === "TransferLeader" && first.peer.storeId === 2, "store 2 leads least");
  tc.setStoreDisconnected(2);
  const next = scheduleBalanceLeader(tc)?.steps[0];
  assert.ok(next?.type === "TransferLeader" && next.peer.storeId === 3, "store 2 is skipped");
  const r = tc.region(1)!;
  const onThree = r.meta.peers.find((p) => p.storeId === 3)!;
  tc.putRegion({ ...r, downPeers: [{ peer: onThree, downSeconds: 12 }] });
  assert.equal(scheduleBalanceLeader(tc), null, "the only other follower is reported down");
  tc.putRegion({ ...r, pendingPeers: [onThree] });
  assert.equal(scheduleBalanceLeader(tc), null, "…or pending");
});

Deno.test("a balanced cluster costs a look at its stores, not at the regions they lead", () => {
  // Scenario: 300 regions led 100/100/100 (then 101/100/100, still under the difference of two):
  // no source can give, so no store's region list is even read. Then one store leads 103 and
  // another 97: the scan runs and a leader moves.
  const tc = new MockCluster();
  tc.addLeaderStore(1, 100).addLeaderStore(2, 100).addLeaderStore(3, 100);
  for (let i = 1; i <= 300; i++) tc.addLeaderRegion(i, 1 + (i % 3), 1 + ((i + 1) % 3));
  const read = tc.regionListsRead;
  assert.equal(scheduleBalanceLeader(tc), null);
  tc.updateLeaderCount(1, 101);
  assert.equal(scheduleBalanceLeader(tc), null);
  assert.deepEqual(read, [], "no region list read while balanced");
  tc.updateLeaderCount(1, 103).updateLeaderCount(3, 97);
  assert.ok(scheduleBalanceLeader(tc), "an imbalance of six moves a leader");
  assert.ok(read.length > 0);
});
