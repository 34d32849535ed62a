/**
 * Regions ordered by start key (PD's `region_tree.go`), for routing a key to its region and
 * finding the regions a heartbeat overlaps. A sorted array with binary search: lookups are
 * O(log n); inserts and removals O(n) memmove, which is cheap at the tens of thousands of
 * regions a cluster of this size holds.
 *
 * Invariant: items are sorted by `startKey` and never overlap.
 *
 * @module
 */
import {
  compareBytes,
  lastStartingAtOrBefore,
  rangesOverlap,
  type Region,
} from "../proto/metapb.ts";

/** A range in the tree, with the region ID it belongs to. */
export type RangeItem = Pick<Region, "id" | "startKey" | "endKey">;

/** Regions by key range. */
export class RegionTree {
  #items: RangeItem[] = [];

  /** Number of regions in the tree. */
  get length(): number {
    return this.#items.length;
  }

  /** Index of the last item whose start key is <= `key`, or -1. */
  #lastAtOrBefore(key: Uint8Array): number {
    return lastStartingAtOrBefore(this.#items, key);
  }

  /** The region containing `key`, if any (there may be gaps while splits report). */
  find(key: Uint8Array): RangeItem | undefined {
    const i = this.#lastAtOrBefore(key);
    if (i < 0) return undefined;
    const item = this.#items[i]!;
    return item.endKey.length === 0 || compareBytes(key, item.endKey) < 0 ? item : undefined;
  }

  /** Every item overlapping `range`, in key order. */
  overlaps(range: Pick<Region, "startKey" | "endKey">): RangeItem[] {
    const out: RangeItem[] = [];
    let i = Math.max(0, this.#lastAtOrBefore(range.startKey));
    for (; i < this.#items.length; i++) {
      const item = this.#items[i]!;
      if (range.endKey.length > 0 && compareBytes(item.startKey, range.endKey) >= 0) break;
      if (rangesOverlap(item, range)) out.push(item);
    }
    return out;
  }

  /** Inserts `item`. The caller has removed every overlapping item first. */
  insert(item: RangeItem): void {
    const i = this.#lastAtOrBefore(item.startKey) + 1;
    this.#items.splice(i, 0, item);
  }

  /** Replaces the item of the same region and range with `item` (its new meta). */
  replace(item: RangeItem): void {
    const i = this.#lastAtOrBefore(item.startKey);
    if (i < 0 || this.#items[i]!.id !== item.id) {
      throw new Error(`region tree: region ${item.id} is not where its start key says`);
    }
    this.#items[i] = item;
  }

  /** Removes the item for region `id` starting at `startKey`; false if absent. */
  remove(id: number, startKey: Uint8Array): boolean {
    const i = this.#lastAtOrBefore(startKey);
    if (i < 0 || this.#items[i]!.id !== id) return false;
    this.#items.splice(i, 1);
    return true;
  }

  /** The items just before and just after the item starting at `startKey` (if any). */
  neighbors(startKey: Uint8Array): { prev?: RangeItem; next?: RangeItem } {
    const i = this.#lastAtOrBefore(startKey);
    if (i < 0 || compareBytes(this.#items[i]!.startKey, startKey) !== 0) return {};
    return { prev: this.#items[i - 1], next: this.#items[i + 1] };
  }

  /** All items in key order. */
  items(): readonly RangeItem[] {
    return this.#items;
  }
}
