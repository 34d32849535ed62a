/**
 * Hibernating regions (raftstore/hibernate.ts): idle regions go quiet, wake on demand without
 * losing a write, a sleeping follower never unseats a live leader, and a dead or restarted
 * sleeping leader is replaced within an election timeout of the region being needed.
 */
import assert from "node:assert/strict";
import { b, type TestCluster, waitFor, withCluster } from "./cluster.ts";
import type { Peer } from "../raftstore/peer.ts";
import { type Message, newMessage } from "../raft/mod.ts";
import { WAKE } from "../raftstore/hibernate.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** The peers of `regionId` on every running store. */
function peersOf(c: TestCluster, regionId: number): Peer[] {
  return c.running().map((n) => n.store.peers.get(regionId)).filter((p): p is Peer =>
    p !== undefined
  );
}

/** Waits until every running store's peer of `regionId` sleeps. */
async function waitAsleep(c: TestCluster, regionId = 1, timeoutMs = 15_000): Promise<void> {
  await waitFor(`region ${regionId} to sleep on every store`, () => {
    const ps = peersOf(c, regionId);
    return ps.length === c.running().length && ps.every((p) => p.sleep.asleep);
  }, timeoutMs);
}

/** The slot of the store holding `peer`. */
function slotOf(c: TestCluster, peer: Peer): number {
  return c.nodes.findIndex((n) => n?.store.storeId === peer.storeId);
}

/**
 * Cuts a follower of sleeping region 1 off from its leader's store (`cut`): the follower wakes
 * once the leader's store goes silent and campaigns, the third store still hears the leader and
 * refuses, and the leader keeps its leadership and its term (PreVote); after `heal` the follower
 * catches up.
 */
async function cutOffFollowerKeepsLeader(
  c: TestCluster,
  cut: (leaderStore: number, followerStore: number) => void,
  heal: () => void,
): Promise<void> {
  await c.put("p", "1");
  await waitAsleep(c);
  const leader = c.leaderOf(1)!;
  const term = leader.raw.raft.term;
  const lSlot = slotOf(c, leader);
  const fSlot = [0, 1, 2].find((i) => i !== lSlot)!;
  const cutOff = c.node(fSlot).store;
  cut(leader.storeId, cutOff.storeId);
  await waitFor("the cut-off follower to wake", () => !cutOff.peers.get(1)!.sleep.asleep);
  await new Promise((r) => setTimeout(r, 2_000)); // several election timeouts
  assert.equal(c.leaderOf(1), leader, "the leader kept its leadership");
  assert.equal(leader.raw.raft.term, term, "no term was spent (PreVote)");
  await c.put("p", "2", lSlot);
  heal();
  await c.waitLocal(fSlot, "p", "2");
  assert.equal(leader.raw.raft.term, term);
}

Deno.test(
  "an idle region sleeps and sends nothing; a write wakes it and is replicated",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await c.put("a", "1");
      await waitAsleep(c);
      const leader = c.leaderOf(1)!;
      assert.ok(!leader.hasLease(), "a sleeping leader holds no lease");
      const sent = () => c.running().reduce((n, x) => n + x.store.stats.messagesSent, 0);
      const before = sent();
      const ticks = leader.raw.raft.electionElapsed;
      await new Promise((r) => setTimeout(r, 1_000)); // 20 ticks
      assert.equal(sent() - before, 0, "no Raft message while asleep");
      assert.equal(leader.raw.raft.electionElapsed, ticks, "a sleeping leader does not tick");
      const pings = c.running().reduce((n, x) => n + x.store.hibernation.liveness.pings, 0);
      assert.ok(pings > 0, "stores still ping each other");

      const t0 = performance.now();
      await c.put("a", "2", slotOf(c, leader));
      const ms = performance.now() - t0;
      assert.ok(ms < 500, `a write to a sleeping region took ${ms.toFixed(0)} ms`);
      assert.equal(c.leaderOf(1), leader, "the same leader");
      for (let i = 0; i < 3; i++) await c.waitLocal(i, "a", "2");
      // And it goes back to sleep.
      await waitAsleep(c);
      assert.equal(await c.get("a"), "2");
    }),
);

