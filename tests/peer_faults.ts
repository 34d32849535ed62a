/**
 * Helpers for tests that race a peer's destruction against a store's own work: membership
 * changes proposed straight to a leader, the tombstone message a leader sends a removed peer,
 * and holding one engine call part way until the test lets it go on.
 */
import type { Peer as PeerMeta } from "../proto/metapb.ts";
import type { Peer } from "../raftstore/peer.ts";
import type { Store } from "../raftstore/store.ts";
import { pauseBalancers, type TestCluster } from "./cluster.ts";

/** Stops balancing, replica repair and merging, so only the test moves peers. */
export async function quietCluster(c: TestCluster): Promise<void> {
  await pauseBalancers(c);
  c.scheduler.cluster.config = {
    ...c.scheduler.cluster.config,
    replicaScheduleLimit: 0,
    mergeScheduleLimit: 0,
  };
}

/** The store that hosts `peer`. */
export function storeOf(c: TestCluster, peer: Peer): Store {
  return c.running().find((n) => n.store.storeId === peer.storeId)!.store;
}

/** Proposes a membership change on `leader`; resolves once it has applied it. */
export function changePeer(
  c: TestCluster,
  leader: Peer,
  changeType: "AddLearnerNode" | "RemoveNode",
  peer: PeerMeta,
): Promise<void> {
  const p = leader.proposeConfChange({
    header: { regionId: leader.regionId, peerId: leader.meta.id, epoch: leader.region.epoch },
    admin: { type: "ChangePeer", changeType, peer },
  });
  storeOf(c, leader).schedule(leader);
  return p;
}

/** Delivers to `store` the tombstone message `leader` sends a peer its region removed. */
export function tellRemoved(store: Store, leader: Peer, removed: PeerMeta): void {
  store.onRaftBatch({
    fromStoreId: leader.storeId,
    envelopes: [{
      regionId: leader.regionId,
      fromPeer: leader.meta,
      toPeer: removed,
      epoch: leader.region.epoch,
      startKey: leader.region.startKey,
      endKey: leader.region.endKey,
      isTombstone: true,
      message: {
        type: "MsgHeartbeat",
        to: removed.id,
        from: leader.meta.id,
        term: leader.raw.raft.term,
        logTerm: 0,
        index: 0,
        entries: [],
        commit: 0,
        reject: false,
        rejectHint: 0,
      },
    }],
  });
}

/** An engine call held part way (see {@link holdFirstCall}). */
export interface Hold {
  /** Whether the call has come and waits. */
  readonly held: boolean;
  /** Lets it go on. */
  release(): void;
}

/**
 * Wraps `obj[method]` so that the first call for which `matches` holds waits until released;
 * every other call goes straight through.
 */
export function holdFirstCall<T extends object, K extends keyof T>(
  obj: T,
  method: K,
  matches: (...args: never[]) => boolean = () => true,
): Hold {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const state = { held: false, release };
  // deno-lint-ignore no-explicit-any
  const original = (obj[method] as any).bind(obj);
  // deno-lint-ignore no-explicit-any
  (obj as any)[method] = async (...args: never[]) => {
    if (!state.held && matches(...args)) {
      state.held = true;
      await gate;
    }
    return await original(...args);
  };
  return state;
}
