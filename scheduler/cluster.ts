/**
 * The cluster (PD's `RaftCluster`): bootstrap, IDs, the store registry and the region map, and
 * the handlers the internal API calls (`handleRegionHeartbeat`, `handleStoreHeartbeat`,
 * `askBatchSplit`, ...). Heartbeat handling is synchronous: JavaScript runs one handler at a
 * time, so a batch of heartbeats is admitted atomically with respect to every other request.
 *
 * @module
 */
import { MrkvError } from "../proto/errors.ts";
import {
  compareBytes,
  compareEndKeys,
  type Region,
  type Store,
  storeHasFeature,
} from "../proto/metapb.ts";
import {
  type BootstrapResponse,
  type RegionHeartbeat,
  type RegionHeartbeatResult,
  type SplitId,
  storeRemovedError,
  type StoreStats,
} from "../proto/pdpb.ts";
import { applyConfigJson, type ScheduleConfig } from "./config.ts";
import { IdAllocator } from "./id_allocator.ts";
import { OperatorController } from "./operator/controller.ts";
import { HotStats } from "./hot_stats.ts";
import {
  metaChanged,
  type RegionInfo,
  regionInfoFromHeartbeat,
  regionInfoFromMeta,
} from "./region_info.ts";
import type { HealthContext } from "./region_health.ts";
import { RegionsInfo } from "./regions_info.ts";
import { StepOutbox } from "./step_push.ts";
import type { Operator } from "./operator/operator.ts";
import { ClusterStorage, RegionSaver, type SavedStore } from "./storage.ts";
import {
  isTargetState,
  type StoreInfo,
  type StoreMetaState,
  type StoreStateName,
  storeStateName,
  transitionStore,
} from "./store_info.ts";

/** How a {@link Cluster} is built. */
export interface ClusterOptions {
  readonly config: ScheduleConfig;
  /** The clock, in ms (injected so tests can move time). */
  readonly now?: () => number;
  /** Region write-behind interval. */
  readonly saveIntervalMs?: number;
  readonly onError?: (e: unknown) => void;
}

/** Counters for `/metrics`. */
export interface ClusterCounters {
  regionHeartbeats: number;
  staleHeartbeats: number;
  regionsChanged: number;
  storeHeartbeats: number;
  /** Operator steps leaders reported refusing. */
  refusedSteps: number;
}

/** The cluster map and the handlers that change it. */
export class Cluster {
  readonly regions = new RegionsInfo();
  readonly operators = new OperatorController();
  /** Operator steps waiting for their leader stores' polls (step_push.ts). */
  readonly outbox = new StepOutbox();
  /** Read and write rates from region heartbeats (hot regions). */
  readonly hot = new HotStats();
  readonly counters: ClusterCounters = {
    regionHeartbeats: 0,
    staleHeartbeats: 0,
    regionsChanged: 0,
    storeHeartbeats: 0,
    refusedSteps: 0,
  };
  readonly #stores = new Map<number, StoreInfo>();
  readonly #saver: RegionSaver;
  #bootstrapped: boolean;
  #bootstrapping: Promise<unknown> = Promise.resolve();
  config: ScheduleConfig;
  readonly now: () => number;
  /** When this scheduler started (the merge checker counts it as a split of every region). */
  readonly startedAt: number;
  /** When each region was last seen to split (see {@link sinceSplit}). */
  readonly #lastSplit = new Map<number, number>();

  private constructor(
    readonly storage: ClusterStorage,
    readonly ids: IdAllocator,
    readonly clusterId: number,
    bootstrapped: boolean,
    opts: ClusterOptions,
  ) {
    this.#bootstrapped = bootstrapped;
    this.config = { ...opts.config };
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
    this.#saver = new RegionSaver(storage, opts.saveIntervalMs ?? 100, opts.onError);
    // Once the code that added it has finished (it may still be answering its caller).
    this.operators.onAdded = (op) => queueMicrotask(() => this.#pushFirstStep(op));
  }

  /**
   * Hands a new operator's first step to its region's leader store now, rather than with the
   * region's next heartbeat (step_push.ts).
   */
  #pushFirstStep(op: Operator): void {
    if (this.operators.get(op.regionId) !== op) return;
    const region = this.regions.getRegion(op.regionId);
    if (!region?.leader) return;
    const step = this.operators.dispatch(region, this.now());
    if (!step) return;
    this.outbox.push(region.leader.storeId, {
      regionId: op.regionId,
      step,
      epoch: region.meta.epoch,
    });
  }