Deno.test(
  "answers still on their way when a region fell asleep do not wake it; a follower's word to wake does",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await c.put("w", "1");
      await waitAsleep(c);
      const leader = c.leaderOf(1)!;
      const follower = peersOf(c, 1).find((p) => p !== leader)!;
      const store = (p: Peer) => c.running().find((n) => n.store.storeId === p.storeId)!.store;
      const meta = (p: Peer) => p.region.peers.find((x) => x.id === p.meta.id)!;
      const deliver = async (from: Peer, to: Peer, m: Partial<Message>) => {
        const r = to.region;
        store(to).onRaftBatch({
          fromStoreId: from.storeId,
          envelopes: [{
            regionId: 1,
            fromPeer: meta(from),
            toPeer: meta(to),
            epoch: r.epoch,
            startKey: r.startKey,
            endKey: r.endKey,
            message: {
              ...newMessage({ type: "MsgHeartbeatResp", to: to.meta.id, ...m }),
              from: from.meta.id,
              term: leader.raw.raft.term,
            },
          }],
        });
        await store(to).idle();
      };
      const last = leader.raw.raft.raftLog.lastIndex();
      await deliver(follower, leader, { type: "MsgHeartbeatResp" });
      await deliver(follower, leader, { type: "MsgAppResp", index: last });
      assert.ok(leader.sleep.asleep, "late acknowledgements leave the leader asleep");
      await deliver(leader, follower, { type: "MsgHeartbeat", commit: last });
      assert.ok(follower.sleep.asleep, "a heartbeat from its leader leaves a follower asleep");
      await deliver(follower, leader, { type: "MsgHeartbeatResp", context: WAKE });
      assert.ok(!leader.sleep.asleep, "a follower's word to wake wakes the leader");
    }),
);

Deno.test(
  "a follower of a sleeping region serves a read itself, after waking it",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await c.put("k", "v1");
      await waitAsleep(c);
      const slot = (slotOf(c, c.leaderOf(1)!) + 1) % 3;
      const kv = c.node(slot).kv;
      const before = kv.followerReads;
      assert.equal(await c.get("k", slot), "v1");
      assert.equal(kv.followerReads, before + 1, "served by the follower, not forwarded");
      // Asleep again, a write through the leader is seen by the next read through the follower.
      await waitAsleep(c);
      await c.put("k", "v2", slotOf(c, c.leaderOf(1)!));
      assert.equal(await c.get("k", slot), "v2");
      assert.equal(kv.followerReads, before + 2);
    }),
);

Deno.test(
  "a read on a sleeping leader confirms its leadership with a quorum first",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await c.put("k", "v");
      await waitAsleep(c);
      const leader = c.leaderOf(1)!;
      const slot = slotOf(c, leader);
      const leaseReads = leader.leaseReads;
      assert.equal(await c.get("k", slot), "v");
      assert.equal(leader.leaseReads, leaseReads, "the first read is not served by a lease");
      assert.ok(leader.hasLease(), "the quorum round gave it a fresh lease");
    }),
);

Deno.test(
  "a sleeping region's silent followers are not down: no down-peer report, and a transfer to one goes ahead",
  opts,
  () =>
    withCluster({ stores: 3, store: { maxPeerDownDuration: 500 } }, async (c) => {
      await c.put("k", "v");
      await waitAsleep(c);
      const leader = c.leaderOf(1)!;
      const follower = leader.region.peers.find((p) => p.id !== leader.meta.id)!;
      const reportsBefore = c.scheduler.cluster.counters.regionHeartbeats;
      // Four times max-peer-down-duration without a Raft message from the followers.
      await new Promise((r) => setTimeout(r, 2_000));
      assert.ok(leader.sleep.asleep, "the region slept throughout");
      assert.ok(
        c.scheduler.cluster.counters.regionHeartbeats > reportsBefore,
        "the sleeping region was reported meanwhile",
      );
      assert.deepEqual(c.scheduler.cluster.getRegion(1).downPeers, [], "no peer reported down");
      const node = c.running().find((n) => n.store.peers.get(1) === leader)!;
      await node.workers.heartbeat.execute(leader, { type: "TransferLeader", peer: follower });
      await waitFor("the follower to lead", () => c.leaderOf(1)?.meta.id === follower.id);
    }),
);

Deno.test(
  "a sleeping follower cut off from its leader never unseats it",
  opts,
  () =>
    withCluster({ stores: 3 }, (c) =>
      cutOffFollowerKeepsLeader(
        c,
        (leader, follower) => c.network.partition([leader], [follower]),
        () => c.network.clearFilters(),
      )),
);

Deno.test(
  "the store of a sleeping leader dies: the region is served again within an election timeout",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await c.put("d", "1");
      await waitAsleep(c);
      const leader = c.leaderOf(1)!;
      const lSlot = slotOf(c, leader);
      const other = (lSlot + 1) % 3;
      await c.stopStore(lSlot);
      const t0 = performance.now();
      await c.put("d", "2", other);
      const ms = performance.now() - t0;
      // Store silence (one election timeout) + the election (at most one more) + slack.
      assert.ok(ms < 2_500, `the write after the leader's death took ${ms.toFixed(0)} ms`);
      assert.notEqual(c.leaderOf(1)?.storeId, leader.storeId);
      assert.equal(await c.get("d", other), "2");
    }),
);

