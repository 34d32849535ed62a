/**
 * The scheduler and the stores when a store fails: a store that stops is Disconnected within
 * `store-disconnect-time` and no operator targets it from then on; once it is Down every region
 * is repaired within a few seconds; a leader refuses a transfer to a peer it cannot hear and
 * keeps taking writes; a leader reports a peer down soon and the scheduler's health shows it.
 */
import assert from "node:assert/strict";
import { stepTarget } from "../scheduler/operator/operator.ts";
import { type TestCluster, waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function admin(c: TestCluster, method: string, path: string, body?: unknown) {
  const res = await fetch(`http://${c.scheduler.addr}/pd/api/v1${path}`, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/** Splits region 1 at `keys`, one batch split, and waits for the scheduler to see the result. */
async function splitInto(c: TestCluster, keys: string[]): Promise<void> {
  const r = await admin(c, "POST", "/operators", { name: "split-region", region_id: 1, keys });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  await waitFor(
    `${keys.length + 1} regions with leaders at the scheduler`,
    () => {
      const regions = c.scheduler.cluster.regions.regions();
      return regions.length === keys.length + 1 && regions.every((x) => x.leader !== null);
    },
  );
}

/** Every region has `n` voters, none of them on `deadStore`, none pending, and a leader. */
function fullyReplicated(c: TestCluster, n: number, deadStore: number): boolean {
  return c.scheduler.cluster.regions.regions().every((r) =>
    r.leader !== null && r.leader.storeId !== deadStore && r.pendingPeers.length === 0 &&
    r.meta.peers.length === n && r.meta.peers.every((p) =>
      p.role === "Voter" && p.storeId !== deadStore
    )
  );
}

Deno.test(
  "a stopped store is Disconnected within seconds, no operator targets it, and every region is repaired soon after it is Down",
  opts,
  () =>
    withCluster({
      stores: 4,
      schedulerFlags: ["--store-disconnect-time", "1s", "--max-store-down-time", "4s"],
    }, async (c) => {
      const keys = ["c", "f", "i", "l", "o", "r", "u", "x"];
      await splitInto(c, keys);
      for (const k of keys) await c.put(`${k}-key`, "v");
      const cluster = c.scheduler.cluster;
      const victim = c.storeId(3);
      await waitFor("balancing to give store 4 voters and settle", () =>
        cluster.operators.running().length === 0 &&
        cluster.regions.regions().filter((r) =>
            r.meta.peers.some((p) =>
              p.storeId === victim && p.role === "Voter"
            )
          ).length >= 3 &&
        fullyReplicated(c, 3, 0), 30_000);
      const stoppedAt = cluster.now();
      await c.stopStore(3);

      await waitFor("the stopped store to be Disconnected", () =>
        cluster.stateName(cluster.getStore(victim)) !== "Up");
      const disconnectedAfter = cluster.now() - stoppedAt;
      assert.ok(disconnectedAfter < 3_000, `Disconnected ${disconnectedAfter} ms after it stopped`);
      const disconnectedAt = cluster.now();

      // Writes keep working while the store is gone (leaders elsewhere take over).
      for (const k of keys) {
        await c.put(`${k}-key`, "after");
      }

      await waitFor(
        "every region back to 3 healthy replicas without the stopped store",
        () =>
          fullyReplicated(c, 3, victim),
        4_000 + 10_000,
      );
      const repairedAfter = cluster.now() - stoppedAt;
      const ops = [...cluster.operators.history(), ...cluster.operators.running()];
      const late = ops.filter((op) =>
        op.createdAt >= disconnectedAt && op.steps.some((s) =>
          stepTarget(s) === victim
        )
      );
      assert.deepEqual(
        late.map((op) => op.desc),
        [],
        "no operator made after it was Disconnected targets it",
      );
      const repairs = ops.filter((op) => /^(remove|replace)-down-replica$/.test(op.desc));
      assert.ok(repairs.length > 0, "its replicas were rebuilt elsewhere");
      console.log(
        `store ${victim}: Disconnected after ${disconnectedAfter} ms, all ${cluster.regions.count} regions ` +
          `repaired ${repairedAfter} ms after it stopped (Down at 4000 ms)`,
      );
      for (const k of keys) assert.equal(await c.get(`${k}-key`), "after");
    }),
);

Deno.test(
  "a leader declines a transfer to a peer it cannot hear, so writes go on; the transfer happens once the peer answers",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await c.put("k", "v");
      const leader = c.leaderOf(1)!;
      const leaderNode = c.running().find((n) => n.store.storeId === leader.storeId)!;
      const follower = leader.region.peers.find((p) => p.id !== leader.meta.id)!;
      // Only Raft traffic is cut: the store still heartbeats, so the scheduler thinks it is Up.
      c.network.isolate(follower.storeId);
      await waitFor("the leader to stop hearing from the peer", () =>
        Date.now() - (leader.lastHeard.get(follower.id) ?? 0) > 2 * 10 * 50 + 100);
      const op = await admin(c, "POST", "/operators", {
        name: "transfer-leader",
        region_id: 1,
        to_store_id: follower.storeId,
      });
      assert.equal(op.status, 201, JSON.stringify(op.json));
      const declined = () =>
        leaderNode.workers.heartbeat.stepErrors.ServerIsBusy ?? 0;
      await waitFor("the leader to decline the step twice", () => declined() >= 2);
      assert.equal(leader.raw.raft.leadTransferee, 0, "no transfer is pending");
      const t0 = performance.now();
      for (let i = 0; i < 5; i++) {
        await c.put("k", `still writable ${i}`, c.nodes.indexOf(leaderNode));
      }
      assert.ok(
        performance.now() - t0 < 2_000,
        "the writes were not held up by a pending transfer",
      );
      assert.equal(c.leaderOf(1), leader);
      assert.equal(c.scheduler.cluster.operators.get(1)?.status, "Running");
      c.network.clearFilters();
      await waitFor("the transfer once the peer answers", () => {
        const ended = c.scheduler.cluster.operators.lastEnded(1);
        return ended?.desc === "admin-transfer-leader" && ended.status === "Finished";
      });
    }),
);

Deno.test(
  "a leader reports a peer down after max-peer-down-duration; the scheduler's check route and gauges show it until it answers again",
  opts,
  () =>
    withCluster({ stores: 3, store: { maxPeerDownDuration: 1_000 } }, async (c) => {
      await c.put("k", "v");
      const leader = c.leaderOf(1)!;
      const follower = leader.region.peers.find((p) => p.id !== leader.meta.id)!;
      const isolatedAt = Date.now();
      c.network.isolate(follower.storeId);
      await waitFor("the scheduler to see the peer down", () =>
        c.scheduler.cluster.getRegion(1).downPeers.some((d) => d.peer.id === follower.id));
      // Down counts from the last message the leader heard from the peer, which may predate the
      // isolation by up to a heartbeat (frozen since: the peer is cut off).
      const heardAt = leader.lastHeard.get(follower.id) ?? isolatedAt;
      const after = Date.now() - heardAt;
      assert.ok(
        after >= 1_000,
        `reported ${after} ms after the leader last heard the peer, not after max-peer-down-duration`,
      );
      const check = await admin(c, "GET", "/regions/check/down-peer");
      assert.deepEqual(
        check.json.regions.map((r: { id: number }) =>
          r.id
        ),
        [1],
      );
      const metrics = await (await fetch(`http://${c.scheduler.addr}/metrics`)).text();
      assert.match(metrics, /^mrkv_scheduler_unhealthy_regions\{problem="down_peer"\} 1$/m);
      assert.match(
        metrics,
        new RegExp(
          `^mrkv_scheduler_store_unhealthy_regions\\{store="${follower.storeId}",problem="down_peer"\\} 1$`,
          "m",
        ),
      );
      c.network.clearFilters();
      await waitFor(
        "the peer to count as up again",
        () => c.scheduler.cluster.getRegion(1).downPeers.length === 0,
      );
    }),
);

Deno.test(
  "a RemovePeer step for the leader itself moves leadership to another voter, whose next report removes it",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await c.put("k", "v");
      await c.waitReplicas(1, 3);
      const old = c.leaderOf(1)!;
      const oldNode = c.running().find((n) => n.store.peers.get(1) === old)!;
      const step = { type: "RemovePeer" as const, peer: old.meta };
      await assert.rejects(
        oldNode.workers.heartbeat.execute(old, step),
        /leadership moves to another voter first/,
      );
      await waitFor("another peer to lead region 1", () => {
        const l = c.leaderOf(1);
        return l !== undefined && l.meta.id !== old.meta.id;
      });
      const leader = c.leaderOf(1)!;
      const node = c.running().find((n) => n.store.peers.get(1) === leader)!;
      await node.workers.heartbeat.execute(leader, step);
      await waitFor("the old leader's peer to be removed", () =>
        !leader.region.peers.some((p) => p.id === old.meta.id));
      // Its store destroys the peer (deleting its data); let that finish before the cluster
      // closes its engine.
      const oldIndex = c.nodes.indexOf(oldNode);
      await waitFor(
        "the removed peer's data to be deleted",
        async () =>
          (await c.localGet(oldIndex, "k")) === null,
      );
      assert.equal(await c.get("k"), "v");
      await c.put("k", "after");
      assert.equal(await c.get("k"), "after");
    }),
);
