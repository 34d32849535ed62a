/**
 * The coordinator (PD's `coordinator.go`): every `schedule-interval-ms` it times out stale
 * operators, retires drained Offline stores, runs the replica checker over the regions and
 * each running scheduler, and hands their operators to the controller (within the schedule
 * limits). Schedulers read a {@link LiveView}: the cluster map plus the influence of running
 * operators, so they do not pile several moves onto one store.
 *
 * @module
 */
import { MrkvError } from "../proto/errors.ts";
import { FEATURE_JOINT_CONSENSUS, FEATURE_MERGE } from "../proto/metapb.ts";
import type { Cluster } from "./cluster.ts";
import type { ScheduleConfig } from "./config.ts";
import type { BuildContext } from "./operator/builder.ts";
import { KIND_PRIORITY, type Operator, type OperatorKind } from "./operator/operator.ts";
import type { RegionInfo } from "./region_info.ts";
import { checkLostReplicas, checkReplicas } from "./schedulers/replica_checker.ts";
import { checkMerge, type MergeView } from "./schedulers/merge_checker.ts";
import { DEFAULT_SCHEDULERS, SCHEDULER_FACTORIES } from "./schedulers/mod.ts";
import type {
  ClusterView,
  HotRegionView,
  RegionRole,
  Scheduler,
  StoreView,
} from "./schedulers/view.ts";

/**
 * The replica and merge checkers visit each region about once per this many ms: a run visits
 * the share of the map that keeps that pace (a cursor walks the whole map over runs), and at
 * least {@link PATROL_MIN_BATCH} regions. PD patrols at about the same pace (128 regions every
 * 10 ms). Visiting 4,096 regions every run cost an idle scheduler a fifth of a core at 5,000
 * regions, re-checking each of them 16 times a second.
 */
export const PATROL_PERIOD_MS = 1_000;
/** Regions visited per run at the least: a small cluster is checked whole every run. */
export const PATROL_MIN_BATCH = 256;

/** How many regions one run of the checkers visits, out of `regions`, every `intervalMs`. */
export function patrolBatch(regions: number, intervalMs: number): number {
  const pace = Math.ceil((regions * intervalMs) / PATROL_PERIOD_MS);
  return Math.min(regions, Math.max(PATROL_MIN_BATCH, pace));
}
const NO_STORES: ReadonlySet<number> = new Set();
/** Peer IDs kept buffered so schedulers can allocate synchronously. */
const ID_RESERVE = 256;

/** The cluster as checkers and schedulers see it, with running operators' influence. */
export class LiveView implements ClusterView, MergeView {
  #stores: StoreView[] | null = null;
  readonly build: BuildContext;

  constructor(private readonly cluster: Cluster, readonly random: () => number = Math.random) {
    this.build = buildContext(cluster);
  }

  get config(): Readonly<ScheduleConfig> {
    return this.cluster.config;
  }
  neighbors(r: RegionInfo): { prev?: RegionInfo; next?: RegionInfo } {
    return this.cluster.regions.neighbors(r.meta);
  }
  sinceSplit(regionId: number): number {
    return this.cluster.sinceSplit(regionId);
  }
  isHot(regionId: number): boolean {
    const r = this.cluster.hot.get(regionId, this.build.now);
    return r !== undefined && r.degree > 0;
  }

  get maxReplicas(): number {
    return this.cluster.config.maxReplicas;
  }
  get maxStoreDownTime(): number {
    return this.cluster.config.maxStoreDownTime;
  }

  /** Forget cached figures (after an operator was added). */
  invalidate(): void {
    this.#stores = null;
    this.#storeById = null;
    this.#movedFrom = null;
    this.#hot = null;
  }

