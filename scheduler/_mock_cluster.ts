/**
 * The mock-cluster builder for checker and scheduler tests (after PD's `mockcluster`): stores
 * with synthetic statistics (`addRegionStore(id, n)` means n regions of size 10), regions with
 * fresh peer IDs (`addLeaderRegion(id, leaderStore, ...followerStores)`, size 10 MiB), and the
 * knobs the 3C tests turn (offline, down, pending). It implements {@link ClusterView}
 * directly, so tests call `schedule(mock)` and assert on the operator returned.
 *
 * @module
 */
import type { Peer } from "../proto/metapb.ts";
import type { BuildContext } from "./operator/builder.ts";
import type { RegionInfo } from "./region_info.ts";
import type { ClusterView, HotRegionView, RegionRole, StoreView } from "./schedulers/view.ts";
import type { RegionRates } from "./hot_stats.ts";
import { isTargetState, type StoreMetaState, storeStateName } from "./store_info.ts";

/** A seeded PRNG (mulberry32), so runs replay. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface MockStore {
  id: number;
  state: StoreMetaState;
  lastHeartbeat: number;
  regionCount: number;
  regionSize: number;
  leaderCount: number;
}

/** A cluster view built by hand. */
export class MockCluster implements ClusterView {
  maxReplicas = 3;
  maxStoreDownTime = 30 * 60_000;
  storeDisconnectTime = 3_000;
  readonly now = 1_700_000_000_000;
  readonly random: () => number;
  readonly #stores = new Map<number, MockStore>();
  readonly #regions = new Map<number, RegionInfo>();
  readonly #ops = new Set<number>();
  readonly #movedFrom = new Map<number, Set<number>>();
  readonly #hot = new Map<number, RegionRates>();
  readonly #lastOperator = new Map<number, number>();
  #nextPeerId = 1000;
  readonly build: BuildContext;

  constructor(seed = 1) {
    this.random = seededRandom(seed);
    this.build = {
      now: this.now,
      allocPeerId: () => this.#nextPeerId++,
      unusableTarget: (id) => {
        const s = this.store(id);
        if (!s) return "not registered";
        return isTargetState(s.stateName) ? undefined : s.stateName;
      },
    };
  }

