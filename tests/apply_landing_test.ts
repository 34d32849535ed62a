/**
 * A pass of plain writes leaves its Deno KV write in flight: the writes are answered (they are
 * committed and were on disk before the pass), the next appends and acknowledgements go on, and
 * only the next pass that applies waits for the data to land. Reads must still see every
 * answered write.
 */
import assert from "node:assert/strict";
import type { Peer as PeerMeta } from "../proto/metapb.ts";
import type { WriteBatch } from "../storage/mod.ts";
import { str, waitFor, withCluster } from "./cluster.ts";
import { changePeer, holdFirstCall, quietCluster, tellRemoved } from "./peer_faults.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "while a leader's applied data is still landing, new writes are appended and replicated, and a read waits to see the answered write",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await c.put("k", "v0");
      const leader = await c.waitLeader(1);
      const slot = c.nodes.findIndex((n) => n?.store.storeId === leader.storeId);
      const engine = c.node(slot).store.engine;
      await c.waitReplicas(1, 3);

      let reading: Promise<unknown> = Promise.resolve();
      let writing: Promise<void> = Promise.resolve();
      // Hold the leader's next Deno KV commit until released.
      const gate = Promise.withResolvers<void>();
      let held = 0;
      engine.beforeCommit = () => {
        held++;
        engine.beforeCommit = undefined;
        return gate.promise;
      };
      try {
        await c.put("k", "v1", slot);
        assert.equal(held, 1, "the write was answered while its applied data was held");
        const answeredAt = leader.storage.lastIndex();
        assert.ok(leader.appliedIndex < answeredAt, "not applied on the leader yet");

        let read: string | null | undefined;
        reading = c.get("k", slot).then((v) => read = v);
        writing = c.put("k2", "v2", slot);
        // The next write is appended and reaches every follower's log meanwhile.
        await waitFor("the next write to be appended and replicated while the data is held", () => {
          const last = leader.storage.lastIndex();
          return last > answeredAt && c.running().every((n) => {
            const p = n.store.peers.get(1);
            return p !== undefined && p.storage.lastIndex() >= last;
          });
        }, 5_000);
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(read, undefined, "the read waits for the answered write's data");
        assert.ok(leader.appliedIndex < answeredAt);
      } finally {
        gate.resolve();
      }
      assert.equal(await reading, "v1", "the read sees the answered write");
      await writing;
      assert.equal(await c.get("k", slot), "v1");
      assert.equal(await c.get("k2"), "v2");
      for (const i of [0, 1, 2]) await c.waitLocal(i, "k2", "v2");
    }),
);

Deno.test(
  "a peer destroyed while its applied data is landing waits for it: no data of the region is left behind",
  opts,
  () =>
    withCluster({ stores: 4 }, async (c) => {
      await quietCluster(c);
      await c.put("a", "v-a");
      const leader = c.leaderOf(1)!;
      const slot = c.nodes.findIndex((n) =>
        n && !leader.region.peers.some((p) => p.storeId === n.store.storeId)
      );
      const store = c.node(slot).store;
      const learner: PeerMeta = {
        id: await c.scheduler.cluster.allocIds(1),
        storeId: store.storeId,
        role: "Learner",
      };
      await changePeer(c, leader, "AddLearnerNode", learner);
      await c.waitLocal(slot, "a", "v-a");
      const created = store.peers.get(1)!;

      // Hold the learner's write of the data of a plain write: its pass ends without it.
      const hold = holdFirstCall(
        store.engine,
        "write",
        (wb: WriteBatch) =>
          wb.ops().some((op) => op.key[0] === "d" && str(op.key[1] as Uint8Array) === "late"),
      );
      await c.put("late", "v-late");
      await waitFor("the learner's write of the data to be held", () => hold.held);

      await changePeer(c, leader, "RemoveNode", learner);
      tellRemoved(store, leader, learner);
      await waitFor("the tombstone to reach the learner", () => created.destroyed);
      // The destruction cannot finish before the data it must delete has landed.
      const destroying = store.destroyPeer(created);
      let finished = false;
      void destroying.then(() => finished = true);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(finished, false, "the destruction waits for the held write");
      hold.release();
      await destroying;
      await store.idle();
      await waitFor("the learner to be gone", () => !store.peers.has(1));
      assert.equal(await c.localGet(slot, "late"), null, "the held write's data was deleted");
      assert.equal(await c.localGet(slot, "a"), null);
      assert.equal((await store.engine.regionState(1))?.peerState, "Tombstone");
      assert.equal(await c.get("late"), "v-late", "the region still serves it");
    }),
);
