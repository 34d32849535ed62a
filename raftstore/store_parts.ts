/**
 * What the parts of a store share: its maps, its engines and a few of its operations. `store.ts`
 * builds one {@link StoreParts} and hands it to the parts it is made of — the lifecycle of peers
 * (`peer_lifecycle.ts`), the effects of applied admin commands (`apply_effects.ts`), the store's
 * side of merges (`store_merge.ts`) and inbound Raft messages (`inbound.ts`) — so those import
 * nothing of the store itself.
 *
 * @module
 */
import type { KvEngine, RaftLogEngine } from "../storage/mod.ts";
import type { Peer as PeerMeta, Region } from "../proto/metapb.ts";
import type { Peer } from "./peer.ts";
import type { PeerStorage } from "./peer_storage.ts";
import type { StoreMeta } from "./store_meta.ts";
import type { Hibernation } from "./hibernate.ts";
import type { EarlyVotes } from "./split.ts";
import type { FlowCounter } from "./flow.ts";
import type { MergeState } from "./merge.ts";
import type { RaftEnvelope, Transport } from "./transport.ts";

/** Something that wants to hear about region changes (the heartbeat task). */
export interface RegionObserver {
  /** A region's leader, epoch or size changed on a peer this store leads. */
  regionChanged(peer: Peer): void;
}

/** Logging sink; tests pass a quiet one. */
export interface StoreLogger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/**
 * A region whose local peer was destroyed, with the last region meta it had (and, for a region
 * merged away, its merge state: stale peers of it are told where it went).
 */
export interface Tombstone {
  readonly region: Region;
  readonly peerId: number;
  readonly merge?: MergeState;
}

/** A store as its parts see it. */
export interface StoreParts {
  readonly storeId: number;
  readonly engine: KvEngine;
  readonly raftLog: RaftLogEngine;
  readonly log: StoreLogger;
  readonly peers: Map<number, Peer>;
  readonly meta: StoreMeta;
  readonly tombstones: Map<number, Tombstone>;
  readonly hibernation: Hibernation;
  readonly earlyVotes: EarlyVotes;
  readonly flow: FlowCounter;
  readonly stats: { snapshotsApplied: number };
  /** Whether the store is stopping. */
  stopped(): boolean;
  /** The heartbeat task, once it is set. */
  observer(): RegionObserver | undefined;
  /** The store's transport (set after construction). */
  transport(): Transport;
  /** Records a region in the store meta and tells who wants to know who its peers are. */
  setRegion(region: Region, initialized: boolean): void;
  /** A peer of this store, with the store's Raft settings. */
  newPeer(meta: PeerMeta, storage: PeerStorage): Peer;
  /** Wakes a peer and marks it for the Ready loop. */
  schedule(peer: Peer): void;
  /** Marks a peer for the Ready loop without waking it. */
  markDirty(peer: Peer): void;
  /** Resolves once the applied data the Ready loop queued so far has landed (apply_writer.ts). */
  applyLanded(): Promise<void>;
  /** Sends envelopes to another store (noted as news of it). */
  send(storeId: number, envelopes: RaftEnvelope[]): void;
}
