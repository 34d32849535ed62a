/**
 * Linearizable reads: ReadIndex and the leader lease. Reads under steady traffic are served by
 * the lease (no quorum round each), and a leader cut off from its followers never serves a stale
 * value: by the time the majority can have elected another leader and acknowledged a newer
 * write, the old leader's lease has run out.
 */
import assert from "node:assert/strict";
import { MrkvError } from "../proto/errors.ts";
import { b, str, type TestCluster, waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "steady reads are served by the leader lease, and still see every acknowledged write",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      for (let i = 0; i < 50; i++) {
        await c.put("counter", String(i));
        assert.equal(await c.get("counter"), String(i));
      }
      const leader = c.leaderOf(1)!;
      assert.ok(leader.leaseReads > 0, `reads were served by the lease (${leader.leaseReads})`);
      assert.ok(leader.hasLease());
    }),
);

Deno.test(
  "a leader isolated from its followers never serves a stale read",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await c.put("x", "old");
      assert.equal(await c.get("x"), "old");
      const old = c.leaderOf(1)!;
      const oldSlot = c.nodes.findIndex((n) => n?.store.storeId === old.storeId);
      assert.ok(old.hasLease(), "the leader holds a lease before the partition");
      c.network.isolate(old.storeId);
      const other = (oldSlot + 1) % 3;
      await c.put("x", "new", other); // needs a new leader on the majority side
      assert.equal(await c.get("x", other), "new");
      // The old leader may still believe it leads, but its lease has run out: a local read
      // must fail rather than return "old".
      const kv = c.node(oldSlot).kv;
      await assert.rejects(
        Promise.race([
          kv.localGet(b("x")).then((v) => assert.fail(`the cut-off leader read ${str(v)}`)),
          new Promise((_, reject) =>
            setTimeout(() => reject(new MrkvError("Timeout", "no answer")), 1_500)
          ),
        ]),
        (e) => e instanceof MrkvError,
      );
      assert.ok(!old.hasLease(), "the cut-off leader's lease has ended");
      c.network.clearFilters();
      await waitFor("the old leader to step down", () => !old.isLeader());
      assert.equal(await c.get("x", oldSlot), "new");
    }),
);

Deno.test(
  "a write acknowledged by a busy follower is seen by the next read through the leader",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      const leader = c.leaderOf(1)!;
      const leaderSlot = c.nodes.findIndex((n) => n?.store.storeId === leader.storeId);
      const follower = c.nodes.findIndex((n, i) => n !== undefined && i !== leaderSlot);
      // A slow disk on the leader: its appends leave before its own write (thesis §10.2.1), so
      // followers can learn of a commit and apply it well before the leader's apply lands.
      c.node(leaderSlot).store.engine.beforeCommit = () => new Promise((r) => setTimeout(r, 20));
      // 32 writers through one follower keep it busy, so it proposes the writes itself and
      // answers once it has applied them; each writer then reads its key through the leader.
      await Promise.all(Array.from({ length: 32 }, async (_, w) => {
        for (let n = 0; n < 5; n++) {
          const key = `lin${w}-${n}`;
          await c.put(key, `v${n}`, follower);
          assert.equal(await c.get(key, leaderSlot), `v${n}`, `read after acknowledged ${key}`);
        }
      }));
      assert.ok(c.node(follower).kv.viaRaft > 0, "the follower forwarded writes through Raft");
    }),
);

/** Slots of region 1's leader and of its followers. */
function roles(c: TestCluster) {
  const leader = c.leaderOf(1)!;
  const leaderSlot = c.nodes.findIndex((n) => n?.store.storeId === leader.storeId);
  const followers = c.nodes.flatMap((n, i) => n !== undefined && i !== leaderSlot ? [i] : []);
  return { leader, leaderSlot, followers };
}

/**
 * Region 1 on 3 replicas, one follower of which hears the leader's appends and heartbeats 100
 * ms late: it learns of each commit (and applies it) well after the leader acknowledged the
 * write, while its read index requests and their answers pass at once.
 */
async function laggingFollower(c: TestCluster) {
  await c.put("warm", "1");
  await c.waitReplicas(1, 3);
  const { leader, leaderSlot, followers } = roles(c);
  const f = followers[0]!;
  const fStore = c.storeId(f);
  c.network.addFilter((_from, to, env) =>
    to === fStore && (env.message.type === "MsgApp" || env.message.type === "MsgHeartbeat")
      ? 100
      : undefined
  );
  const fkv = c.node(f).kv;
  return { leader, leaderSlot, fkv, forwardedBefore: fkv.forwarded };
}

Deno.test(
  "a follower serves reads itself, and waits for its apply to reach the leader's commit",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      const { leader, leaderSlot, fkv, forwardedBefore } = await laggingFollower(c);
      for (let i = 0; i < 20; i++) {
        await c.put("k", `v${i}`, leaderSlot);
        assert.equal(str(await fkv.get(b("k"))), `v${i}`, `read ${i} through the follower`);
      }
      assert.equal(fkv.followerReads, 20, "every read was served by the follower");
      assert.equal(fkv.forwarded, forwardedBefore, "no read was forwarded");
      assert.ok(leader.leaseReadIndexes > 0, "the leader answered from its lease");
    }),
);

Deno.test(
  "a follower serves scans too, each page after its apply reaches the leader's commit",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      const { leaderSlot, fkv, forwardedBefore } = await laggingFollower(c);
      for (let i = 0; i < 5; i++) {
        await c.put(`s${i}`, `v${i}`, leaderSlot);
        const page = await fkv.scan(b("s"), b("t"), 100);
        assert.deepEqual(
          page.kvs.map((kv) => [str(kv.key), str(kv.value)]),
          Array.from({ length: i + 1 }, (_, j) => [`s${j}`, `v${j}`]),
          `scan ${i} through the follower`,
        );
      }
      assert.equal(fkv.followerReads, 5, "every page was read by the follower");
      assert.equal(fkv.forwarded, forwardedBefore, "no page was forwarded");
    }),
);

Deno.test(
  "a follower cut off from its leader never serves a stale read",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await c.put("x", "old");
      await c.waitReplicas(1, 3);
      const { leaderSlot, followers } = roles(c);
      const f = followers[0]!;
      await c.waitLocal(f, "x", "old");
      assert.equal(await c.get("x", f), "old");
      c.network.isolate(c.storeId(f));
      await c.put("x", "new", leaderSlot);
      // The follower still believes in its leader; its read index request is lost. Its read
      // must fail, or (forwarded on a retry) see the new value: never "old".
      const kv = c.node(f).kv;
      const before = kv.followerReads;
      const got = await kv.get(b("x")).then(str, (e) => e);
      assert.ok(got === "new" || got instanceof MrkvError, `the cut-off follower read ${got}`);
      assert.equal(kv.followerReads, before + 1, "the read was tried at the follower first");
      c.network.clearFilters();
      await c.waitLocal(f, "x", "new");
      assert.equal(await c.get("x", f), "new");
    }),
);
