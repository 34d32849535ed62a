/**
 * Why the scheduler is doing what it does — above all, why it is doing nothing. Read-only: it
 * looks at the same {@link LiveView} the checkers and schedulers see and says, per check, whether
 * it has work running, nothing to do (and why that is fine), or is blocked (and on what), in
 * sentences a person can act on ("store 2 is offline: no Up store without a replica of region
 * 7"). The dashboard, `GET /pd/api/v1/diagnose`, the store API (an Offline store's drain) and
 * the scheduler's log use it; the checkers themselves stay pure.
 *
 * @module
 */
import type { Cluster } from "./cluster.ts";
import { LiveView } from "./coordinator.ts";
import type { RegionInfo } from "./region_info.ts";
import {
  BALANCE_LEADER_NAME,
  BALANCE_REGION_NAME,
  explainHotRegion,
  HOT_REGION_NAME,
} from "./schedulers/mod.ts";
import { isSuitable, type StoreView } from "./schedulers/view.ts";

/** A check's state: running operators, nothing to do, stuck, or switched off. */
export type CheckState = "working" | "idle" | "blocked" | "disabled";

/** One check's verdict. */
export interface CheckReport {
  readonly name: string;
  readonly state: CheckState;
  /** Sentences, most important first. */
  readonly reasons: readonly string[];
}

/** How draining an Offline store is going. */
export interface DrainReport {
  readonly storeId: number;
  readonly regionsLeft: number;
  /** Why it cannot finish now, or null if it is progressing. */
  readonly blocked: string | null;
}

/** The whole picture. */
export interface Diagnosis {
  /** True if no operator is running. */
  readonly idle: boolean;
  readonly runningOperators: number;
  readonly checks: readonly CheckReport[];
  readonly drains: readonly DrainReport[];
}

/** Reasons listed per check before the rest are summarised as "and N more". */
const MAX_REASONS = 5;

function listed(reasons: string[]): string[] {
  if (reasons.length <= MAX_REASONS) return reasons;
  return [...reasons.slice(0, MAX_REASONS), `… and ${reasons.length - MAX_REASONS} more`];
}

/** Up stores without a peer of `r` (where the replica checker could put one). */
function freeTargets(view: LiveView, r: RegionInfo): StoreView[] {
  const holders = new Set(r.meta.peers.map((p) => p.storeId));
  return view.stores().filter((s) => s.stateName === "Up" && !holders.has(s.id));
}

/** Diagnoses the cluster now; `schedulers` are the names of the running schedulers. */
export function diagnose(cluster: Cluster, schedulers: readonly string[]): Diagnosis {
  const view = new LiveView(cluster);
  const running = cluster.operators.running();
  const drains = drainReports(cluster, view);
  const checks: CheckReport[] = [
    replicaReport(cluster, view, drains),
    schedulers.includes(BALANCE_REGION_NAME)
      ? balanceRegionReport(cluster, view)
      : { name: BALANCE_REGION_NAME, state: "disabled", reasons: ["not running"] },
    schedulers.includes(BALANCE_LEADER_NAME)
      ? balanceLeaderReport(cluster, view)
      : { name: BALANCE_LEADER_NAME, state: "disabled", reasons: ["not running"] },
    schedulers.includes(HOT_REGION_NAME)
      ? hotRegionReport(cluster, view)
      : { name: HOT_REGION_NAME, state: "disabled", reasons: ["not running"] },
  ];
  return { idle: running.length === 0, runningOperators: running.length, checks, drains };
}

function drainReports(cluster: Cluster, view: LiveView): DrainReport[] {
  return cluster.stores().filter((s) => s.state === "Offline").map((s) =>
    drainReport(cluster, s.meta.id, view)
  );
}

/** How draining Offline store `storeId` is going: regions left and what, if anything, blocks it. */
export function drainReport(
  cluster: Cluster,
  storeId: number,
  view: LiveView = new LiveView(cluster),
): DrainReport {
  const st = cluster.regions.storeStats(storeId);
  const ids = [...st.leaders, ...st.followers].sort((a, b) => a - b);
  let blocked: string | null = null;
  let stuck = 0;
  for (const id of ids) {
    const r = cluster.regions.getRegion(id);
    if (!r || view.hasOperator(id)) continue;
    if (freeTargets(view, r).length > 0 || r.meta.peers.length > view.maxReplicas) continue;
    stuck++;
    blocked ??= `no Up store without a replica of region ${id}`;
  }
  if (blocked && stuck > 1) blocked += ` (and ${stuck - 1} more regions)`;
  if (blocked) blocked += `: add a store, or lower max-replicas below ${view.maxReplicas}`;
  return { storeId, regionsLeft: ids.length, blocked };
}

