/**
 * Region split: driven by size, or by the scheduler's `SplitRegion` step.
 *
 * Every `split-check-ms` each leader whose region grew by at least an eighth of
 * `region-split-size` since its last check, or lost at least an eighth of its keys to deletes
 * (so the scheduler sees it shrink and can merge it), or was never checked, scans its range,
 * adding up key and value sizes. That total becomes the approximate size reported to the scheduler; past
 * `region-max-size` the first key at which the running total passes `region-split-size` becomes
 * the split key. A `SplitRegion` step names its keys, or none for the size midpoint.
 *
 * Either way the leader asks the scheduler for IDs once (a region ID and one peer ID per peer
 * for each new region) and proposes one Split admin command with every key, which apply checks
 * against the region epoch (so a stale split fails cleanly). At most one split per region is
 * in flight: a step repeated by overlapping heartbeat answers joins the one under way instead
 * of asking for IDs again, and IDs asked for at one region version are kept for a retry at that
 * version (see `#idsFor`: they are never used twice).
 *
 * The new regions' leader campaigns on the old leader's store as soon as the split is applied
 * there, which is usually before the other stores have applied it. Their peers do not exist
 * yet, so {@link EarlyVotes} holds such vote requests until the split creates the peer.
 *
 * @module
 */
import { MrkvError } from "../proto/errors.ts";
import { bytesEqual, compareBytes, keyInRegion } from "../proto/metapb.ts";
import type { SplitId } from "../proto/pdpb.ts";
import type { Message } from "../raft/mod.ts";
import type { Peer } from "./peer.ts";
import type { PdClient } from "../proto/pd_client.ts";
import type { Store } from "./store.ts";
import type { RaftEnvelope } from "./transport.ts";
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

