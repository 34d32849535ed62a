/**
 * The scheduler's `/metrics`: every metric is declared here, once, on one {@link Registry}
 * (see `telemetry/metrics.ts` for the conventions it enforces). Most read the cluster at scrape
 * time through `collect`; add one the same way.
 *
 * @module
 */
import { type Labels, registerProcessMetrics, Registry } from "../telemetry/mod.ts";
import type { Cluster } from "./cluster.ts";
import type { OperatorKind, OperatorStatus } from "./operator/operator.ts";
import { HEALTH_PROBLEMS, type HealthProblem, summarizeHealth } from "./region_health.ts";

const STORE_STATES = ["Up", "Disconnected", "Down", "Offline", "Tombstone"] as const;
const OPERATOR_KINDS: readonly OperatorKind[] = [
  "admin",
  "replica",
  "merge",
  "region",
  "leader",
  "hot",
];
const ENDED: readonly OperatorStatus[] = ["Finished", "Cancelled", "TimedOut"];

/** Declares the scheduler's metrics over `cluster`; `/metrics` renders the returned registry. */
export function schedulerMetrics(cluster: Cluster): Registry {
  const r = new Registry();
  const c = cluster.counters;
  const ops = cluster.operators;
  const perStore = (f: (id: number) => number): [Labels, number][] =>
    cluster.stores().map((s) => [{ store: s.meta.id }, f(s.meta.id)]);
  const stats = (id: number) => cluster.regions.storeStats(id);

  r.counter({
    name: "mrkv_scheduler_region_heartbeats_total",
    help: "Region heartbeats received.",
    collect: () => c.regionHeartbeats,
  });
  r.counter({
    name: "mrkv_scheduler_stale_region_heartbeats_total",
    help: "Region heartbeats refused as stale.",
    collect: () => c.staleHeartbeats,
  });
  r.counter({
    name: "mrkv_scheduler_region_changes_total",
    help: "Region heartbeats that changed the cluster map.",
    collect: () => c.regionsChanged,
  });
  r.counter({
    name: "mrkv_scheduler_store_heartbeats_total",
    help: "Store heartbeats received.",
    collect: () => c.storeHeartbeats,
  });
  r.gauge({
    name: "mrkv_scheduler_regions",
    help: "Regions in the cluster map.",
    collect: () => cluster.regions.count,
  });
  r.gauge({
    name: "mrkv_scheduler_stores",
    help: "Registered stores by state.",
    labels: ["state"],
    collect: () => {
      const n = new Map<string, number>();
      for (const s of cluster.stores()) {
        const state = cluster.stateName(s);
        n.set(state, (n.get(state) ?? 0) + 1);
      }
      return STORE_STATES.map((state) => [{ state }, n.get(state) ?? 0]);
    },
  });
  r.gauge({
    name: "mrkv_scheduler_store_regions",
    help: "Regions with a peer on the store.",
    labels: ["store"],
    collect: () => perStore((id) => stats(id).regionCount),
  });
  r.gauge({
    name: "mrkv_scheduler_store_leaders",
    help: "Regions led from the store.",
    labels: ["store"],
    collect: () => perStore((id) => stats(id).leaderCount),
  });
  r.gauge({
    name: "mrkv_scheduler_store_region_size_bytes",
    help: "Approximate size of the regions with a peer on the store, in bytes.",
    labels: ["store"],
    collect: () => {
      const bytes = new Map<number, number>();
      for (const region of cluster.regions.regions()) {
        for (const p of region.meta.peers) {
          bytes.set(p.storeId, (bytes.get(p.storeId) ?? 0) + region.approximateSizeBytes);
        }
      }
      return perStore((id) => bytes.get(id) ?? 0);
    },
  });
  r.gauge({
    name: "mrkv_scheduler_store_capacity_bytes",
    help: "Size of the store's data filesystem, as last reported, in bytes.",
    labels: ["store"],
    collect: () => cluster.stores().map((s) => [{ store: s.meta.id }, s.stats?.capacity ?? 0]),
  });
  r.gauge({
    name: "mrkv_scheduler_store_available_bytes",
    help: "Free space on the store's data filesystem, as last reported, in bytes.",
    labels: ["store"],
    collect: () => cluster.stores().map((s) => [{ store: s.meta.id }, s.stats?.available ?? 0]),
  });
  r.gauge({
    name: "mrkv_scheduler_operators_running",
    help: "Running operators, by kind.",
    labels: ["kind"],
    collect: () => OPERATOR_KINDS.map((kind) => [{ kind }, ops.countOf(kind)]),
  });
  r.counter({
    name: "mrkv_scheduler_operators_added_total",
    help: "Operators added, by kind.",
    labels: ["kind"],
    collect: () => OPERATOR_KINDS.map((kind) => [{ kind }, ops.added[kind]]),
  });
  r.counter({
    name: "mrkv_scheduler_operators_ended_total",
    help: "Operators ended, by final status.",
    labels: ["status"],
    collect: () => ENDED.map((status) => [{ status }, ops.ended[status]]),
  });
  // Region health (region_health.ts); problem label values use `_` (miss_peer, no_leader).
  const health = () => summarizeHealth(cluster.regions.regions(), cluster.healthContext());
  const problem = (p: HealthProblem) => p.replace("-", "_");
  r.gauge({
    name: "mrkv_scheduler_unhealthy_regions",
    help: "Regions with a problem: fewer healthy voters than max-replicas (miss_peer), " +
      "a down peer, a pending peer, no live leader.",
    labels: ["problem"],
    collect: () => {
      const h = health();
      return HEALTH_PROBLEMS.map((p) => [{ problem: problem(p) }, h.total[p]]);
    },
  });
  r.gauge({
    name: "mrkv_scheduler_store_unhealthy_regions",
    help: "Per store: regions whose down or pending peer is there, or with a peer there " +
      "that miss a peer or a leader.",
    labels: ["store", "problem"],
    collect: () => {
      const h = health();
      return cluster.stores().flatMap((s) =>
        HEALTH_PROBLEMS.map((p): [Labels, number] => [
          { store: s.meta.id, problem: problem(p) },
          h.byStore.get(s.meta.id)?.[p] ?? 0,
        ])
      );
    },
  });
  r.counter({
    name: "mrkv_scheduler_refused_steps_total",
    help: "Operator steps leaders reported refusing.",
    collect: () => c.refusedSteps,
  });
  r.gauge({
    name: "mrkv_scheduler_id_high_water_mark",
    help: "Persisted high-water mark of the ID allocator.",
    collect: () => cluster.ids.highWaterMark,
  });
  registerProcessMetrics(r, "scheduler");
  return r;
}
