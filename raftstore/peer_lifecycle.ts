/**
 * The end of a store's peers, and the Ready pass they must not race: a peer is destroyed (its
 * region removed it, or re-added this store under a new peer ID) or retired (its region merged
 * away), and a snapshot installed into a peer replaces its data. A destruction waits for the Ready
 * pass that took its peer's Ready, so nothing that pass does for the peer lands after the
 * tombstone; a new peer of the region waits for the destruction, so the old peer's range delete
 * cannot remove what the new one installed.
 *
 * @module
 */
import type { Ready } from "../raft/mod.ts";
import { rangesOverlap, type Region } from "../proto/metapb.ts";
import { MrkvError } from "../proto/errors.ts";
import type { Peer } from "./peer.ts";
import { decodeSnapshotData, installSnapshot, saveSnapshot } from "./snapshot.ts";
import type { MergeState } from "./merge.ts";
import type { StoreParts, Tombstone } from "./store_parts.ts";

/** Destructions, retirements and snapshot installs of one store's peers. */
export class PeerLifecycle {
  /**
   * Destructions in progress by region: a new peer for the region must wait, or the old peer's
   * range delete could remove data the new peer just installed.
   */
  readonly #destroying = new Map<number, Promise<void>>();
  /**
   * The ranges destructions in progress may still delete data in, by region: out of the store
   * meta already, so another region's snapshot over them must wait (see settledOver).
   */
  readonly #deleting = new Map<number, Region>();
  /**
   * The Ready pass in progress: the peers whose Ready it took, and its end. A destruction of one
   * of them waits for that end, so everything the pass does for the peer (a snapshot install,
   * the write of its applied entries, the store meta and new peers of a split) lands before the
   * tombstone, and nothing of it after: an install or a split finishing after the destruction
   * would put the region's range back in the store meta with no peer behind it (and `Normal` on
   * disk), and that range would refuse every later peer of the region as overlapping; and the
   * destruction's range delete, taken over the range from before a split, would delete the
   * data of the regions the split created.
   */
  #pass: { readonly peers: ReadonlySet<Peer>; readonly done: Promise<void> } | undefined;

  constructor(readonly store: StoreParts) {}