  /** A store in state Up, heard from now, with `count` regions of size 10. */
  addRegionStore(id: number, count: number): this {
    this.#stores.set(id, {
      id,
      state: "Up",
      lastHeartbeat: this.now,
      regionCount: count,
      regionSize: 10 * count,
      leaderCount: 0,
    });
    return this;
  }

  /** A store with `leaders` leaders (and as many regions). */
  addLeaderStore(id: number, leaders: number): this {
    this.addRegionStore(id, leaders);
    this.#stores.get(id)!.leaderCount = leaders;
    return this;
  }

  /** Sets a store's region count (and size 10 per region). */
  updateRegionCount(id: number, count: number): this {
    const s = this.#stores.get(id)!;
    s.regionCount = count;
    s.regionSize = 10 * count;
    return this;
  }

  /** Sets a store's leader count. */
  updateLeaderCount(id: number, count: number): this {
    this.#stores.get(id)!.leaderCount = count;
    return this;
  }

  setStoreOffline(id: number): this {
    this.#stores.get(id)!.state = "Offline";
    return this;
  }

  /** Keeps the state Up but makes the store miss heartbeats just past the disconnect time. */
  setStoreDisconnected(id: number): this {
    this.#stores.get(id)!.lastHeartbeat = this.now - this.storeDisconnectTime - 1;
    return this;
  }

  /** Keeps the state Up but makes the last heartbeat ancient (3C's SetStoreDown). */
  setStoreDown(id: number): this {
    this.#stores.get(id)!.lastHeartbeat = 0;
    return this;
  }

  /** Creates or replaces a region of size 10 MiB with the leader on the first store. */
  addLeaderRegion(regionId: number, leaderStore: number, ...followerStores: number[]): this {
    const peers: Peer[] = [leaderStore, ...followerStores].map((storeId) => ({
      id: this.#nextPeerId++,
      storeId,
      role: "Voter",
    }));
    this.#regions.set(regionId, {
      meta: {
        id: regionId,
        startKey: new Uint8Array([regionId]),
        endKey: new Uint8Array([regionId + 1]),
        epoch: { confVer: 1, version: 1 },
        peers,
      },
      leader: peers[0]!,
      pendingPeers: [],
      downPeers: [],
      approximateSize: 10,
      approximateSizeBytes: 10 << 20,
      approximateKeys: 1000,
    });
    return this;
  }

  /** Replaces a region wholesale. */
  putRegion(r: RegionInfo): this {
    this.#regions.set(r.meta.id, r);
    return this;
  }

  /** Marks a region's peer on `storeId` pending. */
  setPending(regionId: number, storeId: number): this {
    const r = this.#regions.get(regionId)!;
    const p = r.meta.peers.find((x) => x.storeId === storeId)!;
    this.#regions.set(regionId, { ...r, pendingPeers: [...r.pendingPeers, p] });
    return this;
  }

  /** Pretends a region has a running operator. */
  setOperator(regionId: number): this {
    this.#ops.add(regionId);
    return this;
  }

  stores(): readonly StoreView[] {
    return [...this.#stores.values()].filter((s) => s.state !== "Tombstone").map((s) => ({
      id: s.id,
      stateName: storeStateName(
        {
          meta: { id: s.id, address: "" },
          state: s.state,
          lastHeartbeat: s.lastHeartbeat,
          heartbeatSeen: true,
          stats: null,
        },
        this.now,
        this,
      ),
      regionSize: s.regionSize,
      regionCount: s.regionCount,
      leaderCount: s.leaderCount,
    }));
  }
  store(id: number): StoreView | undefined {
    return this.stores().find((s) => s.id === id);
  }
  region(id: number): RegionInfo | undefined {
    return this.#regions.get(id);
  }
  /** The stores whose region lists were read, in order (how much a scheduler looked at). */
  readonly regionListsRead: number[] = [];
  regionIdsOn(storeId: number, role: RegionRole): readonly number[] {
    this.regionListsRead.push(storeId);
    const out: number[] = [];
    for (const r of this.#regions.values()) {
      const p = r.meta.peers.find((x) => x.storeId === storeId);
      if (!p) continue;
      const isLeader = r.leader?.id === p.id;
      if (
        role === "leader"
          ? isLeader
          : role === "follower"
          ? !isLeader
          : r.pendingPeers.some((x) => x.id === p.id)
      ) {
        out.push(r.meta.id);
      }
    }
    return out;
  }
  hasOperator(regionId: number): boolean {
    return this.#ops.has(regionId);
  }
  hotRegions(): readonly HotRegionView[] {
    const out: HotRegionView[] = [];
    for (const [id, rates] of this.#hot) {
      const region = this.#regions.get(id);
      if (!region) continue;
      out.push({
        region,
        rates,
        leaderStoreId: region.leader?.storeId,
        storeIds: region.meta.peers.map((p) => p.storeId),
      });
    }
    return out;
  }
  /**
   * Gives a region traffic: `write` and `read` bytes/s (keys/s a hundredth of them), reported
   * hot `degree` times in a row, over reports covering `spanMs`.
   */
  setHot(regionId: number, write: number, read = 0, degree = 3, spanMs = 5_000): this {
    this.#hot.set(regionId, {
      writeBytesPerSec: write,
      readBytesPerSec: read,
      writeKeysPerSec: write / 100,
      readKeysPerSec: read / 100,
      at: this.now,
      degree,
      version: 1,
      intervalMs: 60_000,
      spanMs,
    });
    return this;
  }
  sinceLastOperator(regionId: number): number | undefined {
    const at = this.#lastOperator.get(regionId);
    return at === undefined ? undefined : this.now - at;
  }
  /** Records that an operator on the region finished `agoMs` ago. */
  setLastOperator(regionId: number, agoMs: number): this {
    this.#lastOperator.set(regionId, this.now - agoMs);
    return this;
  }
  movedFrom(regionId: number): ReadonlySet<number> {
    return this.#movedFrom.get(regionId) ?? new Set();
  }
  /** Records that balance-region moved a peer of the region off `storeId`. */
  setMovedFrom(regionId: number, storeId: number): this {
    if (!this.#movedFrom.has(regionId)) this.#movedFrom.set(regionId, new Set());
    this.#movedFrom.get(regionId)!.add(storeId);
    return this;
  }
}

/** Store stats with nothing in them: a heartbeat that only says the store is alive. */
export function emptyStoreStats(storeId: number) {
  return {
    storeId,
    capacity: 0,
    available: 0,
    usedSize: 0,
    regionCount: 0,
    leaderCount: 0,
    sendingSnapCount: 0,
    receivingSnapCount: 0,
    isBusy: false,
  };
}
