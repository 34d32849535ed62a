/**
 * A store the scheduler has removed for good (drained, then `Tombstone`) stops: its `finished`
 * rejects with a message that says what to do, `/status` stops calling it healthy, and starting
 * it again from its data directory is refused with the same advice.
 */
import assert from "node:assert/strict";
import { waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const ADVICE = /store \d+ was removed from the cluster \(it is a Tombstone\).*delete its data dir/;

Deno.test(
  "a Tombstone store stops with what to do, and cannot start again",
  opts,
  () =>
    withCluster({ stores: 4 }, async (c) => {
      const node = c.node(3);
      const id = node.store.storeId;
      let reason: Error | undefined;
      node.finished.catch((e) => (reason = e as Error));

      await c.scheduler.cluster.setStoreState(id, "Offline");
      await waitFor(
        `store ${id} to be drained, become a Tombstone and stop`,
        () => reason !== undefined,
        30_000,
      );
      assert.equal(c.scheduler.cluster.getStore(id).state, "Tombstone");
      assert.match(reason!.message, ADVICE);
      assert.ok(node.store.stopped, "the store stopped serving");
      const status = await (await node.app.request("/status")).json();
      assert.equal(status.healthy, false);

      await c.stopStore(3);
      await assert.rejects(c.startStore(3), ADVICE);
      // The rest of the cluster serves on.
      await c.put("after", "removal");
      assert.equal(await c.get("after"), "removal");
    }),
);
