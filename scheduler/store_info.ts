/**
 * Stores as the scheduler sees them, and their states.
 *
 * A store's persisted state is `Up`, `Offline` (being drained: its replicas move elsewhere) or
 * `Tombstone` (drained; it may never come back). Two more states are derived from time since
 * the last store heartbeat: `Disconnected` after `store-disconnect-time` (a few missed
 * heartbeats: the store may be dead, so no operator may target it) and `Down` after
 * `max-store-down-time`, when the replica checker rebuilds its replicas elsewhere. (The cluster
 * also counts an Up store as Disconnected while most other stores report they cannot reach it:
 * `Cluster.stateName`.) Persisted states change only along {@link STORE_TRANSITIONS}.
 *
 * @module
 */
import { MrkvError } from "../proto/errors.ts";
import type { Store } from "../proto/metapb.ts";
import type { StoreStats } from "../proto/pdpb.ts";

/** What is persisted about a store's life cycle. */
export type StoreMetaState = "Up" | "Offline" | "Tombstone";
/** What the admin API and schedulers see. */
export type StoreStateName = "Up" | "Disconnected" | "Down" | "Offline" | "Tombstone";

/**
 * Allowed changes of the persisted state. `Offline → Up` cancels a drain; `Offline →
 * Tombstone` happens once the store holds no replica; `Tombstone` is final.
 */
export const STORE_TRANSITIONS: Readonly<Record<StoreMetaState, readonly StoreMetaState[]>> = {
  Up: ["Offline"],
  Offline: ["Up", "Tombstone"],
  Tombstone: [],
};

/** A registered store. */
export interface StoreInfo {
  readonly meta: Store;
  readonly state: StoreMetaState;
  /** Time (ms) of the last store heartbeat, or of registration/scheduler start if none yet. */
  readonly lastHeartbeat: number;
  /** True once a real heartbeat arrived (the admin API shows null otherwise). */
  readonly heartbeatSeen: boolean;
  readonly stats: StoreStats | null;
}

/** The two silences that change a store's state name (ms; see the schedule config). */
export interface Liveness {
  readonly maxStoreDownTime: number;
  readonly storeDisconnectTime: number;
}

/** The state name at time `now`. */
export function storeStateName(s: StoreInfo, now: number, live: Liveness): StoreStateName {
  if (s.state !== "Up") return s.state;
  const silent = now - s.lastHeartbeat;
  if (silent > live.maxStoreDownTime) return "Down";
  if (silent > live.storeDisconnectTime) return "Disconnected";
  return "Up";
}

/**
 * True if a store may receive a new peer or leadership: state `Up` only. A `Disconnected`
 * store has missed heartbeats and may be dead; sending it work would only stall the region
 * (a leader transfer blocks the region's writes until it times out).
 */
export function isTargetState(name: StoreStateName): boolean {
  return name === "Up";
}

/** Returns `s` in state `to`, or throws `BadRequest` if the transition is not allowed. */
export function transitionStore(s: StoreInfo, to: StoreMetaState): StoreInfo {
  if (s.state === to) return s;
  if (!STORE_TRANSITIONS[s.state].includes(to)) {
    throw new MrkvError(
      "BadRequest",
      `store ${s.meta.id} cannot go from ${s.state} to ${to}`,
    );
  }
  return { ...s, state: to };
}
