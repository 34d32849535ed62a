/**
 * Raft's availability never depends on the scheduler. Stores talk real HTTP on 127.0.0.1; the
 * old leader and the scheduler are cut off from the other two stores, which have never talked to
 * each other (followers only talk to their leader). The two must find each other on their own,
 * elect a leader within about two seconds and serve — also after one of them restarts while the
 * scheduler is still out of reach.
 */
import assert from "node:assert/strict";
import { waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "a majority cut off from the scheduler and the old leader elects a leader and serves",
  opts,
  () =>
    withCluster({ stores: 3, http: true }, async (c) => {
      await c.put("a", "1");
      const leader = c.leaderOf(1)!;
      const slotOf = (storeId: number) => c.nodes.findIndex((n) => n?.store.storeId === storeId);
      const majority = c.running().map((n) => n.store.storeId).filter((id) =>
        id !== leader.storeId
      );
      assert.equal(majority.length, 2);
      const [s1, s2] = majority.map(slotOf) as [number, number];
      // The two have never exchanged a Raft message.
      for (const [i, other] of [[s1, majority[1]!], [s2, majority[0]!]] as const) {
        assert.ok(
          c.node(i).store.peers.get(1)!.lastHeard.get(
            c.node(i).store.peers.get(1)!.region.peers.find((p) => p.storeId === other)!.id,
          ) === undefined,
        );
      }

      c.links.cut([leader.storeId, "scheduler"], majority);
      const cutAt = Date.now();
      const leads = (i: number) => c.node(i).store.peers.get(1)?.isLeader() ?? false;
      await waitFor("a leader among the majority", () => leads(s1) || leads(s2), 10_000);
      const electedMs = Date.now() - cutAt;
      console.log(`majority without the scheduler elected a leader in ${electedMs} ms`);
      assert.ok(electedMs < 2_000, `elected within 2 s of the cut (took ${electedMs} ms)`);
      await c.put("b", "2", s1);
      assert.equal(await c.get("b", s2), "2");

      // A majority store restarts with the scheduler still unreachable: it starts from local
      // state, reaches its peer from its saved addresses, and serves.
      await c.stopStore(s2);
      await c.startStore(s2);
      await c.put("c", "3", s2);
      assert.equal(await c.get("c", s1), "3");
      assert.equal(await c.get("a", s2), "1");

      c.links.heal();
      await waitFor(
        "the old leader's store to catch up",
        async () => (await c.localGet(slotOf(leader.storeId), "c")) === "3",
      );
      assert.equal(await c.get("b", slotOf(leader.storeId)), "2");
    }),
);
