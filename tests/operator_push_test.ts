/**
 * Operator steps pushed to the leader store (scheduler/step_push.ts, raftstore/step_poll.ts): an
 * admin transfer-leader or split on a sleeping region takes effect at once, though region
 * heartbeats come only every 3 s here and a sleeping region sends none of its own.
 */
import assert from "node:assert/strict";
import { type TestCluster, waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function admin(c: TestCluster, method: string, path: string, body?: unknown) {
  const res = await fetch(`http://${c.scheduler.addr}/pd/api/v1${path}`, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

/** Posts an operator and waits until the scheduler reports it finished; returns the time. */
async function runOperator(c: TestCluster, body: Record<string, unknown>): Promise<number> {
  const t0 = performance.now();
  const res = await admin(c, "POST", "/operators", body);
  assert.equal(res.status, 201, JSON.stringify(res.json));
  for (;;) {
    const op = await admin(c, "GET", `/operators/${body.region_id}`);
    if (op.json?.status === "Finished") return performance.now() - t0;
    assert.ok(
      op.json?.status === "Created" || op.json?.status === "Running",
      JSON.stringify(op.json),
    );
    assert.ok(performance.now() - t0 < 5_000, "the operator did not finish within 5 s");
    await new Promise((r) => setTimeout(r, 5));
  }
}

const slow = { schedulerHeartbeatMs: 3_000 };

Deno.test(
  "an admin transfer-leader on a sleeping region completes within a few round trips",
  opts,
  () =>
    withCluster({ stores: 3, store: slow }, async (c) => {
      await c.put("t", "1");
      await waitFor("region 1 to sleep", () =>
        c.running().every((n) => n.store.peers.get(1)?.sleep.asleep));
      const known = async () =>
        (await admin(c, "GET", "/region/id/1")).json?.leader?.store_id;
      const leader = c.leaderOf(1)!;
      await waitFor("the scheduler to know region 1's leader", async () =>
        await known() === leader.storeId);
      const pushed = () =>
        c.running().reduce((n, x) =>
          n + x.workers.heartbeat.poller.received, 0);
      const before = pushed();
      for (let i = 0; i < 4; i++) {
        const from = c.leaderOf(1)!;
        const to = from.region.peers.find((p) => p.storeId !== from.storeId)!.storeId;
        const ms = await runOperator(c, {
          name: "transfer-leader",
          region_id: 1,
          to_store_id: to,
        });
        assert.ok(ms < 1_000, `transfer ${i} took ${ms.toFixed(0)} ms`);
        assert.equal(c.leaderOf(1)?.storeId, to);
      }
      assert.equal(pushed() - before, 4, "each first step came down the poll");
      assert.equal(await c.get("t"), "1");
    }),
);

Deno.test(
  "an admin split of a sleeping region takes effect without waiting for a heartbeat",
  opts,
  () =>
    withCluster({ stores: 3, store: slow }, async (c) => {
      await c.put("a", "1");
      await c.put("z", "2");
      await waitFor("region 1 to sleep", () =>
        c.running().every((n) => n.store.peers.get(1)?.sleep.asleep));
      const ms = await runOperator(c, { name: "split-region", region_id: 1, keys: ["m"] });
      assert.ok(ms < 2_000, `the split took ${ms.toFixed(0)} ms`);
      await waitFor("every store to hold both regions", () =>
        c.running().every((n) =>
          n.store.meta.sortedRegions().length === 2
        ));
      assert.equal(await c.get("z"), "2");
    }),
);
