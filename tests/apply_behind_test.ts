/**
 * Applied data is written behind the Raft log (raftstore/apply_writer.ts): a pass does not wait
 * for the Deno KV write of what it applied, so the next writes go on while it lands; a read of
 * one key sees the applied value from the writer before it lands, and a scan waits for it.
 */
import assert from "node:assert/strict";
import { waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "a held apply write holds back scans of its data, not point reads or the writes after it",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await c.put("k", "v0");
      const leader = c.leaderOf(1)!;
      const slot = c.nodes.findIndex((n) => n?.store.storeId === leader.storeId);
      assert.equal(await c.get("k", slot), "v0");
      const engine = c.node(slot).store.engine;
      // Hold every Deno KV commit of the leader's store (its Raft log is another file).
      const gate = Promise.withResolvers<void>();
      let held = 0;
      let scanned: string[] | undefined;
      engine.beforeCommit = async () => {
        held++;
        await gate.promise;
      };
      try {
        // Each write is answered once committed, and the next one's pass does not wait for the
        // previous pass's apply write: three writes in a row complete while it is held.
        const term = leader.raw.raft.term;
        for (const v of ["v1", "v2", "v3"]) await c.put("k", v, slot);
        // (Not by a new leader: a pass stuck on the write would stop heartbeats, and another
        // store would take over after an election timeout.)
        assert.ok(leader.isLeader() && leader.raw.raft.term === term, "the same leader served");
        assert.ok(held >= 1, "the first apply write is being held");
        assert.equal(await c.localGet(slot, "k"), "v0", "none of it has landed");
        // A read of the key sees the last acknowledged write now, from the apply writer.
        assert.equal(await c.get("k", slot), "v3");
        await c.delete("k", slot);
        assert.equal(await c.get("k", slot), null, "a pending delete reads as absent");
        await c.put("k", "v4", slot);
        assert.equal(await c.get("k", slot), "v4");
        assert.equal(await c.localGet(slot, "k"), "v0", "still none of it has landed");
        // A scan reads the engine, so it waits for the write carrying what it must see.
        c.node(slot).kv.scan(new TextEncoder().encode("k"), undefined, 10).then((page) =>
          scanned = page.kvs.map((kv) => new TextDecoder().decode(kv.value))
        );
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(scanned, undefined, "the scan waits for the held apply write");
      } finally {
        engine.beforeCommit = undefined;
        gate.resolve();
      }
      await waitFor("the scan", () => scanned !== undefined, 5_000);
      assert.deepEqual(scanned, ["v4"]);
      assert.equal(await c.localGet(slot, "k"), "v4");
      assert.equal(await c.get("k", slot), "v4", "the landed value, from the engine");
      const { writes, batches } = c.node(slot).store.applyWrites;
      assert.ok(
        batches > writes,
        `batches queued behind the held write shared one (${batches} in ${writes})`,
      );
    }),
);