  /** Opens the cluster stored in `kv`, loading stores and regions. */
  static async open(
    kv: Deno.Kv,
    opts: ClusterOptions,
  ): Promise<{ cluster: Cluster; schedulers: string[] | null }> {
    const storage = new ClusterStorage(kv);
    const loaded = await storage.load();
    const ids = await IdAllocator.open(kv);
    const c = new Cluster(storage, ids, loaded.clusterId, loaded.bootstrapped, opts);
    const now = c.now();
    for (const s of loaded.stores) {
      c.#stores.set(s.id, {
        meta: { id: s.id, address: s.address, ...(s.features && { features: s.features }) },
        state: s.state,
        lastHeartbeat: now,
        heartbeatSeen: false,
        stats: null,
      });
    }
    for (const r of loaded.regions) {
      // Saved regions may overlap if the scheduler stopped between two write-behind commits:
      // the newer epoch wins and the other record is dropped.
      try {
        const { overlaps } = c.regions.putRegion(regionInfoFromMeta(r.region, r.leader));
        for (const o of overlaps) c.#saver.delete(o.meta.id);
      } catch {
        c.#saver.delete(r.region.id);
      }
    }
    if (loaded.config !== undefined) {
      try {
        c.config = applyConfigJson(c.config, loaded.config);
      } catch {
        // A config saved by an incompatible version: keep the defaults.
      }
    }
    return { cluster: c, schedulers: loaded.schedulers };
  }

  /** True once a store has bootstrapped the cluster. */
  get bootstrapped(): boolean {
    return this.#bootstrapped;
  }

  /** Ends stores' polls, writes queued region changes and stops the write-behind timer. */
  close(): Promise<void> {
    this.outbox.close();
    return this.#saver.close();
  }

  // ---- bootstrap and IDs ---------------------------------------------------------------------

  /** Creates region 1 = `["", "")` with one peer on `store`. Refused once bootstrapped. */
  bootstrap(store: Store): Promise<BootstrapResponse> {
    const run = this.#bootstrapping.then(async () => {
      if (this.#bootstrapped) throw alreadyBootstrapped(this.clusterId);
      this.#checkAddress(store);
      const peerId = await this.ids.alloc(1);
      const region: Region = {
        id: 1,
        startKey: new Uint8Array(),
        endKey: new Uint8Array(),
        epoch: { confVer: 1, version: 1 },
        peers: [{ id: peerId, storeId: store.id, role: "Voter" }],
      };
      const saved: SavedStore = { ...store, state: "Up" };
      if (!(await this.storage.bootstrap(saved, region))) throw alreadyBootstrapped(this.clusterId);
      this.#bootstrapped = true;
      this.#stores.set(store.id, this.#freshStore(store, this.#stores.get(store.id)));
      this.regions.putRegion(regionInfoFromMeta(region));
      return { clusterId: this.clusterId, region };
    });
    this.#bootstrapping = run.catch(() => {});
    return run;
  }

  /** Returns the first of `count` fresh IDs. */
  allocIds(count: number): Promise<number> {
    return this.ids.alloc(count);
  }

  // ---- stores --------------------------------------------------------------------------------

  #freshStore(meta: Store, old: StoreInfo | undefined): StoreInfo {
    return {
      meta,
      state: old?.state ?? "Up",
      lastHeartbeat: this.now(),
      heartbeatSeen: old?.heartbeatSeen ?? false,
      stats: old?.stats ?? null,
    };
  }

  #checkAddress(store: Store): void {
    for (const s of this.#stores.values()) {
      if (s.meta.id !== store.id && s.state !== "Tombstone" && s.meta.address === store.address) {
        throw new MrkvError(
          "BadRequest",
          `address ${store.address} is already used by store ${s.meta.id}`,
        );
      }
    }
  }

  /** Registers a store, or updates its address after a restart. */
  async putStore(store: Store): Promise<void> {
    const old = this.#stores.get(store.id);
    if (old?.state === "Tombstone") throw storeRemovedError(store.id);
    this.#checkAddress(store);
    const info = this.#freshStore(store, old);
    await this.storage.saveStore({ ...store, state: info.state });
    this.#stores.set(store.id, { ...info, lastHeartbeat: this.now() });
  }

  /**
   * Records a store heartbeat, and when most live stores report a store it lists as
   * unreachable (see {@link stateName}).
   */
  handleStoreHeartbeat(stats: StoreStats): void {
    const s = this.getStore(stats.storeId);
    if (s.state === "Tombstone") throw storeRemovedError(stats.storeId);
    this.counters.storeHeartbeats++;
    const now = this.now();
    this.#stores.set(s.meta.id, { ...s, lastHeartbeat: now, heartbeatSeen: true, stats });
    for (const id of stats.unreachableStores ?? []) {
      if (this.#mostCannotReach(id, now)) this.#cannotReachSeen.set(id, now);
    }
  }

  /** A registered store, or `StoreNotFound`. */
  getStore(id: number): StoreInfo {
    const s = this.#stores.get(id);
    if (!s) throw new MrkvError("StoreNotFound", `store ${id} is not registered`);
    return s;
  }

  /** Every registered store, by ID. */
  stores(): StoreInfo[] {
    return [...this.#stores.values()].sort((a, b) => a.meta.id - b.meta.id);
  }

  /**
   * Whether every registered store (but tombstones) has `feature`: a feature that needs every
   * replica's cooperation is used only once the whole cluster runs a version with it.
   */
  supports(feature: string): boolean {
    const live = this.stores().filter((s) => s.state !== "Tombstone");
    return live.length > 0 && live.every((s) => storeHasFeature(s.meta, feature));
  }

  /**
   * A store's state name now. Besides silence (store_info.ts), an Up store that most other
   * live stores report they cannot reach is Disconnected: a killed process refuses
   * connections at once, long before it misses enough heartbeats.
   */
  stateName(s: StoreInfo): StoreStateName {
    const now = this.now();
    const name = storeStateName(s, now, this.config);
    if (name !== "Up") return name;
    if (this.#mostCannotReach(s.meta.id, now)) return "Disconnected";
    // The reports fade when the others stop trying (their regions with it fall asleep), long
    // before silence makes it Disconnected: it stays so until it heartbeats again itself, or a
    // dead store would be an operator target again in between.
    const seen = this.#cannotReachSeen.get(s.meta.id);
    return seen !== undefined && seen >= s.lastHeartbeat ? "Disconnected" : name;
  }

  /**
   * When most live stores last reported a store unreachable, by store ID: noted as their
   * heartbeats arrive (a majority can only form when a reporter lists the store, or stay while
   * the reporters left keep listing it).
   */
  readonly #cannotReachSeen = new Map<number, number>();

  /** Whether most stores that heartbeat lately list store `id` as unreachable. */
  #mostCannotReach(id: number, now: number): boolean {
    let reporters = 0;
    let unreachable = 0;
    for (const o of this.#stores.values()) {
      if (o.meta.id === id || o.state !== "Up" || !o.heartbeatSeen) continue;
      if (now - o.lastHeartbeat > this.config.storeDisconnectTime) continue;
      reporters++;
      if (o.stats?.unreachableStores?.includes(id)) unreachable++;
    }
    return unreachable > 0 && 2 * unreachable > reporters;
  }

  /**
   * Why store `id` may not receive a new peer or leadership now (its state name), or undefined
   * if it may: only `Up` stores are targets.
   */
  readonly unusableTarget = (id: number): string | undefined => {
    const s = this.#stores.get(id);
    if (!s) return "not registered";
    const name = this.stateName(s);
    return isTargetState(name) ? undefined : name;
  };

  /** What region health checks read (`region_health.ts`). */
  healthContext(): HealthContext {
    return {
      maxReplicas: this.config.maxReplicas,
      stateOf: (id) => {
        const s = this.#stores.get(id);
        return s && this.stateName(s);
      },
    };
  }

  /** Changes a store's persisted state along the transition table. */
  async setStoreState(id: number, to: StoreMetaState): Promise<StoreInfo> {
    const s = transitionStore(this.getStore(id), to);
    if (to === "Tombstone" && this.regions.storeStats(id).regionCount > 0) {
      throw new MrkvError("BadRequest", `store ${id} still holds regions`);
    }
    await this.storage.saveStore({ ...s.meta, state: s.state });
    this.#stores.set(id, s);
    return s;
  }

  // ---- regions -------------------------------------------------------------------------------

  /**
   * Admits one region heartbeat (throws `EpochNotMatch` if stale) and returns the step its
   * leader should carry out, if any.
   */
  handleRegionHeartbeat(hb: RegionHeartbeat): RegionHeartbeatResult {
    this.counters.regionHeartbeats++;
    const info = regionInfoFromHeartbeat(hb);
    const origin = this.regions.getRegion(info.meta.id);
    let result;
    try {
      result = this.regions.putRegion(info);
    } catch (e) {
      if (e instanceof MrkvError) this.counters.staleHeartbeats++;
      throw e;
    }
    const now = this.now();
    if (hb.flow) this.hot.update(info.meta.id, hb.flow, now, info.meta.epoch.version);
    if (result.changed) {
      this.counters.regionsChanged++;
      // A split: a region seen for the first time (the other half of a split), or one whose
      // range shrank. A merge only grows the target.
      if (!origin || regionShrank(origin.meta, info.meta)) {
        this.#lastSplit.set(info.meta.id, this.now());
      }
      for (const o of result.overlaps) this.#lastSplit.delete(o.meta.id);
      for (const o of result.overlaps) this.#saver.delete(o.meta.id);
      for (const o of result.overlaps) this.hot.remove(o.meta.id);
      if (result.overlaps.length > 0) {
        this.operators.onRegionsOverlapped(result.overlaps, info, now);
      }
      if (!origin || metaChanged(origin.meta, info.meta) || origin.leader?.id !== info.leader?.id) {
        this.#saver.save({ region: info.meta, leader: info.leader });
      }
    }
    if (hb.refusedStep) {
      this.counters.refusedSteps++;
      this.operators.onStepRefused(info.meta.id, hb.refusedStep.type, hb.refusedStep.reason, now);
    }
    const current = this.regions.getRegion(info.meta.id)!;
    const step = this.operators.dispatch(current, now, this.unusableTarget);
    return step
      ? { regionId: info.meta.id, step, epoch: current.meta.epoch }
      : { regionId: info.meta.id };
  }

  /**
   * Admits a batch. Returns results only for heartbeats that were refused (a stale one fails
   * alone) or carry an operator step, in request order.
   */
  handleRegionHeartbeats(hbs: readonly RegionHeartbeat[]): RegionHeartbeatResult[] {
    const out: RegionHeartbeatResult[] = [];
    for (const hb of hbs) {
      try {
        const r = this.handleRegionHeartbeat(hb);
        if (r.step) out.push(r);
      } catch (e) {
        if (!(e instanceof MrkvError)) throw e;
        out.push({ regionId: hb.region.id, error: { code: e.code, message: e.message } });
      }
    }
    return out;
  }

  /** IDs for `count` new regions split out of `region`: a region ID plus one per peer. */
  async askBatchSplit(region: Region, count: number): Promise<SplitId[]> {
    if (region.peers.length === 0) {
      throw new MrkvError("BadRequest", `region ${region.id} has no peers to split`);
    }
    const per = 1 + region.peers.length;
    let next = await this.ids.alloc(count * per);
    const out: SplitId[] = [];
    for (let i = 0; i < count; i++) {
      out.push({
        newRegionId: next,
        newPeerIds: region.peers.map((_, j) => next + 1 + j),
      });
      next += per;
    }
    return out;
  }

  /**
   * ms since region `id` was last seen to split, the scheduler's start counting as a split of
   * every region (it cannot know what split before).
   */
  sinceSplit(id: number): number {
    return this.now() - Math.max(this.startedAt, this.#lastSplit.get(id) ?? 0);
  }

  /** Forgets split times older than `ms` (they no longer hold a merge back). */
  forgetSplitsBefore(ms: number): void {
    const horizon = this.now() - ms;
    for (const [id, at] of this.#lastSplit) if (at < horizon) this.#lastSplit.delete(id);
  }

  /** A region by ID, or `RegionNotFound`. */
  getRegion(id: number): RegionInfo {
    const r = this.regions.getRegion(id);
    if (!r) throw new MrkvError("RegionNotFound", `region ${id} is not known`);
    return r;
  }

  /** The region holding `key`, or `RegionNotFound`. */
  getRegionByKey(key: Uint8Array): RegionInfo {
    const r = this.regions.getRegionByKey(key);
    if (!r) {
      throw new MrkvError(
        "RegionNotFound",
        "no known region holds the key (a split may still be reporting)",
      );
    }
    return r;
  }
}

/** True if `after`'s range lost keys `before` had (a split took part of it away). */
function regionShrank(before: Region, after: Region): boolean {
  return compareBytes(after.startKey, before.startKey) > 0 ||
    compareEndKeys(after.endKey, before.endKey) < 0;
}

function alreadyBootstrapped(clusterId: number): MrkvError {
  return new MrkvError("BadRequest", `cluster ${clusterId} is already bootstrapped`, {
    already_bootstrapped: true,
  });
}
