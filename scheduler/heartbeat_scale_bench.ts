/**
 * `deno bench -A scheduler/heartbeat_scale_bench.ts`: the scheduler's work for 1,000 region
 * heartbeats (admission and operator dispatch, already decoded) must not grow with the number of
 * regions it knows. The same 1,000 regions are reported into maps of 1,000, 10,000 and 100,000
 * regions, unchanged and with a new size each time.
 */
import { benchHeartbeats as heartbeats } from "./_bench_heartbeats.ts";
import { openTestCluster } from "./_test_cluster.ts";

const BATCH = 1_000;

for (const size of [1_000, 10_000, 100_000]) {
  const all = heartbeats(size);
  const t = await openTestCluster();
  for (let i = 0; i < all.length; i += 10_000) {
    t.cluster.handleRegionHeartbeats(all.slice(i, i + 10_000));
  }
  // The batch: regions spread over the whole map.
  const step = Math.floor(size / BATCH);
  const batch = Array.from({ length: BATCH }, (_, i) => all[i * step]!);
  let d = 0;
  Deno.bench(`1,000 unchanged heartbeats, ${size} regions known`, { group: "unchanged" }, () => {
    t.cluster.handleRegionHeartbeats(batch);
  });
  Deno.bench(`1,000 heartbeats with a new size, ${size} regions known`, { group: "sized" }, () => {
    d++;
    t.cluster.handleRegionHeartbeats(
      batch.map((h) => ({ ...h, approximateSize: h.approximateSize + d })),
    );
  });
}
