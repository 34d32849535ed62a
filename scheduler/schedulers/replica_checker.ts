/**
 * The replica checker (PD's `checker/replica_checker.go`): keeps every region at
 * `max-replicas` healthy voters. In order of urgency:
 * 1. a learner left behind by an ended operator is removed;
 * 2. a peer on a Down store is replaced: with joint consensus, a new learner catches up and one
 *    joint change swaps it in for the down peer (the quorum never needs the new peer before it
 *    has caught up, nor four voters); without, the down peer is removed and the next pass adds
 *    a replacement ({@link checkLostReplicas});
 * 3. a peer on an Offline store is moved to the best Up store;
 * 4. missing peers are added on the Up store with the least region size that lacks one;
 * 5. extra peers are removed, worst first (a non-Up store, then the largest store).
 *
 * @module
 */
import {
  createAddPeerOperator,
  createMovePeerOperator,
  createRemovePeerOperator,
} from "../operator/builder.ts";
import type { Operator } from "../operator/operator.ts";
import type { RegionInfo } from "../region_info.ts";
import type { ClusterView, StoreView } from "./view.ts";

/** The best store to receive a new peer of `r`, or undefined if no store can. */
function bestTarget(view: ClusterView, r: RegionInfo): StoreView | undefined {
  const holders = new Set(r.meta.peers.map((p) => p.storeId));
  let best: StoreView | undefined;
  for (const s of view.stores()) {
    if (s.stateName !== "Up" || holders.has(s.id)) continue;
    if (!best || s.regionSize < best.regionSize) best = s;
  }
  return best;
}

/**
 * The urgent part of the check: removes a peer on a Down store, so a replacement can be added.
 * The coordinator also runs this on regions that have a balance operator, and the repair
 * replaces it. A peer its leader reports down on a store that still heartbeats is left alone
 * (PD's rule): it is usually a slow one, such as a learner still receiving its snapshot on a
 * busy machine, and replacing it would only add load.
 */
export function checkLostReplicas(view: ClusterView, r: RegionInfo): Operator | null {
  const peers = r.meta.peers;
  const down = peers.find((p) =>
    p.id !== r.leader?.id && view.store(p.storeId)?.stateName === "Down"
  );
  if (!down || peers.length < 2) return null;
  const target = view.build.jointConsensus ? bestTarget(view, r) : undefined;
  if (target && down.role === "Voter") {
    return createMovePeerOperator(
      "replace-down-replica",
      "replica",
      r,
      down.storeId,
      target.id,
      view.build,
    );
  }
  return createRemovePeerOperator("remove-down-replica", "replica", r, down.storeId, view.build);
}

/** Returns an operator that fixes `r`'s replicas, or null if it is healthy. */
export function checkReplicas(view: ClusterView, r: RegionInfo): Operator | null {
  const peers = r.meta.peers;
  if (peers.length === 0) return null;
  const stateOf = (storeId: number) => view.store(storeId)?.stateName;

  const learner = peers.find((p) => p.role === "Learner");
  if (learner && peers.length > 1) {
    return createRemovePeerOperator(
      "remove-orphan-learner",
      "replica",
      r,
      learner.storeId,
      view.build,
    );
  }
  const lost = checkLostReplicas(view, r);
  if (lost) return lost;
  const offline = peers.find((p) => stateOf(p.storeId) === "Offline");
  if (offline) {
    const target = bestTarget(view, r);
    if (target) {
      return createMovePeerOperator(
        "replace-offline-replica",
        "replica",
        r,
        offline.storeId,
        target.id,
        view.build,
      );
    }
    if (peers.length > view.maxReplicas) {
      return createRemovePeerOperator(
        "remove-offline-replica",
        "replica",
        r,
        offline.storeId,
        view.build,
      );
    }
  }
  if (peers.length < view.maxReplicas) {
    const target = bestTarget(view, r);
    return target
      ? createAddPeerOperator("make-up-replica", "replica", r, target.id, view.build)
      : null;
  }
  if (peers.length > view.maxReplicas) {
    const rank = (storeId: number) => {
      const s = view.store(storeId);
      return (s?.stateName === "Up" ? 0 : 1e15) + (s?.regionSize ?? 0);
    };
    const worst = [...peers].filter((p) => p.id !== r.leader?.id || peers.length > 1)
      .sort((a, b) => rank(b.storeId) - rank(a.storeId))[0]!;
    return createRemovePeerOperator(
      "remove-extra-replica",
      "replica",
      r,
      worst.storeId,
      view.build,
    );
  }
  return null;
}
