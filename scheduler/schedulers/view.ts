/**
 * The narrow view of the cluster that checkers and schedulers read (STYLE.md: schedulers are
 * functions of a narrow cluster view that return operators). The running server builds it
 * from the cluster map and the running operators' influence; tests build it with the mock
 * cluster in `_mock_cluster.ts`.
 *
 * @module
 */
import type { BuildContext } from "../operator/builder.ts";
import type { Operator, OperatorKind } from "../operator/operator.ts";
import type { RegionInfo } from "../region_info.ts";
import type { RegionRates } from "../hot_stats.ts";
import { isTargetState, type StoreStateName } from "../store_info.ts";

/** A store as schedulers see it. Sizes are MiB; counts include running operators' influence. */
export interface StoreView {
  readonly id: number;
  readonly stateName: StoreStateName;
  readonly regionSize: number;
  readonly regionCount: number;
  readonly leaderCount: number;
}

/**
 * A region with recent traffic rates (hot_stats.ts), placed as it will be once its running
 * operator (if any) is done: where its leader and its peers will be.
 */
export interface HotRegionView {
  readonly region: RegionInfo;
  readonly rates: RegionRates;
  readonly leaderStoreId: number | undefined;
  readonly storeIds: readonly number[];
}

/** Which of a store's regions to list. */
export type RegionRole = "pending" | "follower" | "leader";

/** Everything a checker or scheduler may read. */
export interface ClusterView {
  readonly maxReplicas: number;
  readonly maxStoreDownTime: number;
  /** Builder context: the time and fresh peer IDs. */
  readonly build: BuildContext;
  /** Registered stores that are not Tombstone. */
  stores(): readonly StoreView[];
  store(id: number): StoreView | undefined;
  region(id: number): RegionInfo | undefined;
  /** IDs of regions whose peer on `storeId` has `role`. */
  regionIdsOn(storeId: number, role: RegionRole): readonly number[];
  hasOperator(regionId: number): boolean;
  /**
   * Stores that balance-region operators (running or among the recent ended ones) took a peer
   * of this region away from: balance-region never moves the region back onto them.
   */
  movedFrom(regionId: number): ReadonlySet<number>;
  /** Regions with recent traffic rates, with running operators' influence. */
  hotRegions(): readonly HotRegionView[];
  /** ms since an operator on this region last finished, if one did lately. */
  sinceLastOperator(regionId: number): number | undefined;
  /** Uniform in [0, 1); injected so tests replay. */
  random(): number;
}

/**
 * Suitable as a balance source or target: state `Up`. A `Disconnected` store has missed
 * heartbeats and may be dead: balancing waits until it is back (or Down and repaired), since
 * moving leaders or peers onto it would stall regions, and moving them off it needs its help.
 */
export function isSuitable(s: StoreView): boolean {
  return isTargetState(s.stateName);
}

/** A checker or scheduler, registered by name. */
export interface Scheduler {
  readonly name: string;
  readonly kind: OperatorKind;
  /** Returns an operator to run, or null if nothing is worth doing. */
  schedule(view: ClusterView): Operator | null;
}

/** A uniformly random element of `items`, or undefined if empty. */
export function pickRandom<T>(items: readonly T[], random: () => number): T | undefined {
  if (items.length === 0) return undefined;
  return items[Math.min(items.length - 1, Math.floor(random() * items.length))];
}
