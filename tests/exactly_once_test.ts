/**
 * A client write takes effect at most once, whatever the timeouts, retries and forwarding.
 *
 * - A store cut off from the leader keeps retrying its client's write; each attempt's forward
 *   hangs on the cut link (as under `iptables -j DROP`) and stays in flight. After the heal the
 *   write is acknowledged, another client overwrites the key and is acknowledged, and only then
 *   do the stray copies reach the leader: the key must keep the newer value.
 * - A leader whose disk stalls past a client's attempt timeout must not propose the write again:
 *   the retry joins the pending proposal, and the write enters the log once.
 * - Answers say what a client may assume: `Timeout` (with `outcome: unknown`) when a write may
 *   have been applied, any other error only when it certainly was not.
 */
import assert from "node:assert/strict";
import { decodeCmd } from "../raftstore/cmd.ts";
import { MrkvError } from "../proto/errors.ts";
import { newRequestTag } from "../raftstore/applied_requests.ts";
import { b, str, waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "copies of a write delivered after a newer acknowledged write do not undo it",
  opts,
  () =>
    withCluster({ stores: 3, http: true }, async (c) => {
      await c.put("k", "v0");
      const leader = c.leaderOf(1)!;
      const slotOf = (id: number) => c.nodes.findIndex((n) => n?.store.storeId === id);
      const cutSlot = c.nodes.findIndex((n) =>
        n !== undefined && n.store.storeId !== leader.storeId
      );
      const cutId = c.node(cutSlot).store.storeId;
      c.links.cut([cutId], [leader.storeId]);

      // Client A writes through the cut-off store; its attempts' forwards hang and stay parked.
      const a = c.put("k", "v1", cutSlot);
      const strays = () =>
        c.links.parked().filter((p) =>
          p.method === "PUT" && p.from === cutId && p.to === leader.storeId
        );
      await waitFor(
        "three attempts of A's write to be in flight",
        () => strays().length >= 3,
        9_000,
      );
      c.links.heal({ release: false });
      await a; // acknowledged by an attempt after the heal
      assert.equal(await c.get("k", slotOf(leader.storeId)), "v1");

      // Client B overwrites the key, and is acknowledged.
      await c.put("k", "v2", slotOf(leader.storeId));
      // Now the stray copies of A's write arrive.
      const copies = strays().length;
      c.links.releaseAll();
      await c.links.settled();
      assert.ok(copies >= 3, `${copies} stray copies were delivered`);
      for (const n of c.running()) {
        await waitFor(
          `store ${n.store.storeId} to apply everything`,
          () => n.store.peers.get(1)!.appliedIndex >= c.leaderOf(1)!.appliedIndex,
        );
      }
      for (const [i, n] of c.nodes.entries()) {
        if (!n) continue;
        assert.equal(await c.get("k", i), "v2", `B's newer write stands (read via slot ${i})`);
        assert.equal(await c.localGet(i, "k"), "v2", `slot ${i}'s engine holds B's write`);
      }
      const skipped = c.running().reduce(
        (s, n) => s + n.store.peers.get(1)!.storage.requests.duplicates,
        0,
      );
      assert.ok(skipped >= copies, `every replica skipped the copies (${skipped} skips)`);
    }),
);

Deno.test(
  "a leader whose disk stalls past the attempt timeout proposes the write once",
  opts,
  () =>
    // A long election timeout keeps the stalled leader in office through the stall.
    withCluster({ stores: 3, store: { electionTicks: 100 } }, async (c) => {
      await c.put("k", "v0");
      const leader = c.leaderOf(1)!;
      const slot = c.nodes.findIndex((n) => n?.store.storeId === leader.storeId);
      const { engine, raftLog } = c.node(slot).store;
      let open!: () => void;
      const gate = new Promise<void>((r) => open = r);
      let stalled = 0;
      // Both of the store's engines share the disk.
      engine.beforeCommit = raftLog.beforeWrite = async () => {
        stalled++;
        await gate;
      };
      const first = leader.storage.lastIndex() + 1;
      const write = c.put("k", "v1", slot);
      // Past one attempt timeout (2 s), the client's store retries.
      await new Promise((r) => setTimeout(r, 3_000));
      assert.ok(stalled > 0, "the leader's disk stalled");
      assert.ok(c.node(slot).kv.retries >= 1, "the write was retried during the stall");
      engine.beforeCommit = raftLog.beforeWrite = undefined;
      open();
      await write;
      assert.equal(await c.get("k", slot), "v1");
      const entries = leader.storage.entries(first, leader.storage.lastIndex() + 1, 1 << 30);
      const copies = entries.filter((e) => {
        if (e.type !== "Normal" || e.data.length === 0) return false;
        const cmd = decodeCmd(e.data);
        return cmd.requests?.some((r) => r.type === "Put" && str(r.value) === "v1") ?? false;
      });
      assert.equal(copies.length, 1, "the write entered the log once");
    }),
);