function replicaReport(cluster: Cluster, view: LiveView, drains: DrainReport[]): CheckReport {
  const name = "replica-checker";
  const running = cluster.operators.countOf("replica");
  const blocked: string[] = [];
  for (const d of drains) {
    if (d.blocked) blocked.push(`store ${d.storeId} is offline: ${d.blocked}`);
  }
  let under = 0;
  for (const r of cluster.regions.regions()) {
    if (r.meta.peers.length >= view.maxReplicas) continue;
    under++;
    if (view.hasOperator(r.meta.id) || freeTargets(view, r).length > 0) continue;
    blocked.push(
      `region ${r.meta.id} has ${r.meta.peers.length} of ${view.maxReplicas} replicas: no Up store without one`,
    );
  }
  if (running > 0) {
    return {
      name,
      state: "working",
      reasons: listed([`${running} replica operator(s) running`, ...blocked]),
    };
  }
  if (blocked.length > 0) return { name, state: "blocked", reasons: listed(blocked) };
  const reasons = under === 0
    ? [`every region has ${view.maxReplicas} replicas on healthy stores`]
    : [`${under} region(s) below ${view.maxReplicas} replicas; operators start on the next run`];
  return { name, state: "idle", reasons };
}

function balanceRegionReport(cluster: Cluster, view: LiveView): CheckReport {
  const name = BALANCE_REGION_NAME;
  const running = cluster.operators.countOf("region");
  if (running > 0) {
    return { name, state: "working", reasons: [`${running} move(s) running`] };
  }
  const stores = view.stores().filter(isSuitable);
  if (stores.length < 2) {
    return {
      name,
      state: "idle",
      reasons: [`${stores.length} store(s) can take regions; balancing needs two`],
    };
  }
  const big = stores.reduce((a, b) => (b.regionSize > a.regionSize ? b : a));
  const small = stores.reduce((a, b) => (b.regionSize < a.regionSize ? b : a));
  // The largest region on the source decides whether a move is worth it (see balance_region.ts).
  let largest = 0;
  for (const id of cluster.regions.storeStats(big.id).leaders) {
    largest = Math.max(largest, cluster.regions.getRegion(id)?.approximateSize ?? 0);
  }
  for (const id of cluster.regions.storeStats(big.id).followers) {
    largest = Math.max(largest, cluster.regions.getRegion(id)?.approximateSize ?? 0);
  }
  const diff = big.regionSize - small.regionSize;
  const sizes = diff === 0
    ? `each of the ${stores.length} stores holds ${big.regionSize} MiB`
    : `store ${big.id} holds ${big.regionSize} MiB in ${big.regionCount} regions, ` +
      `store ${small.id} ${small.regionSize} MiB in ${small.regionCount}`;
  if (diff <= 2 * Math.max(1, largest)) {
    return {
      name,
      state: "idle",
      reasons: [
        `balanced: ${sizes}; a move needs a difference over twice the region's size ` +
        `(regions count at least 1 MiB; the difference is ${diff} MiB)`,
      ],
    };
  }
  return {
    name,
    state: "idle",
    reasons: [`${sizes}; a move starts on the next run unless every candidate region is busy`],
  };
}

function balanceLeaderReport(cluster: Cluster, view: LiveView): CheckReport {
  const name = BALANCE_LEADER_NAME;
  const running = cluster.operators.countOf("leader");
  if (running > 0) {
    return { name, state: "working", reasons: [`${running} leader transfer(s) running`] };
  }
  const stores = view.stores().filter(isSuitable);
  if (stores.length < 2) {
    return {
      name,
      state: "idle",
      reasons: [`${stores.length} store(s) can lead; balancing needs two`],
    };
  }
  const most = stores.reduce((a, b) => (b.leaderCount > a.leaderCount ? b : a));
  const least = stores.reduce((a, b) => (b.leaderCount < a.leaderCount ? b : a));
  if (most.leaderCount - least.leaderCount < 2) {
    const counts = most.leaderCount === least.leaderCount
      ? `each of the ${stores.length} stores leads ${most.leaderCount}`
      : `store ${most.id} leads ${most.leaderCount}, store ${least.id} leads ${least.leaderCount}`;
    return {
      name,
      state: "idle",
      reasons: [`balanced: ${counts} (a transfer needs a difference of 2)`],
    };
  }
  return {
    name,
    state: "idle",
    reasons: [
      `store ${most.id} leads ${most.leaderCount}, store ${least.id} leads ${least.leaderCount}: ` +
      `a transfer needs a follower of one of store ${most.id}'s regions on a store with fewer leaders`,
    ],
  };
}

function hotRegionReport(cluster: Cluster, view: LiveView): CheckReport {
  const running = cluster.operators.countOf("hot");
  const reasons = explainHotRegion(view);
  if (running > 0) reasons.unshift(`${running} hot-region operator(s) running`);
  if (cluster.config.hotRegionScheduleLimit === 0) {
    reasons.unshift("hot_region_schedule_limit is 0: no operator is made");
  }
  return { name: HOT_REGION_NAME, state: running > 0 ? "working" : "idle", reasons };
}
