/**
 * Region split driven by the scheduler's `split-region` operator: at given keys (all of them in
 * one batch split), and at the size midpoint when no key is given. The new regions get a peer on
 * every store and elect a leader at once, data stays where it is, and reads, writes and scans
 * across the boundaries keep working. Splits that cannot happen are refused with the reason.
 */
import assert from "node:assert/strict";
import type { Region } from "../proto/metapb.ts";
import type { PdClient } from "../proto/pd_client.ts";
import type { AskBatchSplitResponse } from "../proto/pdpb.ts";
import { SplitWorker } from "../raftstore/split.ts";
import { b, str, type TestCluster, waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** POSTs an admin operator; returns the status and JSON answer. */
async function postOperator(
  c: TestCluster,
  body: Record<string, unknown>,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://${c.scheduler.addr}/pd/api/v1/operators`, {
    method: "POST",
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

async function splitRegion(c: TestCluster, body: Record<string, unknown>): Promise<void> {
  const res = await postOperator(c, { name: "split-region", ...body });
  assert.equal(res.status, 201, JSON.stringify(res.json));
}

/** The newest split operator on `regionId` (running or ended). */
function operatorOf(c: TestCluster, regionId: number) {
  const ops = c.scheduler.cluster.operators;
  return [...ops.history(), ...ops.running()].findLast((op) =>
    op.regionId === regionId && op.desc === "admin-split-region"
  );
}

/** Whether `op` has ended. */
const ended = (op: ReturnType<typeof operatorOf>) =>
  op !== undefined && op.status !== "Created" && op.status !== "Running";

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

Deno.test(
  "a 3-key split makes 4 regions in one batch split, and its operator finishes as Finished",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      for (const ch of "abcdefghijklmnopqrstuvwxyz") await c.put(ch, ch.toUpperCase());
      const proposed = () => c.running().reduce((n, x) => n + x.workers.split.splitsProposed, 0);
      await splitRegion(c, { region_id: 1, keys: ["t", "f", "m"] });
      await waitFor("4 regions starting at '', f, m, t on every store", () =>
        c.running().every((n) =>
          n.store.meta.sortedRegions().map((r) =>
            str(r.startKey)
          ).join(",") === ",f,m,t"
        ));
      await waitFor("the split operator to end", () => ended(operatorOf(c, 1)));
      assert.equal(operatorOf(c, 1)?.status, "Finished", operatorOf(c, 1)?.reason);
      assert.equal(proposed(), 1, "one Split command carried all three keys");
      const versions = c.node(0).store.meta.sortedRegions().map((r) => r.epoch.version);
      assert.deepEqual(versions, [2, 2, 2, 2], "one version bump for all of them");
      for (const ch of "aemsz") assert.equal(await c.get(ch), ch.toUpperCase());
      for (const ch of "bgnu") await c.put(ch, "new");
      assert.deepEqual(
        (await c.node(1).kv.scan(b(""), undefined, 100)).kvs.length,
        26,
        "a scan crosses every boundary",
      );
      await waitFor(
        "the scheduler to see 4 regions",
        () => c.scheduler.cluster.regions.count === 4,
      );
    }),
);

Deno.test(
  "splits that cannot happen are refused: up front by the scheduler, or by the leader with the reason",
  opts,
  () =>
    // No periodic size checks: the leader's estimate stays what its writes added up to, as between
    // two checks (with them, the delete below would soon be measured and reported as empty).
    withCluster({ stores: 3, store: { splitCheckMs: 3_600_000 } }, async (c) => {
      const empty = await postOperator(c, { name: "split-region", region_id: 1 });
      assert.equal(empty.status, 400);
      assert.match(JSON.stringify(empty.json), /last reported empty/);
      // A key was written and deleted: the region reports a size, but there is nothing to split.
      await c.put("ghost", "x");
      await c.delete("ghost");
      await waitFor(
        "the scheduler to see the region's size",
        () => c.scheduler.cluster.getRegion(1).approximateSizeBytes > 0,
      );
      await splitRegion(c, { region_id: 1 });
      await waitFor("the leader's refusal to end the operator", () => {
        return ended(operatorOf(c, 1));
      });
      const op = operatorOf(c, 1)!;
      assert.equal(op.status, "Cancelled");
      assert.match(op.reason, /leader refused SplitRegion: region 1 is too small to split/);
    }),
);