Deno.test(
  "a write that may have been applied is answered Timeout with an unknown outcome",
  opts,
  () =>
    withCluster({ stores: 3, http: true }, async (c) => {
      await c.put("k", "v0");
      const leader = c.leaderOf(1)!;
      const slot = c.nodes.findIndex((n) => n?.store.storeId === leader.storeId);
      // The leader is cut off from everyone: the write enters its log, and perhaps more.
      const others = c.running().map((n) => n.store.storeId).filter((id) => id !== leader.storeId);
      c.links.cut([leader.storeId], [...others, "scheduler"]);
      const node = c.node(slot);
      const short =
        new (node.kv.constructor as typeof import("../raftstore/kv_service.ts").KvService)(
          node.store,
          node.kv.scheduler,
          node.kv.forward,
          3_000,
        );
      const err = await short.put(b("k"), b("v1")).then(() => undefined, (e) => e);
      assert.ok(err instanceof MrkvError, String(err));
      assert.equal(err.code, "Timeout", err.message);
      assert.equal(err.details.outcome, "unknown");
      assert.equal(
        await c.get("k", c.nodes.findIndex((n) => n?.store.storeId === others[0])),
        "v0",
      );
    }),
);

Deno.test(
  "a region split off and a replica built from a snapshot remember the writes already applied",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      const leader = c.leaderOf(1)!;
      const slot = c.nodes.findIndex((n) => n?.store.storeId === leader.storeId);
      const node = c.node(slot);
      const tag = newRequestTag();
      await node.kv.localWrite(b("m1"), b("first"), tag);
      await c.put("m1", "second");
      // Split at "m": the key now belongs to the new region.
      await node.workers.split.splitRegion(leader, [b("m")]);
      const rightId = c.node(slot).store.meta.regionForKey(b("m1"))!.id;
      assert.notEqual(rightId, 1);
      const right = () => ({ id: rightId });
      await waitFor("the split to reach every store", () =>
        c.running().every((n) => n.store.meta.regionForKey(b("m1"))?.id === rightId));
      await waitFor("a leader for the new region", () =>
        c.leaderOf(right().id) !== undefined);
      const rightLeader = c.leaderOf(right().id)!;
      const rightSlot = c.nodes.findIndex((n) => n?.store.storeId === rightLeader.storeId);
      // A retry of the first write, now routed to the new region, is recognized and skipped.
      await c.node(rightSlot).kv.localWrite(b("m1"), b("first"), tag);
      assert.equal(await c.get("m1"), "second");
      assert.ok(rightLeader.storage.requests.duplicates >= 1);

      // A replica that catches up by snapshot knows the tag too.
      const follower = c.nodes.findIndex((n) =>
        n !== undefined && n.store.storeId !== rightLeader.storeId
      );
      await c.stopStore(follower);
      for (let i = 0; i < 20; i++) await c.put(`m${i + 10}`, "x", rightSlot);
      const p = c.leaderOf(right().id)!;
      await p.propose({
        header: { regionId: p.regionId, peerId: p.meta.id, epoch: p.region.epoch },
        admin: {
          type: "CompactLog",
          compactIndex: p.appliedIndex - 1,
          compactTerm: p.storage.term(p.appliedIndex - 1),
        },
      });
      await c.startStore(follower);
      await waitFor("the follower to catch up by snapshot", () =>
        (c.node(follower).store.peers.get(right().id)?.appliedIndex ?? 0) >= p.appliedIndex);
      assert.ok(c.node(follower).store.stats.snapshotsApplied >= 1, "caught up by snapshot");
      const table = c.node(follower).store.peers.get(right().id)!.storage.requests;
      assert.equal(table.check(tag), "duplicate", "the snapshot carried the applied writes");
    }),
);
