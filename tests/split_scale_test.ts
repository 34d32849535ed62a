/**
 * Admin splits by the thousand on a 3-store cluster: 16 clients each take a key, find its
 * region and ask the scheduler to split it there, as an operator would with curl. Every split
 * operator must finish as Finished (none timed out or cancelled), each with exactly one Split
 * proposal and one ID request (no step re-executed by overlapping heartbeat answers, no
 * stale-epoch retries), and without burning IDs.
 *
 * 1,000 splits by default; `MRKV_SPLITS=N` sets the count, and `deno task test:long`
 * (`MRKV_LONG=1`) runs 3,000.
 */
import assert from "node:assert/strict";
import { seededRandom } from "../scheduler/_mock_cluster.ts";
import type { Operator } from "../scheduler/operator/operator.ts";
import { b, type TestCluster, waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const SPLITS = Number(
  Deno.env.get("MRKV_SPLITS") ?? (Deno.env.get("MRKV_LONG") === "1" ? 3000 : 1000),
);
const CLIENTS = 16;

/** An admin answer: an operator (`created_at`) or an error. */
interface Answer {
  readonly created_at?: string;
  readonly error?: { readonly message: string };
}

async function post(c: TestCluster, body: unknown): Promise<{ status: number; json: Answer }> {
  const res = await fetch(`http://${c.scheduler.addr}/pd/api/v1/operators`, {
    method: "POST",
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/** Splits at `key`: retries while its region has an operator; returns the operator. */
async function splitAt(c: TestCluster, key: string): Promise<Operator> {
  const cluster = c.scheduler.cluster;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`could not split at ${key} in 120 s`);
    const region = cluster.regions.getRegionByKey(b(key));
    if (!region) {
      await new Promise((r) => setTimeout(r, 10)); // a split is still reporting
      continue;
    }
    const res = await post(c, { name: "split-region", region_id: region.meta.id, keys: [key] });
    if (res.status !== 201) {
      // Another client's split of this region is running, or this client's view of the
      // region was a moment old: ask again.
      assert.match(
        res.json.error?.message ?? "",
        /already has an admin operator|not strictly inside/,
      );
      await new Promise((r) => setTimeout(r, 10));
      continue;
    }
    const createdAt = Date.parse(res.json.created_at ?? "");
    const op = [...cluster.operators.running(), ...cluster.operators.history()].findLast((o) =>
      o.regionId === region.meta.id && o.createdAt === createdAt &&
      o.desc === "admin-split-region"
    );
    assert.ok(op, `the operator for ${key}`);
    await waitFor(
      `the split at ${key}`,
      () => op.status !== "Created" && op.status !== "Running",
      60_000,
    );
    return op;
  }
}

Deno.test(
  `${SPLITS} admin splits finish as Finished, each proposed once, no stale-epoch storm`,
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      for (const name of ["balance-region-scheduler", "balance-leader-scheduler"]) {
        await fetch(`http://${c.scheduler.addr}/pd/api/v1/schedulers/${name}`, { method: "DELETE" })
          .then((r) => r.body?.cancel());
      }
      const random = seededRandom(12);
      const keys = Array.from({ length: SPLITS }, (_, i) => `key-${String(i).padStart(6, "0")}`);
      for (let i = keys.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [keys[i], keys[j]] = [keys[j]!, keys[i]!];
      }
      const cluster = c.scheduler.cluster;
      const idsBefore = cluster.ids.highWaterMark;
      const started = performance.now();
      const ops: Operator[] = [];
      let next = 0;
      await Promise.all(Array.from({ length: CLIENTS }, async () => {
        while (next < keys.length) ops.push(await splitAt(c, keys[next++]!));
      }));
      const seconds = (performance.now() - started) / 1000;

      const statuses: Record<string, number> = {};
      for (const op of ops) statuses[op.status] = (statuses[op.status] ?? 0) + 1;
      const sum = (f: (n: (typeof c.nodes)[number] & object) => number) =>
        c.running().reduce((n, x) => n + f(x), 0);
      const proposed = sum((n) => n.workers.split.splitsProposed);
      const idRequests = sum((n) => n.workers.split.idRequests);
      const stale = sum((n) => n.workers.heartbeat.stepErrors.EpochNotMatch ?? 0);
      const idsUsed = cluster.ids.highWaterMark - idsBefore;
      console.log(
        `${SPLITS} splits in ${seconds.toFixed(1)} s: ${JSON.stringify(statuses)}, ` +
          `${proposed} Split proposals, ${idRequests} ID requests, ${stale} stale-epoch step ` +
          `failures, ${cluster.counters.staleHeartbeats} stale heartbeats, ID mark +${idsUsed}`,
      );
      assert.deepEqual(statuses, { Finished: SPLITS });
      assert.equal(cluster.operators.ended.TimedOut, 0);
      assert.equal(proposed, SPLITS, "one Split proposal per operator");
      assert.equal(idRequests, SPLITS, "one ID request per operator");
      assert.equal(stale, 0, "no step ran against a stale epoch");
      // Each split takes a region ID and 3 peer IDs; the allocator persists its mark in batches
      // of 1,000 and the coordinator keeps 256 in reserve.
      assert.ok(idsUsed <= 4 * SPLITS + 1000 + 256, `IDs burned: the mark moved by ${idsUsed}`);
      await waitFor(
        `${SPLITS + 1} regions on every store`,
        () => c.running().every((n) => n.store.meta.sortedRegions().length === SPLITS + 1),
        60_000,
      );
      await waitFor(`the scheduler to know ${SPLITS + 1} regions`, () =>
        cluster.regions.count === SPLITS + 1);
    }),
);
