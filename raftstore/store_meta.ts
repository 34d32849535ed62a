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
import {
  compareBytes,
  keyInRegion,
  lastStartingAtOrBefore,
  rangesOverlap,
  type Region,
} from "../proto/metapb.ts";

/** Regions held by one store. */
export class StoreMeta {
  /** Every region with a local peer, initialized or not. */
  readonly regions = new Map<number, Region>();
  /**
   * Initialized regions sorted by start key. Kept with binary searches (O(log n) to find, one
   * memmove to insert or remove): a store with ten thousand regions changes it on every split.
   */
  #byStart: Region[] = [];

  /** Index of the last region whose start key is <= `key`, or -1. */
  #atOrBefore(key: Uint8Array): number {
    return lastStartingAtOrBefore(this.#byStart, key);
  }

  /** The region whose range holds `key`, if this store has one. */
  regionForKey(key: Uint8Array): Region | undefined {
    const region = this.#byStart[this.#atOrBefore(key)];
    return region && keyInRegion(key, region) ? region : undefined;
  }

  /** Initialized regions overlapping `range`, in key order. */
  overlapping(range: Pick<Region, "startKey" | "endKey">): Region[] {
    const out: Region[] = [];
    // Ranges never overlap, so only the one starting at or before `range` can reach into it
    // from the left; the rest start inside it.
    for (let i = Math.max(0, this.#atOrBefore(range.startKey)); i < this.#byStart.length; i++) {
      const r = this.#byStart[i]!;
      if (range.endKey.length > 0 && compareBytes(r.startKey, range.endKey) >= 0) break;
      if (rangesOverlap(r, range)) out.push(r);
    }
    return out;
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
    if (initialized && this.overlapping(region).some((r) => r.id !== region.id)) return false;
    this.#unindex(region.id);
    this.regions.set(region.id, region);
    if (initialized) this.#byStart.splice(this.#atOrBefore(region.startKey) + 1, 0, region);
    return true;
  }

  /** Forgets a region (its peer was destroyed). */
  removeRegion(regionId: number): void {
    this.#unindex(regionId);
    this.regions.delete(regionId);
  }

  /** Takes region `regionId` out of the range index, if it is there. */
  #unindex(regionId: number): void {
    const old = this.regions.get(regionId);
    if (!old) return;
    const i = this.#atOrBefore(old.startKey);
    if (i >= 0 && this.#byStart[i]!.id === regionId) this.#byStart.splice(i, 1);
  }
}
