/**
 * The region half of the cluster map (PD's `core.RegionsInfo`): regions by ID and by key range,
 * per-store indexes (leader, follower, pending) and per-store statistics, all kept in step by
 * {@link RegionsInfo.putRegion}, the one place that admits a heartbeat.
 *
 * Staleness (docs/scheduler.md): a heartbeat is stale if the known region with its ID has a
 * larger `version` or `confVer` (either one, even if the other is smaller), or if any other
 * region it overlaps has a larger `version` (PD's rule; `confVer` does not compare across
 * regions since merges). Equal is not stale. Stale
 * heartbeats change nothing; accepted ones replace the old region and remove every region they
 * overlap from both indexes (the gap a split leaves stays until the other half reports).
 *
 * @module
 */
import { MrkvError } from "../proto/errors.ts";
import { bytesEqual, isEpochStale, type Region } from "../proto/metapb.ts";
import { regionChanged, type RegionInfo } from "./region_info.ts";
import { RegionTree } from "./region_tree.ts";

/** Per-store aggregates, derived from the regions that have a peer on the store. */
export interface StoreRegionStats {
  regionCount: number;
  leaderCount: number;
  /** Sum of approximate sizes (MiB) of the store's regions. */
  regionSize: number;
  leaderSize: number;
  pendingPeerCount: number;
  readonly leaders: Set<number>;
  /** Regions with a non-leader peer (voter or learner) here. */
  readonly followers: Set<number>;
  /** Regions whose peer here is pending. */
  readonly pending: Set<number>;
}

function emptyStats(): StoreRegionStats {
  return {
    regionCount: 0,
    leaderCount: 0,
    regionSize: 0,
    leaderSize: 0,
    pendingPeerCount: 0,
    leaders: new Set(),
    followers: new Set(),
    pending: new Set(),
  };
}

/** What {@link RegionsInfo.putRegion} did. */
export interface PutResult {
  /** False if the heartbeat carried nothing new (the cheap path). */
  readonly changed: boolean;
  /** Regions removed because the new one overlaps them. */
  readonly overlaps: readonly RegionInfo[];
}

/** Regions by ID and key range, with per-store indexes. */
export class RegionsInfo {
  readonly #byId = new Map<number, RegionInfo>();
  readonly #tree = new RegionTree();
  readonly #stores = new Map<number, StoreRegionStats>();

  /** Number of regions known. */
  get count(): number {
    return this.#byId.size;
  }

  /** The region with this ID. */
  getRegion(id: number): RegionInfo | undefined {
    return this.#byId.get(id);
  }

  /** The region containing `key`, if known. */
  getRegionByKey(key: Uint8Array): RegionInfo | undefined {
    const item = this.#tree.find(key);
    return item && this.#byId.get(item.id);
  }

  /** The regions adjacent to `region` on either side, if known (a merge's candidates). */
  neighbors(region: Region): { prev?: RegionInfo; next?: RegionInfo } {
    const { prev, next } = this.#tree.neighbors(region.startKey);
    return {
      prev: prev && bytesEqual(prev.endKey, region.startKey) ? this.#byId.get(prev.id) : undefined,
      next: next && region.endKey.length > 0 && bytesEqual(next.startKey, region.endKey)
        ? this.#byId.get(next.id)
        : undefined,
    };
  }

  /** All regions in key order. */
  regions(): RegionInfo[] {
    return this.#tree.items().map((item) => this.#byId.get(item.id)!);
  }

  /** Statistics of a store (zeros for a store no region mentions). */
  storeStats(storeId: number): Readonly<StoreRegionStats> {
    return this.#stores.get(storeId) ?? emptyStats();
  }

  /**
   * Throws `EpochNotMatch` if `region` is stale against the region with its ID or any region
   * it overlaps; otherwise returns the other regions it overlaps.
   */
  checkStale(region: Region): RegionInfo[] {
    const origin = this.#byId.get(region.id);
    if (origin && isEpochStale(region.epoch, origin.meta.epoch)) {
      throw staleError(region, origin.meta);
    }
    const overlaps: RegionInfo[] = [];
    for (const item of this.#tree.overlaps(region)) {
      if (item.id === region.id) continue;
      const other = this.#byId.get(item.id)!;
      // Only `version` compares across regions (PD's rule): a merged region does not carry its
      // source's `confVer`, which may well be larger than its own.
      if (region.epoch.version < other.meta.epoch.version) throw staleError(region, other.meta);
      overlaps.push(other);
    }
    return overlaps;
  }

  /** Admits `info` after checking staleness (throws `EpochNotMatch` if stale). */
  putRegion(info: RegionInfo): PutResult {
    const origin = this.#byId.get(info.meta.id);
    if (origin && isEpochStale(info.meta.epoch, origin.meta.epoch)) {
      throw staleError(info.meta, origin.meta);
    }
    // The cheap path: same region, nothing changed. Overlaps cannot have appeared, since every
    // admitted region removes what it overlaps.
    if (origin && !regionChanged(origin, info)) return { changed: false, overlaps: [] };
    // Same range (leader, peers, epoch or size changed): nothing else can overlap it, and the
    // tree entry is replaced in place.
    if (
      origin && bytesEqual(origin.meta.startKey, info.meta.startKey) &&
      bytesEqual(origin.meta.endKey, info.meta.endKey)
    ) {
      this.#index(origin, -1);
      this.#tree.replace(info.meta);
      this.#byId.set(info.meta.id, info);
      this.#index(info, 1);
      return { changed: true, overlaps: [] };
    }
    const overlaps = this.checkStale(info.meta);
    for (const o of overlaps) this.removeRegion(o.meta.id);
    if (origin) this.#unindex(origin);
    this.#byId.set(info.meta.id, info);
    this.#tree.insert(info.meta);
    this.#index(info, 1);
    return { changed: true, overlaps };
  }

  /** Removes a region from both indexes and the store stats. */
  removeRegion(id: number): RegionInfo | undefined {
    const r = this.#byId.get(id);
    if (!r) return undefined;
    this.#unindex(r);
    this.#byId.delete(id);
    return r;
  }

  #unindex(r: RegionInfo): void {
    this.#tree.remove(r.meta.id, r.meta.startKey);
    this.#index(r, -1);
  }

  #index(r: RegionInfo, sign: 1 | -1): void {
    const id = r.meta.id;
    for (const p of r.meta.peers) {
      let s = this.#stores.get(p.storeId);
      if (!s) this.#stores.set(p.storeId, s = emptyStats());
      s.regionCount += sign;
      s.regionSize += sign * r.approximateSize;
      const isLeader = r.leader?.id === p.id;
      if (isLeader) {
        s.leaderCount += sign;
        s.leaderSize += sign * r.approximateSize;
      }
      const set = isLeader ? s.leaders : s.followers;
      if (sign > 0) set.add(id);
      else set.delete(id);
    }
    for (const p of r.pendingPeers) {
      const s = this.#stores.get(p.storeId)!;
      s.pendingPeerCount += sign;
      if (sign > 0) s.pending.add(id);
      else s.pending.delete(id);
    }
  }
}

function staleError(region: Region, known: Region): MrkvError {
  const e = (r: Region) => `{confVer: ${r.epoch.confVer}, version: ${r.epoch.version}}`;
  return new MrkvError(
    "EpochNotMatch",
    `region ${region.id} heartbeat is stale: epoch ${e(region)} is behind region ${known.id}'s ${
      e(known)
    }`,
  );
}
