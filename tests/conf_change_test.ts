/**
 * Membership change on a real cluster: the rules a store enforces itself (no removing the
 * leader), leader transfer followed by removal, and destruction of a peer that was removed while
 * it could not hear about it.
 */
import assert from "node:assert/strict";
import { MrkvError } from "../proto/errors.ts";
import type { Peer as PeerMeta } from "../proto/metapb.ts";
import type { Peer } from "../raftstore/peer.ts";
import { pauseBalancers, type TestCluster, waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/**
 * Stops the scheduler from scheduling: it would put removed peers straight back, and its replica
 * checker would race the test's own removals (moving the leader away under them).
 */
async function pauseScheduling(c: TestCluster): Promise<void> {
  await pauseBalancers(c);
  c.scheduler.cluster.config = {
    ...c.scheduler.cluster.config,
    maxReplicas: 2,
    replicaScheduleLimit: 0,
  };
}

function removePeer(c: TestCluster, leader: Peer, target: PeerMeta): Promise<void> {
  const p = leader.proposeConfChange({
    header: { regionId: leader.regionId, peerId: leader.meta.id, epoch: leader.region.epoch },
    admin: { type: "ChangePeer", changeType: "RemoveNode", peer: target },
  });
  c.running().find((n) => n.store.storeId === leader.storeId)!.store.schedule(leader);
  return p;
}

Deno.test(
  "removing the leader is refused; after a leader transfer the old leader can be removed and is destroyed",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await c.put("k1", "v1");
      await pauseScheduling(c);
      const leader = c.leaderOf(1)!;
      await assert.rejects(
        () => removePeer(c, leader, leader.region.peers.find((p) => p.id === leader.meta.id)!),
        (e) =>
          e instanceof MrkvError && e.code === "BadRequest" &&
          /transfer leadership first/.test(e.message),
      );
      const oldLeaderStore = leader.storeId;
      const target = leader.region.peers.find((p) => p.id !== leader.meta.id)!;
      leader.transferLeader(target.id);
      c.running().find((n) => n.store.storeId === oldLeaderStore)!.store.schedule(leader);
      await waitFor("the leader transfer", () => c.leaderOf(1)?.meta.id === target.id);
      const newLeader = c.leaderOf(1)!;
      await removePeer(
        c,
        newLeader,
        newLeader.region.peers.find((p) => p.storeId === oldLeaderStore)!,
      );
      const oldStore = c.running().find((n) => n.store.storeId === oldLeaderStore)!;
      await waitFor("the removed peer to destroy itself", () => !oldStore.store.peers.has(1));
      assert.ok(oldStore.store.tombstones.has(1), "a tombstone remembers the removed peer");
      await waitFor(
        "its data to be deleted",
        async () => (await oldStore.store.engine.get(new TextEncoder().encode("k1"))) === null,
      );
      await c.put("k2", "v2");
      assert.equal(await c.get("k2"), "v2");
      assert.equal(
        await c.get("k1", c.nodes.indexOf(oldStore)),
        "v1",
        "the store still serves the key by forwarding",
      );
    }),
);

Deno.test(
  "a peer removed while partitioned away destroys itself when it can hear again",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await pauseScheduling(c);
      await c.put("before", "1");
      const leader = c.leaderOf(1)!;
      const victim = leader.region.peers.find((p) => p.id !== leader.meta.id)!;
      const victimNode = c.running().find((n) => n.store.storeId === victim.storeId)!;
      await c.waitLocal(c.nodes.indexOf(victimNode), "before", "1");
      c.network.isolate(victim.storeId);
      await removePeer(c, leader, victim);
      for (let i = 0; i < 10; i++) {
        await c.put(
          `after${i}`,
          "x",
          c.nodes.findIndex((n) => n?.store.storeId === leader.storeId),
        );
      }
      assert.ok(victimNode.store.peers.has(1), "the isolated peer has not heard of its removal");
      c.network.clearFilters();
      await waitFor("the stale peer to be destroyed", () => !victimNode.store.peers.has(1));
      await waitFor(
        "its data to be deleted",
        async () =>
          (await victimNode.store.engine.get(new TextEncoder().encode("before"))) === null,
      );
      // The region goes on with two peers.
      await c.put("later", "2");
      assert.equal(await c.get("later"), "2");
      // A restart remembers the tombstone: the removed peer does not come back.
      const victimSlot = c.nodes.indexOf(victimNode);
      await c.stopStore(victimSlot);
      const restarted = await c.startStore(victimSlot);
      assert.ok(restarted.store.tombstones.has(1), "the tombstone survives a restart");
      assert.ok(!restarted.store.peers.has(1), "the removed peer is not loaded again");
      await c.put("after-restart", "3");
      assert.ok(!restarted.store.peers.has(1), "nor recreated by the region's traffic");
    }),
);

Deno.test(
  "a follower restarted behind the log catches up by log; after log GC, by snapshot",
  opts,
  () =>
    withCluster({ stores: 3, store: { raftLogGcCountLimit: 20 } }, async (c) => {
      const leader = c.leaderOf(1)!;
      const slot = c.nodes.findIndex((n) => n && n.store.storeId !== leader.storeId);
      await c.stopStore(slot);
      for (let i = 0; i < 10; i++) await c.put(`log${i}`, "a");
      await c.startStore(slot);
      await c.waitLocal(slot, "log9", "a");
      assert.equal(
        c.node(slot).store.stats.snapshotsApplied,
        0,
        "10 entries behind: caught up by log",
      );
      // Read once the follower has stopped: entries can still reach it until then, and a
      // compaction that stops short of them would let it catch up by log after all.
      const follower = c.node(slot).store;
      await c.stopStore(slot);
      const followerLast = follower.peers.get(1)!.storage.lastIndex();
      for (let i = 0; i < 80; i++) await c.put(`gc${i}`, "b");
      // Every running store, not just the leader: leadership may move (balance-leader), and a
      // new leader that has not compacted yet could still catch the follower up by log.
      await waitFor(
        "every running store to compact its log past the stopped follower's",
        () =>
          c.running().every((n) =>
            n.store.peers.get(1)!.storage.applyState.truncatedIndex > followerLast
          ),
      );
      await c.startStore(slot);
      await c.waitLocal(slot, "gc79", "b");
      assert.ok(
        c.node(slot).store.stats.snapshotsApplied > 0,
        "behind the compacted log: caught up by snapshot",
      );
      assert.equal(await c.localGet(slot, "log3"), "a");
    }),
);

Deno.test(
  "a message for a newer peer ID without a newer region epoch does not destroy a replica",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await c.put("k", "v");
      const node = c.running().find((n) => !n.store.peers.get(1)!.isLeader())!;
      const peer = node.store.peers.get(1)!;
      node.store.onRaftBatch({
        fromStoreId: 999,
        envelopes: [{
          regionId: 1,
          fromPeer: { id: 998, storeId: 999, role: "Voter" },
          toPeer: { id: peer.meta.id + 1000, storeId: node.store.storeId, role: "Voter" },
          epoch: peer.region.epoch,
          startKey: new Uint8Array(),
          endKey: new Uint8Array(),
          message: {
            type: "MsgVote",
            to: peer.meta.id + 1000,
            from: 998,
            term: 1000,
            logTerm: 1000,
            index: 1000,
            entries: [],
            commit: 0,
            reject: false,
            rejectHint: 0,
          },
        }],
      });
      await node.store.idle();
      assert.equal(node.store.peers.get(1), peer, "the replica is still there");
      await c.put("k2", "v2");
      await c.waitLocal(c.nodes.indexOf(node), "k2", "v2");
    }),
);
