/**
 * Checkers and schedulers: pure functions of a {@link ClusterView} that return operators.
 * `replica_checker.ts` runs on every region; the schedulers below are registered by name and
 * can be listed, added and removed at run time through the admin API.
 *
 * May import: `proto/`, `scheduler/operator/`, `scheduler/region_info.ts`,
 * `scheduler/store_info.ts`, `scheduler/hot_stats.ts`.
 *
 * @module
 */
import { BALANCE_LEADER_NAME, balanceLeaderScheduler } from "./balance_leader.ts";
import { BALANCE_REGION_NAME, balanceRegionScheduler } from "./balance_region.ts";
import { HOT_REGION_NAME, hotRegionScheduler } from "./hot_region.ts";
import type { Scheduler } from "./view.ts";

export * from "./balance_leader.ts";
export * from "./balance_region.ts";
export * from "./hot_region.ts";
export * from "./replica_checker.ts";
export * from "./view.ts";

/** Every scheduler that can be added by name. */
export const SCHEDULER_FACTORIES: Readonly<Record<string, () => Scheduler>> = {
  [BALANCE_REGION_NAME]: balanceRegionScheduler,
  [BALANCE_LEADER_NAME]: balanceLeaderScheduler,
  [HOT_REGION_NAME]: hotRegionScheduler,
};

/** The schedulers a new cluster runs (PD's defaults, minus slow-store). */
export const DEFAULT_SCHEDULERS: readonly string[] = [
  BALANCE_REGION_NAME,
  BALANCE_LEADER_NAME,
  HOT_REGION_NAME,
];
