/**
 * `/metrics` in the Prometheus text format (version 0.0.4), rendered from the cluster's
 * counters and current figures on each scrape.
 *
 * @module
 */
import type { Cluster } from "./cluster.ts";
import { HEALTH_PROBLEMS, type HealthProblem, summarizeHealth } from "./region_health.ts";

type Sample = readonly [labels: string, value: number];

/** Renders the scheduler's metrics. */
export function renderMetrics(cluster: Cluster): string {
  const c = cluster.counters;
  const ops = cluster.operators;
  const stores = cluster.stores();
  const perStore = (f: (id: number) => number): Sample[] =>
    stores.map((s) => [`{store="${s.meta.id}"}`, f(s.meta.id)]);
  const stats = (id: number) => cluster.regions.storeStats(id);
  const states = new Map<string, number>();
  for (const s of stores) {
    const n = cluster.stateName(s);
    states.set(n, (states.get(n) ?? 0) + 1);
  }
  const health = summarizeHealth(cluster.regions.regions(), cluster.healthContext());
  const label = (p: HealthProblem) => p.replace("-", "_");
  const metrics: [name: string, type: string, help: string, samples: Sample[]][] = [
    ["region_heartbeats_total", "counter", "Region heartbeats received.", [[
      "",
      c.regionHeartbeats,
    ]]],
    ["stale_region_heartbeats_total", "counter", "Region heartbeats refused as stale.", [[
      "",
      c.staleHeartbeats,
    ]]],
    ["region_changes_total", "counter", "Heartbeats that changed the map.", [[
      "",
      c.regionsChanged,
    ]]],
    ["store_heartbeats_total", "counter", "Store heartbeats received.", [["", c.storeHeartbeats]]],
    ["regions", "gauge", "Regions in the cluster map.", [["", cluster.regions.count]]],
    [
      "stores",
      "gauge",
      "Registered stores by state.",
      ["Up", "Disconnected", "Down", "Offline", "Tombstone"].map((
        s,
      ) => [`{state="${s}"}`, states.get(s) ?? 0]),
    ],
    [
      "store_region_count",
      "gauge",
      "Regions with a peer on the store.",
      perStore((id) => stats(id).regionCount),
    ],
    [
      "store_leader_count",
      "gauge",
      "Regions led from the store.",
      perStore((id) => stats(id).leaderCount),
    ],
    [
      "store_region_size_mib",
      "gauge",
      "Size of the store's regions.",
      perStore((id) => stats(id).regionSize),
    ],
    [
      "unhealthy_regions",
      "gauge",
      "Regions with a problem: fewer healthy voters than max-replicas (miss_peer), a down peer, a pending peer, no live leader.",
      HEALTH_PROBLEMS.map((p) => [`{problem="${label(p)}"}`, health.total[p]]),
    ],
    [
      "store_unhealthy_regions",
      "gauge",
      "Per store: regions whose down or pending peer is there, or with a peer there that miss a peer or a leader.",
      stores.flatMap((s) =>
        HEALTH_PROBLEMS.map((p): Sample => [
          `{store="${s.meta.id}",problem="${label(p)}"}`,
          health.byStore.get(s.meta.id)?.[p] ?? 0,
        ])
      ),
    ],
    ["operators_running", "gauge", "Running operators.", [["", ops.running().length]]],
    [
      "operators_added_total",
      "counter",
      "Operators added, by kind.",
      Object.entries(ops.added).map(([k, v]) => [`{kind="${k}"}`, v]),
    ],
    [
      "operators_ended_total",
      "counter",
      "Operators ended, by status.",
      (["Finished", "Cancelled", "TimedOut"] as const).map((
        s,
      ) => [`{status="${s}"}`, ops.ended[s]]),
    ],
    ["refused_steps_total", "counter", "Operator steps leaders reported refusing.", [[
      "",
      c.refusedSteps,
    ]]],
    ["id_high_water_mark", "gauge", "Persisted ID allocator mark.", [[
      "",
      cluster.ids.highWaterMark,
    ]]],
  ];
  const lines: string[] = [];
  for (const [name, type, help, samples] of metrics) {
    const full = `mrkv_scheduler_${name}`;
    lines.push(`# HELP ${full} ${help}`, `# TYPE ${full} ${type}`);
    for (const [labels, v] of samples) lines.push(`${full}${labels} ${v}`);
  }
  return lines.join("\n") + "\n";
}
