/**
 * The merge checker (PD's `checker/merge_checker.go`): merges a small region into an adjacent
 * one, so deleted or cold ranges do not leave many tiny regions behind (each costs ticks,
 * heartbeats and scheduling). A region is merged when
 * - it is at most `max-merge-region-size` MiB and `max-merge-region-keys` keys;
 * - neither it nor its target split within `split-merge-interval` (nor has the scheduler been up
 *   for less: it cannot know what split before it started), so ranges do not flap;
 * - both are healthy — a leader, `max-replicas` voters and nothing else, no pending or down peer
 *   — and have no operator;
 * - neither is hot (PD's rule too): a hot region may have just split by load, and merging it
 *   back would only make it split again;
 * - the merged region stays within `max-merged-region-size` MiB.
 * Of the two neighbours that qualify, the smaller is the target. If their peers are on different
 * stores, the source's peers move onto the target's first (in the same operator).
 *
 * @module
 */
import { createMergeRegionOperators } from "../operator/merge_builder.ts";
import type { BuildContext } from "../operator/builder.ts";
import type { Operator } from "../operator/operator.ts";
import type { ScheduleConfig } from "../config.ts";
import type { RegionInfo } from "../region_info.ts";
import { isSuitable, type StoreView } from "./view.ts";

/** What the merge checker reads. */
export interface MergeView {
  readonly config: Readonly<ScheduleConfig>;
  readonly build: BuildContext;
  store(id: number): StoreView | undefined;
  hasOperator(regionId: number): boolean;
  /** The regions adjacent to `r` on either side, if known. */
  neighbors(r: RegionInfo): { prev?: RegionInfo; next?: RegionInfo };
  /** ms since the region was last seen to split (the scheduler's start counts as one). */
  sinceSplit(regionId: number): number;
  /** Whether the region's recent reads or writes make it hot (hot_stats.ts). */
  isHot(regionId: number): boolean;
}

/** Why a region is not healthy enough to take part in a merge, or undefined. */
function unhealthy(view: MergeView, r: RegionInfo): string | undefined {
  const c = view.config;
  if (!r.leader) return "no leader reported";
  if (r.pendingPeers.length > 0 || r.downPeers.length > 0) return "pending or down peers";
  if (r.meta.peers.length !== c.maxReplicas || r.meta.peers.some((p) => p.role !== "Voter")) {
    return "not exactly max-replicas voters";
  }
  if (r.meta.peers.some((p) => !isSuitable(view.store(p.storeId) ?? DOWN))) {
    return "a peer on a store that is not up";
  }
  if (view.hasOperator(r.meta.id)) return "an operator is running";
  if (view.sinceSplit(r.meta.id) < c.splitMergeInterval) return "split recently";
  if (view.isHot(r.meta.id)) return "hot";
  return undefined;
}

const DOWN: StoreView = {
  id: 0,
  stateName: "Down",
  regionSize: 0,
  regionCount: 0,
  leaderCount: 0,
};

/**
 * The merge of `r` into a neighbour, as `[source's operator, target's operator]`, or null if
 * it should not be merged now.
 */
export function checkMerge(view: MergeView, r: RegionInfo): [Operator, Operator] | null {
  const c = view.config;
  if (c.mergeScheduleLimit === 0 || c.maxMergeRegionSize === 0) return null;
  if (r.approximateSize > c.maxMergeRegionSize || r.approximateKeys > c.maxMergeRegionKeys) {
    return null;
  }
  if (unhealthy(view, r) !== undefined) return null;
  const { prev, next } = view.neighbors(r);
  const targets = [prev, next].filter((t): t is RegionInfo =>
    t !== undefined && unhealthy(view, t) === undefined &&
    t.approximateSize + r.approximateSize <= c.maxMergedRegionSize
  ).sort((a, b) => a.approximateSize - b.approximateSize);
  const target = targets[0];
  if (!target) return null;
  return createMergeRegionOperators("merge-region", "merge", r, target, view.build);
}
