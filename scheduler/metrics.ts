/**
 * `/metrics` in the Prometheus text format (version 0.0.4), rendered from the cluster's
 * counters and current figures on each scrape.
 *
 * @module
 */
import type { Cluster } from "./cluster.ts";

/** Renders the scheduler's metrics. */
export function renderMetrics(cluster: Cluster): string {
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of samples) lines.push(`${name}${labels} ${v}`);
  };
  const c = cluster.counters;
  metric("mrkv_scheduler_region_heartbeats_total", "counter", "Region heartbeats received.", [[
    "",
    c.regionHeartbeats,
  ]]);
  metric(
    "mrkv_scheduler_stale_region_heartbeats_total",
    "counter",
    "Region heartbeats refused as stale.",
    [["", c.staleHeartbeats]],
  );
  metric(
    "mrkv_scheduler_region_changes_total",
    "counter",
    "Region heartbeats that changed the cluster map.",
    [["", c.regionsChanged]],
  );
  metric("mrkv_scheduler_store_heartbeats_total", "counter", "Store heartbeats received.", [[
    "",
    c.storeHeartbeats,
  ]]);
  metric("mrkv_scheduler_regions", "gauge", "Regions in the cluster map.", [[
    "",
    cluster.regions.count,
  ]]);
  const states = new Map<string, number>();
  for (const s of cluster.stores()) {
    const n = cluster.stateName(s);
    states.set(n, (states.get(n) ?? 0) + 1);
  }
  metric(
    "mrkv_scheduler_stores",
    "gauge",
    "Registered stores by state.",
    ["Up", "Disconnected", "Down", "Offline", "Tombstone"].map((
      s,
    ) => [`{state="${s}"}`, states.get(s) ?? 0]),
  );
  const stores = cluster.stores();
  metric(
    "mrkv_scheduler_store_region_count",
    "gauge",
    "Regions with a peer on the store.",
    stores.map((
      s,
    ) => [`{store="${s.meta.id}"}`, cluster.regions.storeStats(s.meta.id).regionCount]),
  );
  metric(
    "mrkv_scheduler_store_leader_count",
    "gauge",
    "Regions led from the store.",
    stores.map((
      s,
    ) => [`{store="${s.meta.id}"}`, cluster.regions.storeStats(s.meta.id).leaderCount]),
  );
  metric(
    "mrkv_scheduler_store_region_size_mib",
    "gauge",
    "Approximate size of the store's regions.",
    stores.map((s) => [`{store="${s.meta.id}"}`, cluster.regions.storeStats(s.meta.id).regionSize]),
  );
  const ops = cluster.operators;
  metric("mrkv_scheduler_operators_running", "gauge", "Running operators.", [[
    "",
    ops.running().length,
  ]]);
  metric(
    "mrkv_scheduler_operators_added_total",
    "counter",
    "Operators added, by kind.",
    Object.entries(ops.added).map(([k, v]) => [`{kind="${k}"}`, v]),
  );
  metric(
    "mrkv_scheduler_operators_ended_total",
    "counter",
    "Operators ended, by status.",
    (["Finished", "Cancelled", "TimedOut"] as const).map((s) => [`{status="${s}"}`, ops.ended[s]]),
  );
  metric("mrkv_scheduler_id_high_water_mark", "gauge", "Persisted ID allocator high-water mark.", [[
    "",
    cluster.ids.highWaterMark,
  ]]);
  return lines.join("\n") + "\n";
}
