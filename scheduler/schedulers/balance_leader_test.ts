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
