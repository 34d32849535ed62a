/**
 * A peer told it was removed while its store writes an apply pass that carries a split: the
 * destruction must wait for the pass. Before, it ran in the middle of it: it took the region out
 * of the store meta and wrote its tombstone, then the pass finished and put the split's left half
 * back into the store meta with no peer behind it (every later peer of the region was refused as
 * overlapping it, and a learner the scheduler added there never came to exist), wrote the region
 * back as `Normal` on disk over its tombstone, and the destruction's range delete, taken over the
 * range from before the split, deleted the data of the regions the split created. And a region
 * refused like that is now named in the log.
 */
import assert from "node:assert/strict";
import type { Peer as PeerMeta, Region } from "../proto/metapb.ts";
import type { SplitTarget } from "../raftstore/cmd.ts";
import type { WriteBatch } from "../storage/mod.ts";
import { b, str, waitFor, withCluster } from "./cluster.ts";
import { changePeer, holdFirstCall, quietCluster, storeOf, tellRemoved } from "./peer_faults.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

for (const splitKeys of [["m"], ["h", "q"]]) {
  Deno.test(
    `a peer destroyed while it applies a split at ${splitKeys.join(", ")} stays gone, its ` +
      `split's regions keep their data, and the region can come back`,
    opts,
    () =>
      withCluster({ stores: 4 }, async (c) => {
        await quietCluster(c);
        // One key in the left half and one in each region the split creates.
        const keys = ["a", ...splitKeys.map((k) => `${k}1`)];
        for (const k of keys) await c.put(k, `v-${k}`);
        const leader = c.leaderOf(1)!;
        const slot = c.nodes.findIndex((n) =>
          n && !leader.region.peers.some((p) => p.storeId === n.store.storeId)
        );
        const store = c.node(slot).store;

        // A learner on the fourth store, caught up.
        const learner: PeerMeta = {
          id: await c.scheduler.cluster.allocIds(1),
          storeId: store.storeId,
          role: "Learner",
        };
        await changePeer(c, leader, "AddLearnerNode", learner);
        for (const k of keys) await c.waitLocal(slot, k, `v-${k}`);
        const created = store.peers.get(1)!;

        // Hold the learner's write of the apply pass that carries the split: it is the one that
        // writes the state of a new region.
        const peerCount = leader.region.peers.length;
        const splits: SplitTarget[] = [];
        for (const k of splitKeys) {
          const first = await c.scheduler.cluster.allocIds(1 + peerCount);
          splits.push({
            splitKey: b(k),
            newRegionId: first,
            newPeerIds: Array.from({ length: peerCount }, (_, j) => first + 1 + j),
          });
        }
        const newIds = splits.map((s) => s.newRegionId);
        const hold = holdFirstCall(
          store.engine,
          "write",
          (wb: WriteBatch) =>
            wb.ops().some((op) =>
              op.key[0] === "r" && op.key[1] === newIds[0] && op.key[2] === "region"
            ),
        );
        const split = leader.propose({
          header: { regionId: 1, peerId: leader.meta.id, epoch: leader.region.epoch },
          admin: { type: "Split", splits },
        });
        storeOf(c, leader).schedule(leader);
        await split;
        const version = leader.region.epoch.version;
        await waitFor("the learner's write of the split to be held", () => hold.held);

        // The region removes the learner and its leader tells it so, while that write waits.
        await changePeer(c, leader, "RemoveNode", learner);
        tellRemoved(store, leader, learner);
        await waitFor("the tombstone to reach the learner", () => created.destroyed);
        // A destruction that went ahead of the held write (it wrote the tombstone as soon as it
        // was asked) runs to its end first, as it would if the write were slow.
        if (store.tombstones.has(1)) await store.destroyPeer(created);
        hold.release();
        await store.destroyPeer(created);
        await store.idle(); // the held pass has acted on its results
        await waitFor("the learner to be gone", () => !store.peers.has(1));

        const problems: string[] = [];
        if (store.meta.regions.has(1)) problems.push("region 1 is in the store meta with no peer");
        const left = { startKey: new Uint8Array(), endKey: b(splitKeys[0]!) };
        const ghosts = store.meta.overlapping(left).map((r) => r.id);
        if (ghosts.length > 0) problems.push(`the left half's range is held by ${ghosts}`);
        const onDisk = await store.engine.regionState(1);
        if (onDisk?.peerState !== "Tombstone") {
          problems.push(`region 1 is ${onDisk?.peerState} on disk, not Tombstone`);
        } else if ((onDisk.region as Region).epoch.version !== version) {
          problems.push(
            `region 1's tombstone has version ${(onDisk.region as Region).epoch.version}`,
          );
        }
        if ((await store.engine.get(b("a"))) !== null) {
          problems.push("the left half's data is left");
        }
        for (const [i, s] of splits.entries()) {
          const id = s.newRegionId;
          const peer = store.peers.get(id);
          if (!peer?.storage.isInitialized()) problems.push(`region ${id} has no peer`);
          const range = store.meta.regionForKey(s.splitKey);
          if (range?.id !== id) problems.push(`region ${id} is not in the store meta`);
          const key = keys[i + 1]!;
          const value = str(await store.engine.get(b(key)));
          if (value !== `v-${key}`) problems.push(`region ${id} lost ${key} (read ${value})`);
        }
        assert.deepEqual(problems, []);

        // Added back under a new peer ID, the region's peer is created and catches up.
        const again = { ...learner, id: await c.scheduler.cluster.allocIds(1) };
        await changePeer(c, c.leaderOf(1)!, "AddLearnerNode", again);
        await c.put("b", "v-b", c.nodes.findIndex((n) => n?.store.storeId === leader.storeId));
        await waitFor("the learner added again to catch up", async () => {
          const p = store.peers.get(1);
          return p?.meta.id === again.id && (await store.engine.get(b("b"))) !== null;
        }, 20_000);
        // And the regions the split created still serve their keys.
        for (const k of keys.slice(1)) assert.equal(await c.get(k), `v-${k}`);
      }),
  );
}

