/**
 * Read-only routes in the shape PD's tools and dashboards expect (`/pd/api/v1/cluster`,
 * `/health`, `/version`, `/members`, hot regions), plus `/diagnose`, which says why the
 * scheduler is or is not moving anything. mrkv runs one scheduler, so it is the only member
 * and always the leader.
 *
 * @module
 */
import { Hono } from "hono";
import { MrkvError } from "../proto/errors.ts";
import { VERSION } from "../telemetry/mod.ts";
import type { Cluster } from "./cluster.ts";
import type { Coordinator } from "./coordinator.ts";
import { diagnose } from "./diagnose.ts";

const API = "/pd/api/v1";

/** What the routes need besides the cluster. */
export interface PdRouteOptions {
  /** `http://HOST:PORT` others use to reach this scheduler. */
  readonly url: () => string;
  readonly startedAt: number;
}

/** The one member this scheduler is, as PD describes members. */
function member(cluster: Cluster, url: string) {
  return {
    name: "scheduler",
    member_id: cluster.clusterId,
    client_urls: [url],
    peer_urls: [url],
    binary_version: VERSION,
  };
}

/** Hot regions by `kind` of traffic: per store, as leader and as any peer (PD's shape). */
function hotRegions(cluster: Cluster, kind: "read" | "write") {
  const now = cluster.now();
  type Stat = {
    region_id: number;
    store_id: number;
    flow_bytes: number;
    flow_keys: number;
    hot_degree: number;
    is_leader: boolean;
  };
  const asLeader = new Map<number, Stat[]>();
  const asPeer = new Map<number, Stat[]>();
  const push = (m: Map<number, Stat[]>, s: Stat) => {
    let list = m.get(s.store_id);
    if (!list) m.set(s.store_id, list = []);
    list.push(s);
  };
  for (const r of cluster.regions.regions()) {
    const rates = cluster.hot.get(r.meta.id, now);
    const flow = kind === "read" ? rates?.readBytesPerSec : rates?.writeBytesPerSec;
    if (!flow) continue;
    const flowBytes = Math.round(flow);
    const flowKeys = Math.round(kind === "read" ? rates!.readKeysPerSec : rates!.writeKeysPerSec);
    for (const p of r.meta.peers) {
      const isLeader = r.leader?.id === p.id;
      // Reads are served by the leader only; writes are applied by every peer.
      if (kind === "read" && !isLeader) continue;
      const stat = {
        region_id: r.meta.id,
        store_id: p.storeId,
        flow_bytes: flowBytes,
        flow_keys: flowKeys,
        hot_degree: rates!.degree,
        is_leader: isLeader,
      };
      push(asPeer, stat);
      if (isLeader) push(asLeader, stat);
    }
  }
  const shape = (m: Map<number, Stat[]>) =>
    Object.fromEntries(
      [...m].sort(([a], [b]) => a - b).map(([store, stats]) => {
        stats.sort((a, b) => b.flow_bytes - a.flow_bytes);
        return [String(store), {
          total_flow_bytes: stats.reduce((n, s) => n + s.flow_bytes, 0),
          total_flow_keys: stats.reduce((n, s) => n + s.flow_keys, 0),
          regions_count: stats.length,
          statistics: stats,
        }];
      }),
    );
  return { as_leader: shape(asLeader), as_peer: shape(asPeer) };
}

/**
 * Per-store traffic (PD's `/hotspot/stores`), summed over the regions with recent rates:
 * writes on every store holding a replica (each applies them), reads on the leader's store.
 */
function hotStores(cluster: Cluster) {
  const now = cluster.now();
  const stats = {
    bytes_write_stats: {} as Record<string, number>,
    keys_write_stats: {} as Record<string, number>,
    bytes_read_stats: {} as Record<string, number>,
    keys_read_stats: {} as Record<string, number>,
  };
  const add = (m: Record<string, number>, store: number, v: number) => {
    m[String(store)] = (m[String(store)] ?? 0) + v;
  };
  for (const [id, rates] of cluster.hot.entries(now)) {
    const r = cluster.regions.getRegion(id);
    if (!r) continue;
    for (const p of r.meta.peers) {
      add(stats.bytes_write_stats, p.storeId, rates.writeBytesPerSec);
      add(stats.keys_write_stats, p.storeId, rates.writeKeysPerSec);
    }
    if (r.leader) {
      add(stats.bytes_read_stats, r.leader.storeId, rates.readBytesPerSec);
      add(stats.keys_read_stats, r.leader.storeId, rates.readKeysPerSec);
    }
  }
  for (const m of Object.values(stats)) for (const k in m) m[k] = Math.round(m[k]!);
  return stats;
}

/** Routes of the PD-shaped read-only API. */
export function pdRoutes(cluster: Cluster, coordinator: Coordinator, opts: PdRouteOptions): Hono {
  const app = new Hono();
  app.get(
    `${API}/cluster`,
    (c) => c.json({ id: cluster.clusterId, max_peer_count: cluster.config.maxReplicas }),
  );
  app.get(`${API}/cluster/status`, (c) =>
    c.json({
      is_initialized: cluster.bootstrapped,
      stores: cluster.stores().filter((s) => s.state !== "Tombstone").length,
      regions: cluster.regions.count,
    }));
  app.get(`${API}/version`, (c) => c.json({ version: VERSION }));
  app.get(`${API}/health`, (c) => c.json([{ ...member(cluster, opts.url()), health: true }]));
  app.get(`${API}/members`, (c) => {
    const m = member(cluster, opts.url());
    return c.json({
      header: { cluster_id: cluster.clusterId },
      members: [m],
      leader: m,
      etcd_leader: m,
    });
  });
  app.get(`${API}/hotspot/regions/:kind`, (c) => {
    const kind = c.req.param("kind");
    if (kind !== "read" && kind !== "write") {
      throw new MrkvError("NotFound", `no hot-region statistics for "${kind}" (read or write)`);
    }
    return c.json(hotRegions(cluster, kind));
  });
  app.get(`${API}/hotspot/stores`, (c) => c.json(hotStores(cluster)));
  app.get(`${API}/diagnose`, (c) => {
    const d = diagnose(cluster, coordinator.schedulerNames());
    return c.json({
      idle: d.idle,
      running_operators: d.runningOperators,
      checks: d.checks,
      drains: d.drains.map((x) => ({
        store_id: x.storeId,
        regions_left: x.regionsLeft,
        blocked: x.blocked,
      })),
      uptime_seconds: Math.floor((Date.now() - opts.startedAt) / 1000),
    });
  });
  return app;
}
