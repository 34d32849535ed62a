/**
 * balance-leader (PD's `balance_leader.go`): evens out leader counts with TransferLeader.
 *
 * Sources are suitable stores by leader count, most first. For a source, every region it
 * leads (without an operator) is a candidate; its voter followers on suitable stores are
 * possible targets, unless the leader reports them pending or down. The target with the fewest leaders wins, and the transfer happens only if
 * the source has at least two more leaders than it, so the target never ends up above the
 * source and no leadership moves back and forth. A source with no suitable store at least two
 * leaders below it is skipped without looking at its regions, so a balanced cluster costs a look
 * at its stores rather than at every region they lead, on every run.
 *
 * @module
 */
import { createTransferLeaderOperator } from "../operator/builder.ts";
import type { Operator } from "../operator/operator.ts";
import { mayLead, type RegionInfo } from "../region_info.ts";
import { type ClusterView, isSuitable, type Scheduler, type StoreView } from "./view.ts";

/** The scheduler's registered name. */
export const BALANCE_LEADER_NAME = "balance-leader-scheduler";

/** Creates the balance-leader scheduler. */
export function balanceLeaderScheduler(): Scheduler {
  return { name: BALANCE_LEADER_NAME, kind: "leader", schedule: scheduleBalanceLeader };
}

/** One balance-leader decision over `view`. */
export function scheduleBalanceLeader(view: ClusterView): Operator | null {
  const stores = view.stores().filter(isSuitable);
  if (stores.length < 2) return null;
  const byId = new Map(stores.map((s) => [s.id, s]));
  const sources = [...stores].sort((a, b) => b.leaderCount - a.leaderCount);
  const fewest = sources.at(-1)!.leaderCount;
  for (const source of sources) {
    // Sources come most loaded first: once none can give, none after it can either.
    if (source.leaderCount - fewest < 2) break;
    let best: { region: RegionInfo; target: StoreView } | null = null;
    for (const id of view.regionIdsOn(source.id, "leader")) {
      if (view.hasOperator(id)) continue;
      const region = view.region(id);
      if (!region) continue;
      for (const p of region.meta.peers) {
        if (p.storeId === source.id || !mayLead(region, p)) continue;
        const t = byId.get(p.storeId);
        if (!t || source.leaderCount - t.leaderCount < 2) continue;
        if (!best || t.leaderCount < best.target.leaderCount) best = { region, target: t };
      }
    }
    if (best) {
      return createTransferLeaderOperator(
        "balance-leader",
        "leader",
        best.region,
        best.target.id,
        view.build,
      );
    }
  }
  return null;
}
