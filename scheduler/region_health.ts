/**
 * Region health as the scheduler sees it, for `/metrics` and `GET /regions/check/{problem}`
 * (after PD's region statistics). A region can have several problems at once:
 *
 * - `down-peer`: a peer its leader reports down (not heard from for the store's
 *   `max-peer-down-duration`), or a peer on a store that is not heard from (Disconnected, Down)
 *   or gone (Tombstone, unknown);
 * - `pending-peer`: a peer its leader reports catching up (it needs a snapshot or log);
 * - `miss-peer`: fewer healthy voters (neither down nor pending) than `max-replicas`;
 * - `no-leader`: no leader reported, or the reported leader's store is not heard from.
 *
 * Per store, a region counts for `down-peer` and `pending-peer` on the store of that peer, and
 * for `miss-peer` and `no-leader` on every store holding one of its peers.
 *
 * @module
 */
import type { Peer } from "../proto/metapb.ts";
import type { RegionInfo } from "./region_info.ts";
import type { StoreStateName } from "./store_info.ts";

/** A health problem (the names of PD's `regions/check/*` routes, plus `no-leader`). */
export type HealthProblem = "miss-peer" | "down-peer" | "pending-peer" | "no-leader";

/** Every problem, in the order metrics list them. */
export const HEALTH_PROBLEMS: readonly HealthProblem[] = [
  "miss-peer",
  "down-peer",
  "pending-peer",
  "no-leader",
];

/** What {@link regionHealth} reads: store states and the wanted replica count. */
export interface HealthContext {
  readonly maxReplicas: number;
  /** A store's state name, or undefined if the store is not registered. */
  stateOf(storeId: number): StoreStateName | undefined;
}

/** One region's problems, each with the stores it concerns (see the module comment). */
export type RegionProblems = ReadonlyMap<HealthProblem, readonly number[]>;

function isSilentStore(state: StoreStateName | undefined): boolean {
  return state === undefined || state === "Disconnected" || state === "Down" ||
    state === "Tombstone";
}

/** The problems of `r` (an empty map if it is healthy). */
export function regionHealth(r: RegionInfo, ctx: HealthContext): RegionProblems {
  const out = new Map<HealthProblem, number[]>();
  const stores = r.meta.peers.map((p) => p.storeId);
  const isDown = (p: Peer) =>
    r.downPeers.some((d) => d.peer.id === p.id) || isSilentStore(ctx.stateOf(p.storeId));
  const isPending = (p: Peer) => r.pendingPeers.some((x) => x.id === p.id);
  const down = r.meta.peers.filter(isDown);
  const pending = r.meta.peers.filter(isPending);
  if (down.length > 0) out.set("down-peer", down.map((p) => p.storeId));
  if (pending.length > 0) out.set("pending-peer", pending.map((p) => p.storeId));
  const healthy = r.meta.peers.filter((p) => p.role === "Voter" && !isDown(p) && !isPending(p));
  if (healthy.length < ctx.maxReplicas) out.set("miss-peer", stores);
  if (!r.leader || isSilentStore(ctx.stateOf(r.leader.storeId))) out.set("no-leader", stores);
  return out;
}

/** Counts over many regions, cluster-wide and per store. */
export interface HealthSummary {
  readonly total: Record<HealthProblem, number>;
  readonly byStore: Map<number, Record<HealthProblem, number>>;
}

function zeros(): Record<HealthProblem, number> {
  return { "miss-peer": 0, "down-peer": 0, "pending-peer": 0, "no-leader": 0 };
}

/** Counts the problems of `regions`. */
export function summarizeHealth(regions: Iterable<RegionInfo>, ctx: HealthContext): HealthSummary {
  const total = zeros();
  const byStore = new Map<number, Record<HealthProblem, number>>();
  for (const r of regions) {
    for (const [problem, stores] of regionHealth(r, ctx)) {
      total[problem]++;
      for (const id of new Set(stores)) {
        let s = byStore.get(id);
        if (!s) byStore.set(id, s = zeros());
        s[problem]++;
      }
    }
  }
  return { total, byStore };
}

/** Parses a problem name from a URL, or undefined. */
export function parseHealthProblem(text: string): HealthProblem | undefined {
  return HEALTH_PROBLEMS.find((p) => p === text);
}
