/**
 * How fast regions merge, on an in-process cluster (3 stores, in-memory Raft network, a real
 * scheduler): splits the key space into `--regions` regions, deletes most keys, then
 *
 * 1. merges two adjacent regions with one `merge-region` admin operator while a client writes
 *    into both, and prints how long until the source was gone from every store;
 * 2. sets `split_merge_interval` to 0 and lets the merge checker merge the rest on its own,
 *    printing the region count every second until one region is left (or `--max-s` passes).
 *
 * Every key left and every write acknowledged is read back at the end. With `--processes` the
 * same runs on real processes (a scheduler and 3 stores over HTTP, tests/process_cluster.ts),
 * driven only through the KV and admin APIs.
 *
 *   deno run -A tools/merge_bench.ts [--regions 50] [--max-s 300] [--processes]
 *
 * @module
 */
import { parseToolArgs } from "./_cli.ts";
import { b, TestCluster, waitFor } from "../tests/cluster.ts";
import { runOnProcesses } from "./merge/processes.ts";

const USAGE = `Usage: deno run -A tools/merge_bench.ts [--regions 50] [--max-s 300] [--processes]

Times one admin merge-region operator and the merge checker on an in-process 3-store cluster,
or with --processes on real processes (see the comment at the top of tools/merge_bench.ts).`;

const { values } = parseToolArgs({
  name: "merge_bench",
  usage: USAGE,
  options: {
    regions: { type: "string", default: "50" },
    "max-s": { type: "string", default: "300" },
    processes: { type: "boolean", default: false },
  },
});
const REGIONS = Number(values.regions);
const MAX_MS = Number(values["max-s"]) * 1000;
const KEYS_PER_REGION = 10;
const key = (i: number) => `key-${String(i).padStart(6, "0")}`;
const admin = (c: TestCluster, path: string, body: unknown) =>
  fetch(`http://${c.scheduler.addr}/pd/api/v1/${path}`, {
    method: "POST",
    body: JSON.stringify(body),
  }).then(async (r) => {
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    await r.body?.cancel();
  });
const regionCount = (c: TestCluster) =>
  Math.max(...c.running().map((n) => n.store.meta.sortedRegions().length));

if (values.processes) {
  const lost = await runOnProcesses({
    regions: REGIONS,
    maxMs: MAX_MS,
    keysPerRegion: KEYS_PER_REGION,
  });
  if (lost > 0) Deno.exitCode = 1;
  Deno.exit();
}

const c = await TestCluster.start({ stores: 3, verbose: false });
try {
  await c.waitReplicas(1, 3);
  const total = REGIONS * KEYS_PER_REGION;
  for (let i = 0; i < total; i++) await c.put(key(i), `v${i}`);
  let t = performance.now();
  for (let r = 1; r < REGIONS; r++) {
    const at = key(r * KEYS_PER_REGION);
    const region = c.scheduler.cluster.regions.getRegionByKey(b(at));
    if (!region) throw new Error(`the scheduler knows no region for ${at}`);
    await admin(c, "operators", { name: "split-region", region_id: region.meta.id, keys: [at] });
    await waitFor(`the split at ${at}`, () => {
      const now = c.scheduler.cluster.regions.getRegionByKey(b(at));
      return now !== undefined && new TextDecoder().decode(now.meta.startKey) === at &&
        now.leader !== undefined;
    }, 30_000);
  }
  await waitFor(
    `${REGIONS} regions on every store`,
    () => c.running().every((n) => n.store.meta.sortedRegions().length === REGIONS),
    60_000,
  );
  console.log(`split into ${REGIONS} regions in ${Math.round(performance.now() - t)} ms`);
  // Delete nine keys in ten.
  const kept: number[] = [];
  for (let i = 0; i < total; i++) {
    if (i % 10 === 0) kept.push(i);
    else await c.delete(key(i));
  }

  // 1. One admin merge under writes.
  const [left, right] = c.node(0).store.meta.sortedRegions();
  const acked: string[] = [];
  let writing = true;
  const writer = (async () => {
    for (let i = 0; writing; i++) {
      const k = `${i % 2 ? "" : "key-000000-"}w${i}`; // both sides of the boundary
      await c.put(k, String(i));
      acked.push(k);
    }
  })();
  t = performance.now();
  await admin(c, "operators", {
    name: "merge-region",
    source_region_id: right!.id,
    target_region_id: left!.id,
  });
  await waitFor("the admin merge", () => c.running().every((n) => !n.store.peers.has(right!.id)));
  console.log(
    `merge-region ${right!.id} -> ${left!.id}: source gone from every store in ` +
      `${Math.round(performance.now() - t)} ms`,
  );
  writing = false;
  await writer;

  // 2. The merge checker, on its own.
  t = performance.now();
  await admin(c, "config", { split_merge_interval: 0 });
  let last = regionCount(c);
  console.log(`merge checker on: ${last} regions`);
  while (last > 1 && performance.now() - t < MAX_MS) {
    await new Promise((r) => setTimeout(r, 1000));
    const now = regionCount(c);
    if (now !== last) {
      console.log(`  ${((performance.now() - t) / 1000).toFixed(1)} s: ${now} regions`);
      last = now;
    }
  }
  console.log(
    `merge checker: ${last} region(s) left after ${((performance.now() - t) / 1000).toFixed(1)} s`,
  );

  let lost = 0;
  for (const i of kept) if ((await c.get(key(i))) !== `v${i}`) lost++;
  for (const k of acked) if ((await c.get(k)) !== k.split("w").pop()) lost++;
  console.log(`read back ${kept.length} kept keys and ${acked.length} writes: ${lost} wrong`);
  if (lost > 0) Deno.exitCode = 1;
} finally {
  await c.close();
}