Deno.test(
  "a split's new region elects its leader at once, although the followers apply the split after its vote requests arrive",
  opts,
  () =>
    // A long election timeout (1.5–3 s): a first election that failed would show.
    withCluster({ stores: 3, store: { electionTicks: 30 } }, async (c) => {
      // Leadership must stay where it is for the filter below to mean anything.
      await fetch(
        `http://${c.scheduler.addr}/pd/api/v1/schedulers/balance-leader-scheduler`,
        { method: "DELETE" },
      ).then((r) => r.body?.cancel());
      const leaderId = c.leaderOf(1)!.storeId;
      const leaderStore = () => leaderId;
      // The old region's appends reach the followers 150 ms late, so they learn that the split
      // committed only well after the new region's leader has started campaigning.
      c.network.addFilter((from, _to, env) =>
        env.regionId === 1 && from === leaderStore() ? 150 : undefined
      );
      const heldBefore = c.running().reduce((n, x) => n + x.store.earlyVotes.replayed, 0);
      // Descending keys: region 1 keeps the left part, so it holds the next key.
      for (const key of ["k5", "k4", "k3", "k2", "k1"]) {
        await c.put(key, "v");
        const t0 = performance.now();
        await splitRegion(c, { region_id: 1, keys: [key] });
        let created = 0;
        let newId = 0;
        await waitFor(`the region split at ${key} to have a leader`, () => {
          const region = c.node(0).store.meta.regionForKey(b(key));
          const onLeader = c.running().find((n) => n.store.storeId === leaderStore());
          const mine = onLeader?.store.meta.regionForKey(b(key));
          if (mine && mine.id !== 1 && created === 0) created = performance.now();
          newId = mine?.id ?? region?.id ?? 0;
          return newId !== 1 && newId !== 0 && c.leaderOf(newId) !== undefined;
        }, 10_000);
        const elected = performance.now() - created;
        assert.ok(
          elected < 1_000,
          `region ${newId} had no leader for ${elected.toFixed(0)} ms after the split applied ` +
            `(${
              (performance.now() - t0).toFixed(0)
            } ms after the request): the first election failed`,
        );
        await c.put(`${key}-after`, "written in the new region");
        await waitFor("the scheduler to see region 1 split", () =>
          operatorOf(c, 1)?.status === "Finished");
      }
      const held = c.running().reduce((n, x) =>
        n + x.store.earlyVotes.replayed, 0) - heldBefore;
      assert.ok(held >= 5, `vote requests held for the late followers: ${held}`);
      assert.equal(c.leaderOf(1)?.storeId, leaderId, "region 1 kept its leader throughout");
    }),
);

Deno.test(
  "a new operator's first step reaches its leader at once, not at the next periodic heartbeat",
  opts,
  () =>
    // Periodic heartbeats every minute: only the first step pushed down the long poll
    // (wait_operator_steps) and change reports can bring steps within the test. (One store: a
    // learner catching up is only seen at a periodic heartbeat.)
    withCluster({
      stores: 1,
      maxReplicas: 1,
      store: { schedulerHeartbeatMs: 60_000 },
      schedulerFlags: ["--store-disconnect-time", "10m", "--max-store-down-time", "20m"],
    }, async (c) => {
      await c.put("k", "v");
      for (const key of ["t", "m", "f"]) {
        const t0 = performance.now();
        await splitRegion(c, { region_id: 1, keys: [key] });
        await waitFor(`the split at ${key} to be led at the scheduler`, () => {
          const r = c.scheduler.cluster.regions.getRegionByKey(b(key));
          return r !== undefined && str(r.meta.startKey) === key && r.leader !== null;
        });
        await waitFor("the operator to finish", () => operatorOf(c, 1)?.status === "Finished");
        console.log(
          `split at ${key}: led at the scheduler ${
            (performance.now() - t0).toFixed(0)
          } ms after the request`,
        );
      }
    }),
);

Deno.test(
  "a split retried after its leader lost and regained leadership reuses its IDs; the next split asks again",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await c.waitReplicas(1, 3);
      await c.put("a", "1");
      await waitFor("a leader of region 1", () => c.leaderOf(1) !== undefined);
      const leader = c.leaderOf(1)!;
      const node = c.running().find((n) => n.store.peers.get(1) === leader)!;
      const other = leader.region.peers.find((p) => p.storeId !== node.store.storeId)!;
      const pd = node.workers.split.client;
      const answers: AskBatchSplitResponse[] = [];
      // The first time IDs come back, leadership moves away before the split is proposed.
      const client = {
        askBatchSplit: async (region: Region, count: number) => {
          const res = await pd.askBatchSplit(region, count);
          answers.push(res);
          if (answers.length === 1) {
            leader.transferLeader(other.id);
            await waitFor("leadership to move away", () => !leader.isLeader());
          }
          return res;
        },
      } as unknown as PdClient;
      const worker = new SplitWorker(node.store, client);

      await assert.rejects(worker.splitRegion(leader, [b("m")]), /leader/i);
      assert.equal(leader.region.epoch.version, 1, "nothing split");
      await waitFor("leadership to come back", () => {
        if (leader.isLeader()) return true;
        c.leaderOf(1)?.transferLeader(leader.meta.id);
        return false;
      }, 15_000);

      await worker.splitRegion(leader, [b("m")]);
      assert.equal(answers.length, 1, "the retry used the IDs it had");
      const right = node.store.meta.regionForKey(b("x"))!;
      assert.equal(right.id, answers[0]!.ids[0]!.newRegionId);
      assert.deepEqual(right.peers.map((p) => p.id), answers[0]!.ids[0]!.newPeerIds);

      // The region's version moved on: a split of it now asks for fresh IDs.
      await worker.splitRegion(leader, [b("f")]);
      assert.equal(answers.length, 2);
      assert.equal(node.store.meta.regionForKey(b("g"))!.id, answers[1]!.ids[0]!.newRegionId);
    }),
);
