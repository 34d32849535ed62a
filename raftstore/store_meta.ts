/**
 * The store's map of the regions it holds: by ID, and ordered by start key so a key routes to
 * its region with a binary search. Only initialized regions (ones that know their key range) are
 * in the range index; a peer created for an unknown region joins it once its first snapshot
 * arrives.
 *
 * Invariant: ranges in the index never overlap. {@link StoreMeta.setRegion} refuses a region
 * that would overlap another, which is how a stale peer is kept from shadowing a live one.
 *
 * @module
 */
import { compareBytes, keyInRegion, rangesOverlap, type Region } from "../proto/metapb.ts";

/** Regions held by one store. */
export class StoreMeta {
  /** Every region with a local peer, initialized or not. */
  readonly regions = new Map<number, Region>();
  /** Initialized regions sorted by start key. */
  #byStart: Region[] = [];

  /** The region whose range holds `key`, if this store has one. */
  regionForKey(key: Uint8Array): Region | undefined {
    const list = this.#byStart;
    let lo = 0;
    let hi = list.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (compareBytes(list[mid]!.startKey, key) <= 0) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    const region = found >= 0 ? list[found] : undefined;
    return region && keyInRegion(key, region) ? region : undefined;
  }

  /** Initialized regions overlapping `range`, in key order. */
  overlapping(range: Pick<Region, "startKey" | "endKey">): Region[] {
    return this.#byStart.filter((r) => rangesOverlap(r, range));
  }

  /** All initialized regions in key order. */
  sortedRegions(): readonly Region[] {
    return this.#byStart;
  }

  /**
   * Records `region` (new or changed). An uninitialized region (no peers known yet) is kept by ID
   * only. Returns false, changing nothing, if it would overlap another initialized region.
   */
  setRegion(region: Region, initialized = true): boolean {
    if (initialized) {
      const clash = this.#byStart.find((r) => r.id !== region.id && rangesOverlap(r, region));
      if (clash) return false;
    }
    this.regions.set(region.id, region);
    this.#byStart = this.#byStart.filter((r) => r.id !== region.id);
    if (initialized) {
      this.#byStart.push(region);
      this.#byStart.sort((a, b) => compareBytes(a.startKey, b.startKey));
    }
    return true;
  }

  /** Forgets a region (its peer was destroyed). */
  removeRegion(regionId: number): void {
    this.regions.delete(regionId);
    this.#byStart = this.#byStart.filter((r) => r.id !== regionId);
  }
}
