import assert from "node:assert/strict";
import { b, str, TEST_STORE_CONFIG, waitFor, withCluster } from "./cluster.ts";
import { startStoreNode } from "../raftstore/node.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "a fresh 3-store cluster replicates region 1 on its own and serves put/get/delete/scan from any store",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      for (let i = 0; i < 50; i++) await c.put(`k${String(i).padStart(3, "0")}`, `v${i}`, i % 3);
      for (let i = 0; i < 50; i++) {
        assert.equal(await c.get(`k${String(i).padStart(3, "0")}`, (i + 1) % 3), `v${i}`);
      }
      // Many writes at once through a follower: it proposes them itself and Raft forwards them
      // to the leader in its message batches.
      const follower = c.nodes.findIndex((n) => n && !n.store.peers.get(1)!.isLeader());
      await Promise.all(Array.from({ length: 40 }, (_, i) => c.put(`busy${i}`, `b${i}`, follower)));
      assert.ok(c.node(follower).kv.viaRaft > 0, "a busy follower forwarded writes through Raft");
      for (let i = 0; i < 40; i++) assert.equal(await c.get(`busy${i}`), `b${i}`);
      await c.delete("k007", 2);
      assert.equal(await c.get("k007", 0), null);
      await c.delete("never-there", 1); // deleting an absent key is not an error
      const page = await c.node(1).kv.scan(b("k010"), b("k020"), 100);
      assert.deepEqual(
        page.kvs.map((kv) => str(kv.key)),
        Array.from({ length: 10 }, (_, i) => `k0${10 + i}`),
      );
      assert.equal(page.next, null);
      const limited = await c.node(2).kv.scan(b(""), undefined, 5);
      assert.equal(limited.kvs.length, 5);
      assert.ok(limited.next !== null);
      // Every store's engine converges to the same data.
      for (let i = 0; i < 3; i++) {
        await c.waitLocal(i, "k049", "v49");
        await c.waitLocal(i, "k007", null);
      }
    }),
);

Deno.test(
  "the leader's store crashes and restarts: a new leader is elected and no acknowledged write is lost",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      for (let i = 0; i < 20; i++) await c.put(`a${i}`, `x${i}`);
      const leader = c.leaderOf(1)!;
      const slot = c.nodes.findIndex((n) => n?.store.storeId === leader.storeId);
      await c.stopStore(slot);
      const other = (slot + 1) % 3;
      for (let i = 20; i < 40; i++) await c.put(`a${i}`, `x${i}`, other);
      await waitFor("a new leader", () => c.leaderOf(1) !== undefined);
      await c.startStore(slot);
      for (let i = 0; i < 40; i++) assert.equal(await c.get(`a${i}`, slot), `x${i}`);
      await c.waitLocal(slot, "a39", "x39");
    }),
);

Deno.test(
  "a store that cannot listen fails naming its address, and never registers",
  opts,
  () =>
    withCluster({ stores: 1, maxReplicas: 1 }, async (c) => {
      const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const addr = `127.0.0.1:${taken.addr.port}`;
      const dir = await Deno.makeTempDir();
      try {
        await assert.rejects(
          startStoreNode({
            config: {
              ...TEST_STORE_CONFIG,
              addr,
              advertiseAddr: addr,
              dataDir: dir,
              scheduler: `http://${c.scheduler.addr}`,
            },
            log: { info() {}, warn() {}, error() {} },
          }),
          new RegExp(`cannot listen on ${addr}`),
        );
        const stores = await (await fetch(`http://${c.scheduler.addr}/pd/api/v1/stores`)).json();
        assert.equal(stores.count, 1, "only the running store is registered");
      } finally {
        taken.close();
        await Deno.remove(dir, { recursive: true });
      }
    }),
);

Deno.test(
  "a store's /metrics reports its Raft log engine: fsyncs, group writes, bytes, files, and the files garbage collection deleted",
  opts,
  () =>
    withCluster({ stores: 1, maxReplicas: 1, store: { raftLogGcCountLimit: 20 } }, async (c) => {
      // Small files, so that compacted logs let garbage collection delete some.
      await c.stopStore(0);
      await c.startStore(0, undefined, { segmentBytes: 8 * 1024 });
      const metrics = async () => {
        const text = await (await c.node(0).app.request("/metrics")).text();
        const value = (name: string) => {
          const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
          assert.ok(m, `${name} is reported`);
          return Number(m[1]);
        };
        return {
          fsyncs: value("mrkv_raft_log_fsyncs_total"),
          writes: value("mrkv_raft_log_writes_total"),
          batches: value("mrkv_raft_log_batches_total"),
          seconds: value("mrkv_raft_log_write_seconds_total"),
          written: value("mrkv_raft_log_written_bytes_total"),
          files: value("mrkv_raft_log_files"),
          bytes: value("mrkv_raft_log_bytes"),
          collected: value("mrkv_raft_log_gc_files_total"),
        };
      };
      const start = await metrics();
      for (let i = 0; i < 150; i++) await c.put(`m${i}`, "x".repeat(200));
      let after = start;
      await waitFor("garbage collection to delete a log file", async () => {
        after = await metrics();
        return after.collected > start.collected;
      });
      // Every write is synced (one per put at least), each sync ends a group write.
      assert.ok(after.fsyncs - start.fsyncs >= 150, `fsyncs ${start.fsyncs} → ${after.fsyncs}`);
      assert.ok(after.writes >= after.fsyncs, "a group write per fsync at least");
      assert.ok(after.batches - start.batches >= 150, `batches ${after.batches}`);
      assert.ok(after.written - start.written > 150 * 200, `bytes written ${after.written}`);
      assert.ok(after.seconds > start.seconds);
      const files = c.node(0).store.raftLog.files();
      assert.equal(after.files, files.append.length + files.rewrite.length);
      assert.ok(after.bytes > 0 && after.bytes < after.written, `bytes on disk ${after.bytes}`);
    }),
);