Deno.test(
  "a region refused for good because its range overlaps a local one is logged, naming both",
  opts,
  () =>
    withCluster({ stores: 4 }, async (c) => {
      await quietCluster(c);
      const leader = c.leaderOf(1)!;
      const slot = c.nodes.findIndex((n) =>
        n && !leader.region.peers.some((p) => p.storeId === n.store.storeId)
      );
      const store = c.node(slot).store;
      const warnings: string[] = [];
      const warn = store.log.warn;
      store.log.warn = (msg) => {
        warnings.push(msg);
        warn(msg);
      };
      // A range with no peer behind it, as the race above used to leave.
      store.meta.setRegion({
        id: 999,
        startKey: new Uint8Array(),
        endKey: new Uint8Array(),
        epoch: { confVer: 3, version: 4 },
        peers: [{ id: 998, storeId: store.storeId, role: "Voter" }],
      });
      const learner: PeerMeta = {
        id: await c.scheduler.cluster.allocIds(1),
        storeId: store.storeId,
        role: "Learner",
      };
      await changePeer(c, leader, "AddLearnerNode", learner);
      const named = (m: string) =>
        m.startsWith(`region 1: no peer ${learner.id} created here`) &&
        m.includes("overlaps local region 999 (epoch 3/4, no local peer)");
      await waitFor("the refusal to be logged", () => warnings.some(named));
      assert.equal(store.peers.has(1), false);
      // Not per message: the first report counts every message dropped in the grace period.
      const line = warnings.find(named)!;
      const dropped = Number(/\((\d+) messages dropped since the last report\)/.exec(line)?.[1]);
      assert.ok(dropped > 1, line);
      store.log.warn = warn;
    }),
);