  #hot: HotRegionView[] | null = null;
  hotRegions(): readonly HotRegionView[] {
    if (this.#hot) return this.#hot;
    const c = this.cluster;
    const out: HotRegionView[] = [];
    for (const [id, rates] of c.hot.entries(this.build.now)) {
      const region = c.regions.getRegion(id);
      if (!region) continue;
      out.push({ region, rates, ...placedAfter(region, c.operators.get(id)) });
    }
    return this.#hot = out;
  }

  #lastEnded: Map<number, number> | null = null;
  sinceLastOperator(regionId: number): number | undefined {
    if (!this.#lastEnded) {
      this.#lastEnded = new Map();
      for (const op of this.cluster.operators.history()) {
        if (op.status === "Finished" && op.endedAt !== null) {
          this.#lastEnded.set(op.regionId, op.endedAt);
        }
      }
    }
    const at = this.#lastEnded.get(regionId);
    return at === undefined ? undefined : this.build.now - at;
  }

  stores(): readonly StoreView[] {
    if (this.#stores) return this.#stores;
    const c = this.cluster;
    const delta = new Map<number, { size: number; count: number; leaders: number }>();
    const d = (id: number) => {
      let x = delta.get(id);
      if (!x) delta.set(id, x = { size: 0, count: 0, leaders: 0 });
      return x;
    };
    for (const op of c.operators.running()) {
      const r = c.regions.getRegion(op.regionId);
      if (!r) continue;
      for (const step of op.remainingSteps()) {
        if (step.type === "AddLearner") {
          d(step.peer.storeId).size += r.approximateSize;
          d(step.peer.storeId).count++;
        } else if (step.type === "RemovePeer") {
          d(step.peer.storeId).size -= r.approximateSize;
          d(step.peer.storeId).count--;
        } else if (step.type === "TransferLeader") {
          d(step.peer.storeId).leaders++;
          if (r.leader) d(r.leader.storeId).leaders--;
        }
      }
    }
    this.#stores = c.stores().filter((s) => s.state !== "Tombstone").map((s) => {
      const st = c.regions.storeStats(s.meta.id);
      const x = delta.get(s.meta.id);
      return {
        id: s.meta.id,
        stateName: c.stateName(s),
        regionSize: st.regionSize + (x?.size ?? 0),
        regionCount: st.regionCount + (x?.count ?? 0),
        leaderCount: st.leaderCount + (x?.leaders ?? 0),
      };
    });
    return this.#stores;
  }

  store(id: number): StoreView | undefined {
    if (!this.#storeById) this.#storeById = new Map(this.stores().map((s) => [s.id, s]));
    return this.#storeById.get(id);
  }
  #storeById: Map<number, StoreView> | null = null;
  region(id: number): RegionInfo | undefined {
    return this.cluster.regions.getRegion(id);
  }
  regionIdsOn(storeId: number, role: RegionRole): readonly number[] {
    const st = this.cluster.regions.storeStats(storeId);
    return [...(role === "leader" ? st.leaders : role === "follower" ? st.followers : st.pending)];
  }
  hasOperator(regionId: number): boolean {
    return this.cluster.operators.get(regionId) !== undefined;
  }

  #movedFrom: Map<number, Set<number>> | null = null;
  movedFrom(regionId: number): ReadonlySet<number> {
    if (!this.#movedFrom) {
      const m = new Map<number, Set<number>>();
      const ops = [...this.cluster.operators.history(), ...this.cluster.operators.running()];
      for (const op of ops) {
        if (op.kind !== "region" || op.status === "Cancelled" || op.status === "TimedOut") continue;
        for (const step of op.steps) {
          if (step.type !== "RemovePeer") continue;
          if (!m.has(op.regionId)) m.set(op.regionId, new Set());
          m.get(op.regionId)!.add(step.peer.storeId);
        }
      }
      this.#movedFrom = m;
    }
    return this.#movedFrom.get(regionId) ?? NO_STORES;
  }
}

/** Where a region's leader and peers will be once `op`'s remaining steps are done. */
export function placedAfter(
  r: RegionInfo,
  op: Operator | undefined,
): { leaderStoreId: number | undefined; storeIds: number[] } {
  let leader = r.leader?.storeId;
  const stores = new Set(r.meta.peers.map((p) => p.storeId));
  const added: number[] = [];
  for (const step of op?.remainingSteps() ?? []) {
    if (step.type === "AddLearner") {
      stores.add(step.peer.storeId);
      added.push(step.peer.storeId);
    } else if (step.type === "RemovePeer") {
      stores.delete(step.peer.storeId);
      if (leader === step.peer.storeId) leader = added[0];
    } else if (step.type === "TransferLeader") {
      leader = step.peer.storeId;
    }
  }
  return { leaderStoreId: leader, storeIds: [...stores] };
}

/**
 * How operators are built now: fresh peer IDs, and joint-consensus peer moves once every store
 * supports them.
 */
export function buildContext(cluster: Cluster): BuildContext {
  return {
    now: cluster.now(),
    allocPeerId: () => cluster.ids.allocSync(),
    jointConsensus: cluster.supports(FEATURE_JOINT_CONSENSUS),
    unusableTarget: cluster.unusableTarget,
  };
}

/** Runs checkers and schedulers on a timer. */
export class Coordinator {
  readonly #schedulers = new Map<string, Scheduler>();
  #patrolCursor = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;
  #tickDone: Promise<void> = Promise.resolve();

  constructor(
    private readonly cluster: Cluster,
    names: readonly string[] = DEFAULT_SCHEDULERS,
    private readonly random: () => number = Math.random,
    private readonly onError: (e: unknown) => void = () => {},
  ) {
    for (const n of names) {
      const f = SCHEDULER_FACTORIES[n];
      if (f) this.#schedulers.set(n, f());
    }
  }

