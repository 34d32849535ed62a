/**
 * Region split driven by size.
 *
 * Every `split-check-ms` each leader whose region grew by at least an eighth of
 * `region-split-size` since its last check, or lost at least an eighth of its keys to deletes
 * (so the scheduler sees it shrink and can merge it), or was never checked, scans its range,
 * adding up key and value sizes. That total becomes the approximate size reported to the scheduler; past
 * `region-max-size` the first key at which the running total passes `region-split-size` becomes
 * the split key. The leader asks the scheduler for the new region's IDs and proposes a Split
 * admin command, which apply checks against the region epoch (so a stale split fails cleanly).
 *
 * @module
 */
import { MrkvError } from "../proto/errors.ts";
import { compareBytes, keyInRegion } from "../proto/metapb.ts";
import type { Peer } from "./peer.ts";
import type { PdClient } from "../proto/pd_client.ts";
import type { Store } from "./store.ts";
import { successor } from "./snapshot.ts";

const SCAN_PAGE = 1000;

/** What a size scan found. */
export interface SizeScan {
  readonly size: number;
  readonly keys: number;
  /** Key where the running size first passes `at` (undefined if it never does). */
  readonly keyAt?: Uint8Array;
}

/** Scans a region's range, summing sizes and finding the key where the total passes `at`. */
export async function scanRegionSize(store: Store, peer: Peer, at: number): Promise<SizeScan> {
  const region = peer.region;
  const end = region.endKey.length === 0 ? undefined : region.endKey;
  let start = region.startKey;
  let size = 0;
  let keys = 0;
  let keyAt: Uint8Array | undefined;
  for (;;) {
    const page = await store.engine.scan(start, end, SCAN_PAGE);
    for (const { key, value } of page) {
      size += key.length + value.length;
      keys++;
      if (keyAt === undefined && size > at && compareBytes(key, region.startKey) > 0) keyAt = key;
    }
    if (page.length < SCAN_PAGE) break;
    start = successor(page[page.length - 1]!.key);
  }
  return { size, keys, keyAt };
}

/** Periodic split checks for one store's leaders. */
export class SplitWorker {
  #timer: ReturnType<typeof setInterval> | undefined;
  #running = false;
  /** The round in progress, so that stopping can wait for it before the engine closes. */
  #round: Promise<void> = Promise.resolve();
  /** Splits proposed, for metrics and tests. */
  splitsProposed = 0;
  /** Leaders measured since they led: an empty region is not scanned again until written. */
  readonly #measured = new WeakSet<Peer>();

  constructor(readonly store: Store, readonly client: PdClient) {}

  start(): void {
    this.#timer = setInterval(() => {
      if (this.#running) return; // the round in progress stays the one stop() waits for
      this.#round = this.checkAll().catch((e) => {
        if (!this.store.stopped) {
          this.store.log.warn(
            `store ${this.store.storeId}: split check failed: ${(e as Error).message}`,
          );
        }
      });
    }, this.store.config.splitCheckMs);
  }

  /** Stops the timer; resolves once a round in progress has ended (its scans read the engine). */
  stop(): Promise<void> {
    clearInterval(this.#timer);
    return this.#round;
  }

  /** One round over every led region. */
  async checkAll(): Promise<void> {
    if (this.#running || this.store.stopped) return;
    this.#running = true;
    try {
      const { regionMaxSize, regionSplitSize } = this.store.config;
      for (const peer of [...this.store.peers.values()]) {
        if (this.store.stopped) break;
        if (!peer.isLeader() || peer.destroyed || !peer.storage.isInitialized()) continue;
        const grew = peer.sizeDiffHint >= regionSplitSize / 8;
        const shrank = peer.deletesSinceScan > 0 &&
          peer.deletesSinceScan * 8 >= peer.approximateKeys;
        // A region measured empty stays 0 bytes: it is not measured again until it grows.
        const known = peer.approximateSize > 0 || this.#measured.has(peer);
        if (known && !grew && !shrank) continue;
        peer.sizeDiffHint = 0;
        peer.deletesSinceScan = 0;
        const scan = await scanRegionSize(this.store, peer, regionSplitSize);
        this.#measured.add(peer);
        peer.approximateSize = scan.size;
        peer.approximateKeys = scan.keys;
        if (scan.size > regionMaxSize && scan.keyAt) {
          await this.splitRegion(peer, scan.keyAt).catch((e) => {
            this.store.log.info(`region ${peer.regionId}: split not done: ${(e as Error).message}`);
          });
        }
      }
    } finally {
      this.#running = false;
    }
  }

  /** Splits a region at `splitKey`, or at its size midpoint when omitted. Resolves once applied. */
  async splitRegion(peer: Peer, splitKey?: Uint8Array): Promise<void> {
    peer.checkLeader();
    if (!splitKey) {
      const whole = await scanRegionSize(this.store, peer, Number.MAX_SAFE_INTEGER);
      splitKey = (await scanRegionSize(this.store, peer, whole.size / 2)).keyAt;
      if (!splitKey) {
        throw new MrkvError("BadRequest", `region ${peer.regionId} is too small to split`);
      }
    }
    const region = peer.region;
    if (!keyInRegion(splitKey, region) || compareBytes(splitKey, region.startKey) === 0) {
      throw new MrkvError("KeyNotInRegion", `split key is not strictly inside region ${region.id}`);
    }
    const { ids } = await this.client.askBatchSplit(region, 1);
    const id = ids[0]!;
    const p = peer.propose({
      header: { regionId: region.id, peerId: peer.meta.id, epoch: region.epoch },
      admin: { type: "Split", splitKey, newRegionId: id.newRegionId, newPeerIds: id.newPeerIds },
    });
    this.store.schedule(peer);
    this.splitsProposed++;
    await p;
  }
}
