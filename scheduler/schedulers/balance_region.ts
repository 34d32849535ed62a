/**
 * balance-region (PD's `balance_region.go`, TinyKV 3C rules): moves one peer from the store
 * with the most region size to the one with the least.
 *
 * - Sources and targets are suitable stores ({@link isSuitable}), sources largest first.
 * - On a source, pick a random pending region, else a random follower region, else a random
 *   leader region; up to {@link RETRY_LIMIT} picks per source. Regions with an operator or
 *   with a peer count other than `max-replicas` are skipped.
 * - The target is the smallest suitable store without a peer of the region, and not one that
 *   balance-region recently took a peer of this region from ({@link ClusterView.movedFrom}).
 * - Move only if `source.regionSize - target.regionSize > 2 * region.approximateSize`: after
 *   the move the target is still smaller than the source, so the same peer never comes back.
 *
 * @module
 */
import { createMovePeerOperator } from "../operator/builder.ts";
import type { Operator } from "../operator/operator.ts";
import { type ClusterView, isSuitable, pickRandom, type Scheduler } from "./view.ts";

/** Picks per source store before trying the next (PD's `balanceRegionRetryLimit`). */
export const RETRY_LIMIT = 10;

/** The scheduler's registered name. */
export const BALANCE_REGION_NAME = "balance-region-scheduler";

/** Creates the balance-region scheduler. */
export function balanceRegionScheduler(): Scheduler {
  return { name: BALANCE_REGION_NAME, kind: "region", schedule: scheduleBalanceRegion };
}

/** One balance-region decision over `view`. */
export function scheduleBalanceRegion(view: ClusterView): Operator | null {
  const stores = view.stores().filter(isSuitable);
  if (stores.length < 2) return null;
  const sources = [...stores].sort((a, b) => b.regionSize - a.regionSize);
  const smallest = sources.at(-1)!.regionSize;
  for (const source of sources) {
    // Sources come largest first: once no store is smaller than the source, no move passes the
    // size rule below, from it or any source after it (so its regions are not drawn at all).
    if (source.regionSize <= smallest) break;
    for (let i = 0; i < RETRY_LIMIT; i++) {
      const id = pickRandom(view.regionIdsOn(source.id, "pending"), view.random) ??
        pickRandom(view.regionIdsOn(source.id, "follower"), view.random) ??
        pickRandom(view.regionIdsOn(source.id, "leader"), view.random);
      if (id === undefined) break; // nothing on this store
      const region = view.region(id);
      if (!region || view.hasOperator(id)) continue;
      if (region.meta.peers.length !== view.maxReplicas) continue;
      const holders = new Set(region.meta.peers.map((p) => p.storeId));
      const left = view.movedFrom(id);
      let target = undefined;
      for (const s of stores) {
        if (holders.has(s.id) || left.has(s.id)) continue;
        if (!target || s.regionSize < target.regionSize) target = s;
      }
      if (!target) continue;
      if (source.regionSize - target.regionSize <= 2 * region.approximateSize) continue;
      return createMovePeerOperator(
        "balance-region",
        "region",
        region,
        source.id,
        target.id,
        view.build,
      );
    }
  }
  return null;
}