  /** Names of the running schedulers. */
  schedulerNames(): string[] {
    return [...this.#schedulers.keys()];
  }

  /** Adds a scheduler by name (BadRequest if unknown or already running). */
  async addScheduler(name: string): Promise<void> {
    const f = Object.hasOwn(SCHEDULER_FACTORIES, name) ? SCHEDULER_FACTORIES[name] : undefined;
    if (!f) {
      throw new MrkvError(
        "BadRequest",
        `unknown scheduler "${name}" (known: ${Object.keys(SCHEDULER_FACTORIES).join(", ")})`,
      );
    }
    if (this.#schedulers.has(name)) {
      throw new MrkvError("BadRequest", `scheduler ${name} is already running`);
    }
    this.#schedulers.set(name, f());
    await this.cluster.storage.saveSchedulers(this.schedulerNames());
  }

  /** Removes a running scheduler (NotFound if it is not running). */
  async removeScheduler(name: string): Promise<void> {
    if (!this.#schedulers.delete(name)) {
      throw new MrkvError("NotFound", `scheduler ${name} is not running`);
    }
    await this.cluster.storage.saveSchedulers(this.schedulerNames());
  }

  /** Starts the timer. */
  start(): void {
    this.#running = true;
    this.#arm();
  }

  /** Stops the timer and waits for a run in progress. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#tickDone;
  }

  #arm(): void {
    if (!this.#running) return;
    this.#timer = setTimeout(() => {
      this.#tickDone = this.tick().then(() => {}, this.onError).finally(() => this.#arm());
    }, this.cluster.config.scheduleIntervalMs);
  }

  /** One run: returns the operators added. */
  async tick(): Promise<Operator[]> {
    const c = this.cluster;
    await c.ids.reserve(ID_RESERVE);
    const now = c.now();
    c.operators.checkAll(
      now,
      (id) => c.regions.getRegion(id) !== undefined,
      (id) => c.regions.getRegion(id),
      c.unusableTarget,
    );
    c.forgetSplitsBefore(c.config.splitMergeInterval);
    for (const s of c.stores()) {
      if (s.state === "Offline" && c.regions.storeStats(s.meta.id).regionCount === 0) {
        await c.setStoreState(s.meta.id, "Tombstone");
      }
    }
    return this.runOnce();
  }

  /** The synchronous part of a run (no I/O): checkers then schedulers. */
  runOnce(): Operator[] {
    const c = this.cluster;
    const view = new LiveView(c, this.random);
    const added: Operator[] = [];
    const add = (op: Operator | null): boolean => {
      if (!op || !c.operators.addOperator(op, view.build.now)) return false;
      added.push(op);
      view.invalidate();
      return true;
    };
    const limit: Record<OperatorKind, number> = {
      admin: Infinity,
      replica: c.config.replicaScheduleLimit,
      // Two operators per merge (source and target).
      merge: 2 * c.config.mergeScheduleLimit,
      region: c.config.regionScheduleLimit,
      hot: c.config.hotRegionScheduleLimit,
      leader: c.config.leaderScheduleLimit,
    };
    const tryBuild = <T>(f: () => T | null): T | null => {
      try {
        return f();
      } catch (e) {
        if (e instanceof MrkvError) return null; // a builder refused; try again next run
        if (e instanceof Error && /no buffered IDs/.test(e.message)) return null;
        throw e;
      }
    };
    // Replica checker, then merge checker: walk a batch of regions from the cursor.
    const regions = c.regions.regions();
    const n = patrolBatch(regions.length, c.config.scheduleIntervalMs);
    let replicaOps = c.operators.countOf("replica");
    let mergeOps = c.operators.countOf("merge");
    const merging = c.supports(FEATURE_MERGE);
    for (let i = 0; i < n; i++) {
      const r = regions[(this.#patrolCursor + i) % regions.length]!;
      // A region with a running operator is checked only for lost replicas, and only if that
      // operator is a balance one: the repair replaces it at once (KIND_PRIORITY).
      const running = c.operators.get(r.meta.id);
      if (running) {
        if (
          KIND_PRIORITY[running.kind] < KIND_PRIORITY.replica && replicaOps < limit.replica &&
          add(tryBuild(() => checkLostReplicas(view, r)))
        ) replicaOps++;
        continue;
      }
      if (replicaOps < limit.replica && add(tryBuild(() => checkReplicas(view, r)))) {
        replicaOps++;
        continue;
      }
      if (!merging || mergeOps >= limit.merge) continue;
      const ops = tryBuild(() => checkMerge(view, r));
      if (ops && c.operators.addMergeOperators(ops, view.build.now)) {
        added.push(...ops);
        view.invalidate();
        mergeOps += 2;
      }
    }
    this.#patrolCursor = regions.length ? (this.#patrolCursor + n) % regions.length : 0;
    for (const s of this.#schedulers.values()) {
      if (c.operators.countOf(s.kind) >= limit[s.kind]) continue;
      add(tryBuild(() => s.schedule(view)));
    }
    return added;
  }
}