Deno.test(
  "the store of a sleeping leader dies and nobody needs the region: it gets a leader after the failover delay, not before",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await c.put("u", "1");
      await waitAsleep(c);
      const leader = c.leaderOf(1)!;
      const term = leader.raw.raft.term;
      const lSlot = slotOf(c, leader);
      const failoverMs = c.node((lSlot + 1) % 3).store.hibernation.failoverMs;
      await c.stopStore(lSlot);
      const t0 = performance.now();
      // Nothing asks for the region: its followers give the silent store the failover delay
      // (ten election timeouts, 5 s here) to speak again, then wake and elect a leader within
      // about one more election timeout.
      await waitFor("a new leader of region 1", () =>
        c.leaderOf(1) !== undefined, failoverMs + 5_000);
      const ms = performance.now() - t0;
      assert.ok(ms > failoverMs / 2, `a follower campaigned after only ${ms.toFixed(0)} ms`);
      assert.ok(c.leaderOf(1)!.raw.raft.term > term);
      await c.put("u", "2", (lSlot + 1) % 3);
      assert.equal(await c.get("u", (lSlot + 2) % 3), "2");
    }),
);

Deno.test(
  "the store of a sleeping leader restarts at once: its incarnation tells followers the leader is gone",
  opts,
  () =>
    withCluster({ stores: 3, store: { electionTicks: 40 } }, async (c) => {
      await c.put("r", "1");
      await waitAsleep(c);
      const leader = c.leaderOf(1)!;
      const lSlot = slotOf(c, leader);
      const others = c.running().filter((n) => n.store.storeId !== leader.storeId);
      const changes = () => others.map((n) => n.store.hibernation.liveness.changes);
      assert.deepEqual(changes(), [0, 0]);
      await c.stopStore(lSlot);
      await c.startStore(lSlot); // well inside the 2 s it takes to call a silent store down
      // The restarted store's peer forgot it led, but its store pings as before: its new
      // incarnation tells the old followers at once that their leader is gone, so they grant
      // votes and campaign within one election timeout (2 s here). (Were they only woken by the
      // restarted peer's first vote request, they would refuse it, wait a whole election
      // timeout without news and only then campaign: 2 to 6 s.)
      await waitFor("a leader of region 1", () => c.leaderOf(1) !== undefined, 2_600);
      assert.deepEqual(changes(), [1, 1], "each saw one change: the restart");
      await c.put("r", "2", (lSlot + 1) % 3);
      await c.waitLocal(lSlot, "r", "2");
    }),
);

Deno.test(
  "with hibernation off, regions never sleep",
  opts,
  () =>
    withCluster({ stores: 3, store: { hibernateRegions: false } }, async (c) => {
      await c.put("x", "1");
      await new Promise((r) => setTimeout(r, 1_500));
      assert.ok(peersOf(c, 1).every((p) => !p.sleep.asleep));
      assert.equal(c.running().reduce((n, x) => n + x.store.hibernation.asleep, 0), 0);
      assert.ok(await c.get("x") === "1");
      assert.ok(b("x").length === 1);
    }),
);

Deno.test(
  "over HTTP, a sleeping follower whose link to the leader drops packets never unseats it",
  opts,
  () =>
    withCluster({ stores: 3, http: true }, (c) =>
      cutOffFollowerKeepsLeader(
        c,
        (leader, follower) => c.links.cut([leader], [follower]),
        () => c.links.heal(),
      )),
);

Deno.test(
  "over HTTP, the store of a sleeping leader cut off from everyone: the rest take over, the old leader steps down",
  opts,
  () =>
    withCluster({ stores: 3, http: true }, async (c) => {
      await c.put("i", "1");
      await waitAsleep(c);
      const leader = c.leaderOf(1)!;
      const lSlot = slotOf(c, leader);
      const others = [0, 1, 2].filter((i) => i !== lSlot);
      c.links.cut([leader.storeId], [...others.map((i) => c.storeId(i)), "scheduler"]);
      const t0 = performance.now();
      await c.put("i", "2", others[0]);
      const ms = performance.now() - t0;
      assert.ok(ms < 3_000, `the write on the majority side took ${ms.toFixed(0)} ms`);
      // The old leader hears from nobody: once the others have been silent for ten election
      // timeouts (5 s here) it wakes, its quorum check fails, it steps down.
      await waitFor("the cut-off leader to step down", () => !leader.isLeader(), 10_000);
      c.links.heal();
      await c.waitLocal(lSlot, "i", "2");
    }),
);