  /** Runs `pass` over the peers whose Ready it took; destructions of them wait for its end. */
  async runPass(peers: Iterable<Peer>, pass: () => Promise<void>): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#pass = { peers: new Set(peers), done: promise };
    try {
      await pass();
    } finally {
      this.#pass = undefined;
      resolve();
    }
  }

  /** The destruction or retirement of `regionId`'s peer in progress, if any. */
  destroying(regionId: number): Promise<void> | undefined {
    return this.#destroying.get(regionId);
  }

  /**
   * Resolves once no destruction in progress may still delete data in `range`: a snapshot
   * installed there first would lose its data to the range delete.
   */
  async settledOver(range: Pick<Region, "startKey" | "endKey">): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const [regionId, r] of this.#deleting) {
      if (rangesOverlap(r, range)) waits.push(this.#destroying.get(regionId)!);
    }
    await Promise.allSettled(waits);
  }

  /** Resolves once every destruction in progress has ended. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#destroying.values()]);
  }

  /** Installs the snapshot of `rd` into peer `p` (step 1 of a Ready pass). */
  async installSnapshot(p: Peer, rd: Ready): Promise<void> {
    if (p.destroyed) return;
    const s = this.store;
    const snap = rd.snapshot!;
    const { region } = decodeSnapshotData(snap.data);
    const wasInitialized = p.storage.isInitialized();
    const oldRange = wasInitialized ? p.region : undefined;
    const wb = s.engine.batch();
    saveSnapshot(wb, snap, region);
    await s.engine.write(wb);
    const { requests } = await installSnapshot(
      s.engine,
      s.raftLog,
      snap,
      oldRange,
      rd.hardState ?? p.storage.hardState,
    );
    p.storage.resetToSnapshot(snap.metadata.index, snap.metadata.term, region, requests);
    p.onSnapshotInstalled(snap.metadata.index);
    for (const peer of region.peers) p.peerCache.set(peer.id, peer);
    s.setRegion(region, true);
    s.stats.snapshotsApplied++;
    s.log.info(
      `region ${region.id}: installed snapshot at index ${snap.metadata.index} (${snap.data.length} bytes)`,
    );
  }

  /**
   * Destroys a peer: its region state becomes `Tombstone` first (so a crash cannot bring it
   * back), then its log, Raft state and, if no other local region now owns it, its data go.
   * `region` is the meta its tombstone keeps; by default the peer's own, as a Ready pass still
   * in progress leaves it.
   */
  destroyPeer(p: Peer, region?: Region): Promise<void> {
    if (p.destroyed) return this.#destroying.get(p.regionId) ?? Promise.resolve();
    p.destroyed = true;
    const done = this.#destroy(p, region).finally(() => {
      if (this.#destroying.get(p.regionId) !== done) return;
      this.#destroying.delete(p.regionId);
      this.#deleting.delete(p.regionId);
    });
    this.#destroying.set(p.regionId, done);
    return done;
  }

  async #destroy(p: Peer, lastRegion: Region | undefined): Promise<void> {
    // A Ready pass that took the peer's Ready finishes with it first (see #pass), and the
    // applied data passes left to land behind them lands (apply_writer.ts); a failed pass stops
    // the store, and the Ready loop reports it.
    const pass = this.#pass;
    if (pass?.peers.has(p)) await pass.done;
    await this.store.applyLanded();
    const s = this.store;
    const region = lastRegion ?? p.region; // as the pass left it
    if (p.storage.isInitialized()) this.#deleting.set(p.regionId, p.region);
    this.#takeOutOfService(
      p,
      `region ${p.regionId} was removed from store ${s.storeId}`,
      { region, peerId: p.meta.id },
    );
    const wb = s.engine.batch();
    wb.putRegionState(p.regionId, { peerState: "Tombstone", region });
    wb.deleteRaftState(p.regionId);
    await s.engine.write(wb);
    await this.#dropLog(p);
    if (p.storage.isInitialized() && s.meta.overlapping(p.region).length === 0) {
      const r = p.region;
      await s.engine.deleteRange(r.startKey, r.endKey.length === 0 ? undefined : r.endKey);
    }
  }

  /**
   * Takes a peer out of service whose tombstone is already durable, without touching the data
   * in its range; its log and applied requests are deleted in the background.
   */
  retire(p: Peer, merge: MergeState | undefined): void {
    const s = this.store;
    p.destroyed = true;
    this.#takeOutOfService(
      p,
      `region ${p.regionId} was merged into another region`,
      { region: p.region, peerId: p.meta.id, merge },
    );
    const done = this.#dropLog(p).catch((e) => {
      s.log.warn(`region ${p.regionId}: cleaning up after a merge failed: ${e}`);
    }).finally(() => {
      if (this.#destroying.get(p.regionId) === done) this.#destroying.delete(p.regionId);
    });
    this.#destroying.set(p.regionId, done);
  }

  /** Fails the peer's pending requests and takes it out of the store's maps; a tombstone stays. */
  #takeOutOfService(p: Peer, why: string, tombstone: Tombstone): void {
    const s = this.store;
    p.failPending(new MrkvError("RegionNotFound", why));
    s.peers.delete(p.regionId);
    s.hibernation.removed(p);
    s.meta.removeRegion(p.regionId);
    s.tombstones.set(p.regionId, tombstone);
  }

  /** Deletes a gone peer's Raft log and applied-request table. */
  async #dropLog(p: Peer): Promise<void> {
    const s = this.store;
    // Unsynced: a restart that finds the tombstone drops the log again.
    await s.raftLog.write(s.raftLog.batch().clean(p.regionId), { sync: false });
    await s.engine.deleteAppliedRequests(p.regionId);
  }
}
