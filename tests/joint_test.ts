/**
 * Peer moves through joint consensus on a real cluster: every store supports it, so the
 * scheduler's `transfer-region` operator adds a learner, then promotes it and demotes the old
 * voter in one ChangePeerV2, leaves the joint configuration, and removes the old peer (a learner
 * by then). The region never has four voters or two; it keeps serving when the replaced store is
 * down, and a demoted leader hands its leadership over.
 */
import assert from "node:assert/strict";
import { isJointRegion, type Region } from "../proto/metapb.ts";
import { pauseBalancers, type TestCluster, waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/**
 * Region 1's move off store `out(leader's store)` onto the store that has no peer of it: the
 * leader then, the region, and the stores it should end on.
 */
function planMove(c: TestCluster, out: (region: Region, leaderStore: number) => number) {
  const leader = c.leaderOf(1)!;
  const region = leader.region;
  const outStore = out(region, leader.storeId);
  const spare = c.running().map((n) => n.store.storeId).find((id) =>
    !region.peers.some((p) => p.storeId === id)
  )!;
  const want = [...region.peers.map((p) => p.storeId).filter((id) => id !== outStore), spare];
  return { leader, region, out: outStore, spare, want };
}

/** A follower's store. */
const aFollower = (region: Region, leaderStore: number) =>
  region.peers.find((p) => p.storeId !== leaderStore)!.storeId;

async function transferRegion(c: TestCluster, storeIds: number[]): Promise<void> {
  const res = await fetch(`http://${c.scheduler.addr}/pd/api/v1/operators`, {
    method: "POST",
    body: JSON.stringify({ name: "transfer-region", region_id: 1, to_store_ids: storeIds }),
  });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  const steps = body.steps.map((s: { type: string }) => s.type);
  assert.ok(steps.includes("ChangePeerV2Enter"), `the move is one joint change: ${steps}`);
  assert.ok(!steps.includes("PromoteLearner"), `no single-step promotion: ${steps}`);
}

/**
 * Watches region 1 on every running store until `done`: returns the largest voter count seen
 * in one configuration and whether a joint configuration was seen.
 */
function watchRegion(c: TestCluster): { stop(): { maxVoters: number; sawJoint: boolean } } {
  let maxVoters = 0;
  let sawJoint = false;
  const look = () => {
    for (const n of c.running()) {
      const r: Region | undefined = n.store.peers.get(1)?.region;
      if (!r) continue;
      sawJoint ||= isJointRegion(r);
      const incoming = r.peers.filter((p) => p.role === "Voter" || p.role === "IncomingVoter");
      const outgoing = r.peers.filter((p) => p.role === "Voter" || p.role === "DemotingVoter");
      maxVoters = Math.max(maxVoters, incoming.length, outgoing.length);
    }
  };
  const timer = setInterval(look, 2);
  return {
    stop: () => {
      clearInterval(timer);
      look();
      return { maxVoters, sawJoint };
    },
  };
}

/** Waits until region 1 is on exactly `storeIds`, all voters, out of any joint state. */
async function waitPlaced(c: TestCluster, storeIds: number[]): Promise<Region> {
  const want = [...storeIds].sort().join(",");
  await waitFor(`region 1 to be on stores ${want}`, () => {
    const r = c.leaderOf(1)?.region;
    return r !== undefined && !isJointRegion(r) &&
      r.peers.every((p) => p.role === "Voter") &&
      r.peers.map((p) => p.storeId).sort().join(",") === want;
  }, 30_000);
  await waitFor("the operator to end", () => c.scheduler.cluster.operators.get(1) === undefined);
  return c.leaderOf(1)!.region;
}

Deno.test(
  "joint consensus: a peer move is one joint change; conf_ver counts each change",
  opts,
  () =>
    withCluster({ stores: 4 }, async (c) => {
      await pauseBalancers(c);
      for (let i = 0; i < 10; i++) await c.put(`k${i}`, `v${i}`);
      const { region: before, out, want } = planMove(c, aFollower);
      const watch = watchRegion(c);
      await transferRegion(c, want);
      const after = await waitPlaced(c, want);
      const seen = watch.stop();
      assert.ok(seen.sawJoint, "the region went through a joint configuration");
      assert.equal(seen.maxVoters, 3, "no configuration ever had more than three voters");
      // AddLearner 1, enter 2 (two changes), leave 2 (two roles settle), remove the learner 1.
      assert.equal(after.epoch.confVer, before.epoch.confVer + 6);
      const outNode = c.running().find((n) => n.store.storeId === out)!;
      await waitFor("the old peer to be destroyed", () => !outNode.store.peers.has(1));
      for (let i = 0; i < 10; i++) assert.equal(await c.get(`k${i}`), `v${i}`);
      await c.put("after", "1");
      assert.equal(await c.get("after"), "1");
    }),
);

Deno.test(
  "joint consensus: a peer on a stopped store is replaced while the region keeps serving",
  opts,
  () =>
    withCluster({ stores: 4 }, async (c) => {
      await pauseBalancers(c);
      await c.put("before", "1");
      const { out: down, spare, want } = planMove(c, aFollower);
      await c.stopStore(c.nodes.findIndex((n) => n?.store.storeId === down));
      await transferRegion(c, want);
      // Writes go on during the move: both configurations keep a quorum without the down store.
      for (let i = 0; i < 10; i++) await c.put(`during${i}`, String(i));
      await waitPlaced(c, want);
      const spareSlot = c.nodes.findIndex((n) => n?.store.storeId === spare);
      await c.waitLocal(spareSlot, "during9", "9");
      assert.equal(await c.get("before", spareSlot), "1");
    }),
);

Deno.test(
  "joint consensus: moving the leader's peer demotes it; it hands leadership over and is removed",
  opts,
  () =>
    withCluster({ stores: 4 }, async (c) => {
      await pauseBalancers(c);
      await c.put("k", "v");
      const { leader, want } = planMove(c, (_, leaderStore) => leaderStore);
      await transferRegion(c, want);
      await waitPlaced(c, want);
      assert.notEqual(c.leaderOf(1)!.storeId, leader.storeId, "leadership moved");
      const oldNode = c.running().find((n) => n.store.storeId === leader.storeId)!;
      await waitFor("the old leader's peer to be destroyed", () => !oldNode.store.peers.has(1));
      assert.equal(await c.get("k"), "v");
      await c.put("k2", "v2");
      assert.equal(await c.get("k2"), "v2");
    }),
);

Deno.test(
  "joint consensus: a leader cut off right after entering the joint configuration; the next leader leaves it",
  opts,
  () =>
    withCluster({ stores: 4 }, async (c) => {
      await pauseBalancers(c);
      await c.put("k", "v");
      const { leader, want } = planMove(c, aFollower);
      // Once the leader has applied the entry that entered the joint configuration, nothing it
      // sends for the region gets through: its leave cannot commit, and another peer must lead.
      let dropped = 0;
      c.network.addFilter((from, _to, env) => {
        if (env.regionId !== 1 || from !== leader.storeId || !isJointRegion(leader.region)) {
          return undefined;
        }
        dropped++;
        return "drop";
      });
      await transferRegion(c, want);
      await waitFor(
        "another leader",
        () => {
          const now = c.leaderOf(1);
          return now !== undefined && now.storeId !== leader.storeId;
        },
        30_000,
      );
      await waitPlaced(c, want);
      assert.ok(dropped > 0, "the old leader was cut off while joint");
      assert.equal(await c.get("k"), "v");
      await c.put("k2", "v2");
      assert.equal(await c.get("k2"), "v2");
    }),
);
