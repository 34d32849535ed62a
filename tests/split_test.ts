/**
 * Region split driven by the scheduler's `split-region` operator: at a given key, and at the
 * size midpoint when no key is given. The new region gets a peer on every store, data stays
 * where it is, and reads, writes and scans across the boundary keep working.
 */
import assert from "node:assert/strict";
import { b, str, type TestCluster, waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function splitRegion(c: TestCluster, body: Record<string, unknown>): Promise<void> {
  const res = await fetch(`http://${c.scheduler.addr}/pd/api/v1/operators`, {
    method: "POST",
    body: JSON.stringify({ name: "split-region", ...body }),
  });
  assert.equal(res.status, 201, await res.text());
}

Deno.test(
  "split-region at a key, then at the size midpoint: every store holds every region and the data reads back",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      const letters = "abcdefghijklmnopqrstuvwxyz";
      for (const ch of letters) await c.put(`${ch}-key`, `value of ${ch}`);
      await splitRegion(c, { region_id: 1, keys: ["m"] });
      await waitFor("region 1 to split at m on every store", () =>
        c.running().every((n) => {
          const regions = n.store.meta.sortedRegions();
          return regions.length === 2 && str(regions[1]!.startKey) === "m";
        }));
      const right = c.node(0).store.meta.regionForKey(b("x"))!;
      assert.notEqual(right.id, 1);
      assert.equal(c.node(0).store.meta.regionForKey(b("a"))!.id, 1);
      assert.equal(right.epoch.version, 2, "a split bumps version");
      // Midpoint split of the right region (no keys given), once the scheduler has heard of it.
      await waitFor("the scheduler to know the new region", async () => {
        const res = await fetch(`http://${c.scheduler.addr}/pd/api/v1/region/id/${right.id}`);
        await res.body?.cancel();
        return res.status === 200;
      });
      await splitRegion(c, { region_id: right.id });
      await waitFor(
        "the right region to split again",
        () => c.running().every((n) => n.store.meta.sortedRegions().length === 3),
      );
      for (const ch of letters) {
        assert.equal(await c.get(`${ch}-key`), `value of ${ch}`);
      }
      await c.put("zz", "new");
      assert.equal(await c.get("zz", 1), "new");
      const page = await c.node(2).kv.scan(b(""), undefined, 1000);
      assert.deepEqual(page.kvs.map((kv) => str(kv.key)), [
        ...letters.split("").map((ch) => `${ch}-key`),
        "zz",
      ]);
      // The scheduler sees three regions tiling the key space.
      await waitFor("the scheduler to see 3 regions", async () => {
        const body = await (await fetch(`http://${c.scheduler.addr}/pd/api/v1/regions`)).json();
        return body.count === 3;
      });
    }),
);