/** Periodic split checks for one store's leaders, and the splits they and the scheduler ask for. */
export class SplitWorker {
  #timer: ReturnType<typeof setInterval> | undefined;
  #running = false;
  /** The round in progress, so that stopping can wait for it before the engine closes. */
  #round: Promise<void> = Promise.resolve();
  /** The split in flight per region (at most one). */
  readonly #inFlight = new Map<number, Promise<void>>();
  /** IDs obtained per region for a split at one version, kept for a retry at that version. */
  readonly #ids = new Map<number, { version: number; ids: readonly SplitId[] }>();
  /** Split commands proposed and ID requests made, for metrics and tests. */
  splitsProposed = 0;
  idRequests = 0;
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
        if (this.#inFlight.has(peer.regionId)) continue;
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
          await this.splitRegion(peer, [scan.keyAt]).catch((e) => {
            this.store.log.info(`region ${peer.regionId}: split not done: ${(e as Error).message}`);
          });
        }
      }
    } finally {
      this.#running = false;
    }
  }

  /** Whether a split of `regionId` is under way. */
  isSplitting(regionId: number): boolean {
    return this.#inFlight.has(regionId);
  }

  /**
   * Splits a region at every one of `keys` in one command, or at its size midpoint when none
   * are given. Resolves once applied. While a split of the region is in flight, another call
   * joins it rather than starting a second one. Throws `BadRequest` if the region has no key
   * to split at and `KeyNotInRegion` for a key outside it (neither can succeed on a retry).
   */
  splitRegion(peer: Peer, keys: readonly Uint8Array[] = []): Promise<void> {
    const running = this.#inFlight.get(peer.regionId);
    if (running) return running;
    const run = this.#split(peer, keys).finally(() => this.#inFlight.delete(peer.regionId));
    this.#inFlight.set(peer.regionId, run);
    return run;
  }

  async #split(peer: Peer, requested: readonly Uint8Array[]): Promise<void> {
    peer.checkLeader();
    let keys = [...requested].sort(compareBytes)
      .filter((k, i, all) => i === 0 || !bytesEqual(k, all[i - 1]!));
    if (keys.length === 0) {
      const whole = await scanRegionSize(this.store, peer, Number.MAX_SAFE_INTEGER);
      const mid = (await scanRegionSize(this.store, peer, whole.size / 2)).keyAt;
      if (!mid) {
        throw new MrkvError(
          "BadRequest",
          `region ${peer.regionId} is too small to split (${whole.keys} keys, ${whole.size} bytes)`,
        );
      }
      keys = [mid];
    }
    const region = peer.region;
    for (const k of keys) {
      if (!keyInRegion(k, region) || compareBytes(k, region.startKey) === 0) {
        throw new MrkvError(
          "KeyNotInRegion",
          `split key is not strictly inside region ${region.id}`,
        );
      }
    }
    const ids = await this.#idsFor(peer, keys.length);
    peer.checkLeader();
    const p = peer.propose({
      header: { regionId: region.id, peerId: peer.meta.id, epoch: region.epoch },
      admin: {
        type: "Split",
        splits: keys.map((splitKey, i) => ({
          splitKey,
          newRegionId: ids[i]!.newRegionId,
          newPeerIds: ids[i]!.newPeerIds,
        })),
      },
    });
    this.store.schedule(peer);
    this.splitsProposed++;
    await p;
    this.#ids.delete(region.id);
  }

  /**
   * IDs for `count` new regions of `peer`'s region, asked for once per version. A failed split
   * leaves them unused unless it applied, and a split that applied bumps the version: a Split
   * command carrying them that is still in the log fails the epoch check at apply once the
   * region has changed. So a retry at the same version (after a membership change or a lost
   * leadership) may reuse them.
   */
  async #idsFor(peer: Peer, count: number): Promise<readonly SplitId[]> {
    const region = peer.region;
    const kept = this.#ids.get(region.id);
    if (
      kept && kept.version === region.epoch.version && kept.ids.length >= count &&
      kept.ids.every((id) => id.newPeerIds.length === region.peers.length)
    ) {
      return kept.ids;
    }
    this.idRequests++;
    const { ids } = await this.client.askBatchSplit(region, count);
    if (ids.length !== count || ids.some((id) => id.newPeerIds.length !== region.peers.length)) {
      throw new MrkvError(
        "Timeout",
        `the scheduler answered ${ids.length} split IDs for ${count} new regions of region ${region.id}`,
      );
    }
    if (peer.region.epoch.version === region.epoch.version) {
      this.#ids.set(region.id, { version: region.epoch.version, ids });
    }
    return ids;
  }
}

/** Whether `m` asks for a vote (or a pre-vote). */
export function isVoteRequest(m: Message): boolean {
  return m.type === "MsgVote" || m.type === "MsgPreVote";
}

/** How many held vote requests a store keeps at most (the oldest go first). */
const EARLY_VOTES_CAP = 256;

/**
 * Vote requests for regions a split creates on this store once it applies the split (TiKV
 * keeps such "pending messages" too). Replaying one later is safe: to Raft it is a delayed
 * message. Bounded, so a split that never applies here costs nothing lasting.
 */
export class EarlyVotes {
  #held: RaftEnvelope[] = [];
  /** Requests handed to a new peer so far, for tests. */
  replayed = 0;

  /** Keeps `env`, replacing an older request from the same peer for the same region. */
  hold(env: RaftEnvelope): void {
    this.#held = this.#held.filter((h) =>
      h.regionId !== env.regionId || h.fromPeer.id !== env.fromPeer.id
    );
    this.#held.push(env);
    if (this.#held.length > EARLY_VOTES_CAP) this.#held.shift();
  }

  /** Removes and returns the held requests for peer `peerId` of region `regionId`. */
  take(regionId: number, peerId: number): RaftEnvelope[] {
    const out = this.#held.filter((h) => h.regionId === regionId && h.toPeer.id === peerId);
    if (out.length > 0) this.#held = this.#held.filter((h) => !out.includes(h));
    this.replayed += out.length;
    return out;
  }

  /** Requests held now, for tests. */
  get size(): number {
    return this.#held.length;
  }
}
