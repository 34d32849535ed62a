/**
 * Heartbeats to the scheduler and the operator steps that come back.
 *
 * Every `scheduler-heartbeat-ms` the store sends its stats and one batched region heartbeat for
 * every region it leads; a region whose leader, epoch or size changed is reported again within
 * {@link CHANGE_FLUSH_MS}. The scheduler answers with at most one operator step per region, which
 * the leader carries out if its epoch still matches what the scheduler saw. Every step is
 * idempotent: the scheduler repeats it until a heartbeat shows it done. Steps run concurrently
 * (a split waits for its apply; other regions' steps need not wait for it).
 *
 * A transfer to a peer this leader has not heard from within two election timeouts, or that is
 * still catching up, is declined for now: while a transfer is pending the leader drops
 * proposals, so such a transfer would block the region's writes until it timed out, again on
 * every repeated step. The step comes again with the next heartbeat answer, and goes ahead once
 * the peer answers (the scheduler cancels it if the peer's store goes silent). A step that can
 * never succeed is refused for good, and the refusal travels in the region's next heartbeat so
 * the scheduler ends the operator at once: a split with no key to split at, a key outside the
 * region, a transfer to a peer that is not a voter.
 *
 * A leader reports a peer down once it has not heard from it for `max-peer-down-duration`; the
 * store heartbeat lists the stores its Raft messages could not reach lately.
 * A store the scheduler calls a Tombstone has been removed from the cluster for good: the
 * worker tells its owner, which stops the store.
 *
 * @module
 */
import { MrkvError } from "../proto/errors.ts";
import { epochEqual, isJointRegion, type Peer as PeerMeta } from "../proto/metapb.ts";
import type { PeerChange } from "./cmd.ts";
import {
  isStoreRemoved,
  type OperatorStep,
  type RefusedStep,
  type RegionHeartbeat,
  type RegionHeartbeatResult,
} from "../proto/pdpb.ts";
import type { Peer } from "./peer.ts";
import type { PdClient } from "../proto/pd_client.ts";
import type { RegionObserver, Store } from "./store.ts";
import type { SplitWorker } from "./split.ts";
import type { MergeWorker } from "./merge_worker.ts";

/** How soon a changed region is reported. */
const CHANGE_FLUSH_MS = 20;
/** How long the scheduler may hold each `wait_steps` call. */
const WAIT_STEPS_MS = 5_000;
/** Longest pause between `wait_steps` calls after failures. */
const WAIT_STEPS_MAX_BACKOFF_MS = 5_000;
/** `max-peer-down-duration` when the store config does not set it. */
export const DEFAULT_MAX_PEER_DOWN_MS = 10_000;

/**
 * How long a failed send to a store keeps it in the store heartbeat's `unreachableStores`:
 * Raft retries a dead store several times a second, so a store that stays unreachable stays
 * listed; one that recovers drops out within this window.
 */
export function unreachableWindowMs(heartbeatMs: number): number {
  return Math.max(1_000, 2 * heartbeatMs);
}

/** Marks an error as a refusal the scheduler should hear about (see {@link isRefusal}). */
function refusal(message: string): MrkvError {
  return new MrkvError("BadRequest", message, { step_refused: true });
}

/**
 * Whether a failed step can never succeed as given: a refusal of ours, or a split the split
 * worker found impossible (no key to split at, a key outside the region).
 */
function isRefusal(step: OperatorStep, e: MrkvError): boolean {
  if (e.details.step_refused === true) return true;
  return step.type === "SplitRegion" && (e.code === "BadRequest" || e.code === "KeyNotInRegion");
}

/** Sends heartbeats for one store and executes the operator steps in the answers. */
export class HeartbeatWorker implements RegionObserver {
  #timer: ReturnType<typeof setInterval> | undefined;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  #changed = new Set<number>();
  #inFlight = false;
  /** Steps refused since the last report, by region. */
  readonly #refused = new Map<number, RefusedStep>();
  /** When each leader peer first had each other peer unheard of (for down-peer reports). */
  readonly #unheardSince = new WeakMap<Peer, Map<number, number>>();
  /** Heartbeats sent and operator steps executed, for metrics and tests. */
  sent = 0;
  stepsExecuted = 0;
  stepsRefused = 0;
  /** Steps that failed, by error code (a storm of `EpochNotMatch` means repeated steps). */
  readonly stepErrors: Record<string, number> = {};
  /**
   * Called once if the scheduler answers that this store was removed for good (Tombstone):
   * retrying would only repeat the refusal every interval while the store looked healthy.
   */
  onRemoved: ((reason: Error) => void) | undefined;
  #removed = false;
  #stopped = false;
  /** Ends the `wait_steps` loop's back-off pause early (on stop). */
  #wakeWatcher: () => void = () => {};

  constructor(
    readonly store: Store,
    readonly client: PdClient,
    readonly capacity: () => { capacity: number; available: number; usedSize: number },
    readonly split?: SplitWorker,
    readonly merge?: MergeWorker,
  ) {}

  start(): void {
    this.store.observer = this;
    this.#timer = setInterval(() => void this.tick(), this.store.config.schedulerHeartbeatMs);
    void this.tick();
    void this.#watchSteps();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#flushTimer);
    this.#wakeWatcher();
  }

  regionChanged(peer: Peer): void {
    if (!peer.isLeader()) return;
    this.#queue([peer.regionId]);
  }

  /** Reports `regionIds` within {@link CHANGE_FLUSH_MS}, together with other changes. */
  #queue(regionIds: readonly number[]): void {
    for (const id of regionIds) this.#changed.add(id);
    this.#flushTimer ??= setTimeout(() => {
      this.#flushTimer = undefined;
      const ids = [...this.#changed];
      this.#changed.clear();
      void this.sendRegionHeartbeats(ids);
    }, CHANGE_FLUSH_MS);
  }

  /**
   * Keeps one `wait_steps` call open: when a region this store leads gets an operator, the
   * scheduler answers at once and the region is reported, so its first step comes in the
   * heartbeat answer without waiting for the next periodic heartbeat.
   */
  async #watchSteps(): Promise<void> {
    let backoff = 0;
    while (!this.#stopped && !this.store.stopped && !this.#removed) {
      try {
        const ids = await this.client.waitSteps(this.store.storeId, WAIT_STEPS_MS);
        backoff = 0;
        if (ids.length > 0 && !this.#stopped) void this.sendRegionHeartbeats(ids);
      } catch {
        // The scheduler is restarting, or does not know wait_steps: steps still come with
        // every periodic heartbeat, only later.
        backoff = Math.min(WAIT_STEPS_MAX_BACKOFF_MS, Math.max(200, backoff * 2));
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, backoff);
          this.#wakeWatcher = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
    }
  }

  /** One periodic round: store stats, then every led region. */
  async tick(): Promise<void> {
    if (this.store.stopped || this.#removed) return;
    try {
      const peers = [...this.store.peers.values()];
      const cap = this.capacity();
      const recent = Date.now() - unreachableWindowMs(this.store.config.schedulerHeartbeatMs);
      const unreachableStores: number[] = [];
      for (const [id, at] of this.store.unreachableAt) {
        if (at >= recent) unreachableStores.push(id);
        else this.store.unreachableAt.delete(id);
      }
      await this.client.storeHeartbeat({
        storeId: this.store.storeId,
        capacity: cap.capacity,
        available: cap.available,
        usedSize: cap.usedSize,
        regionCount: peers.length,
        leaderCount: peers.filter((p) => p.isLeader()).length,
        sendingSnapCount: 0,
        receivingSnapCount: 0,
        isBusy: false,
        unreachableStores,
      });
      await this.sendRegionHeartbeats();
    } catch (e) {
      if (isStoreRemoved(e)) {
        this.#removed = true;
        this.stop();
        this.onRemoved?.(e);
        return;
      }
      this.store.log.warn(`store ${this.store.storeId}: heartbeat failed: ${(e as Error).message}`);
    }
  }

  /** Reports the given regions (all led regions if omitted) in one request. */
  async sendRegionHeartbeats(regionIds?: readonly number[]): Promise<void> {
    if (this.#inFlight && regionIds) {
      this.#queue(regionIds);
      return;
    }
    const peers = (regionIds ?? [...this.store.peers.keys()])
      .map((id) => this.store.peers.get(id))
      .filter((p): p is Peer => p !== undefined && p.isLeader() && p.storage.isInitialized());
    // A full round ends the flow interval; a report of changes between rounds carries none.
    const flow = regionIds ? undefined : this.store.flow.take(peers.map((p) => p.regionId));
    if (peers.length === 0) return;
    this.#inFlight = true;
    const now = Date.now();
    const downMs = this.store.config.maxPeerDownDuration ?? DEFAULT_MAX_PEER_DOWN_MS;
    const refused = new Map<number, RefusedStep>();
    const heartbeats = peers.map((p) => {
      const f = flow?.get(p.regionId);
      const base = regionHeartbeatOf(p, now, downMs, this.#unheardSinceOf(p));
      const hb = f ? { ...base, flow: f } : base;
      const r = this.#refused.get(p.regionId);
      if (!r) return hb;
      this.#refused.delete(p.regionId);
      refused.set(p.regionId, r);
      return { ...hb, refusedStep: r };
    });
    try {
      const res = await this.client.regionHeartbeat(heartbeats);
      this.sent += peers.length;
      for (const result of res.results) void this.#onResult(result);
    } catch (e) {
      // Not delivered: the refusals go with the next report.
      for (const [id, r] of refused) if (!this.#refused.has(id)) this.#refused.set(id, r);
      this.store.log.warn(
        `store ${this.store.storeId}: region heartbeat failed: ${(e as Error).message}`,
      );
    } finally {
      this.#inFlight = false;
    }
  }

  #unheardSinceOf(peer: Peer): Map<number, number> {
    let m = this.#unheardSince.get(peer);
    if (!m) this.#unheardSince.set(peer, m = new Map());
    return m;
  }

  /** Carries out one answer's step; never throws (it runs unawaited). */
  async #onResult(result: RegionHeartbeatResult): Promise<void> {
    const peer = this.store.peers.get(result.regionId);
    const step = result.step;
    if (!step || !peer || !peer.isLeader()) return;
    if (result.epoch && !epochEqual(result.epoch, peer.region.epoch)) return;
    try {
      await this.execute(peer, step);
      this.stepsExecuted++;
    } catch (e) {
      if (!(e instanceof MrkvError)) {
        this.store.log.error(
          `region ${peer.regionId}: operator step ${step.type} failed: ${(e as Error).stack ?? e}`,
        );
        return;
      }
      this.stepErrors[e.code] = (this.stepErrors[e.code] ?? 0) + 1;
      if (isRefusal(step, e)) {
        this.stepsRefused++;
        this.#refused.set(peer.regionId, { type: step.type, reason: e.message.slice(0, 1000) });
        this.regionChanged(peer);
      }
      this.store.log.info(
        `region ${peer.regionId}: operator step ${step.type} not done: ${e.message}`,
      );
    }
  }

  /** Carries out one operator step on a region this store leads. */
  async execute(peer: Peer, step: OperatorStep): Promise<void> {
    const header = { regionId: peer.regionId, peerId: peer.meta.id, epoch: peer.region.epoch };
    const change = (changeType: "AddNode" | "AddLearnerNode" | "RemoveNode", target: PeerMeta) => {
      const p = peer.proposeConfChange({
        header,
        admin: { type: "ChangePeer", changeType, peer: target },
      });
      this.store.schedule(peer);
      return p;
    };
    switch (step.type) {
      case "AddLearner":
        if (peer.region.peers.some((p) => p.id === step.peer.id)) return;
        return await change("AddLearnerNode", { ...step.peer, role: "Learner" });
      case "PromoteLearner":
        if (peer.region.peers.some((p) => p.id === step.peer.id && p.role === "Voter")) return;
        return await change("AddNode", { ...step.peer, role: "Voter" });
      case "RemovePeer":
        if (!peer.region.peers.some((p) => p.id === step.peer.id)) return;
        if (step.peer.id === peer.meta.id) return this.#handOver(peer);
        return await change("RemoveNode", step.peer);
      case "TransferLeader":
        if (step.peer.id === peer.meta.id) return;
        if (peer.raw.raft.leadTransferee === step.peer.id) return; // already under way
        this.#checkTransferee(peer, step.peer);
        peer.transferLeader(step.peer.id);
        this.store.schedule(peer);
        return;
      case "SplitRegion":
        // A split of this region under way (this step, repeated) is left to finish: the first
        // execution reports its outcome.
        if (!this.split || this.split.isSplitting(peer.regionId)) return;
        await this.split.splitRegion(peer, step.keys);
        return;
      case "ChangePeerV2Enter": {
        const roleOf = (id: number) => peer.region.peers.find((p) => p.id === id)?.role;
        const changes: PeerChange[] = [
          ...step.promote.filter((p) => roleOf(p.id) === "Learner")
            .map((p): PeerChange => ({ changeType: "AddNode", peer: p })),
          ...step.demote.filter((p) => roleOf(p.id) === "Voter")
            .map((p): PeerChange => ({ changeType: "AddLearnerNode", peer: p })),
        ];
        // Done already (or entered and left): nothing to propose.
        if (changes.length === 0 || isJointRegion(peer.region)) return;
        const p = peer.proposeConfChange({ header, admin: { type: "ChangePeerV2", changes } });
        this.store.schedule(peer);
        return await p;
      }
      case "ChangePeerV2Leave": {
        if (!isJointRegion(peer.region)) return;
        const p = peer.proposeConfChange({ header, admin: { type: "ChangePeerV2", changes: [] } });
        this.store.schedule(peer);
        return await p;
      }
      case "MergeRegion":
        if (step.passive || !this.merge) return;
        return await this.merge.proposePrepareMerge(peer, step.target);
    }
  }

  /**
   * The step removes this leader itself (leadership came here after the operator was made, e.g.
   * by an election): a leader cannot remove itself, so it hands leadership to another voter that
   * would take a transfer now, and the new leader carries out the step on its next report.
   * Throws `ServerIsBusy` either way, so the step is retried rather than refused.
   */
  #handOver(peer: Peer): never {
    const transferee = peer.raw.raft.leadTransferee;
    if (!transferee) {
      const to = peer.region.peers.find((p) => {
        if (p.id === peer.meta.id) return false;
        try {
          this.#checkTransferee(peer, p);
          return true;
        } catch {
          return false;
        }
      });
      if (!to) {
        throw new MrkvError(
          "ServerIsBusy",
          `not removing leader peer ${peer.meta.id}: no other voter could take leadership now`,
        );
      }
      peer.transferLeader(to.id);
      this.store.schedule(peer);
    }
    throw new MrkvError(
      "ServerIsBusy",
      `removing leader peer ${peer.meta.id}: leadership moves to another voter first`,
    );
  }

  /**
   * Declines a transfer that would stall the region (see the module comment): `ServerIsBusy`
   * while the transferee is silent or catching up, a refusal if it is not a voter at all.
   */
  #checkTransferee(peer: Peer, target: PeerMeta): void {
    const member = peer.region.peers.find((p) => p.id === target.id);
    if (!member || member.role !== "Voter") {
      throw refusal(`peer ${target.id} is not a voter of region ${peer.regionId}`);
    }
    // Two election timeouts: a live follower answers every heartbeat, even on a busy machine;
    // a dead one stays silent (and its store is soon Disconnected at the scheduler anyway).
    const { electionTicks, raftTickMs } = this.store.config;
    const heard = peer.lastHeard.get(target.id);
    const silentMs = heard === undefined ? Infinity : Date.now() - heard;
    if (silentMs > 2 * electionTicks * raftTickMs) {
      throw new MrkvError(
        "ServerIsBusy",
        heard === undefined
          ? `not transferring to peer ${target.id}: not heard from since this peer started`
          : `not transferring to peer ${target.id}: last heard from ${silentMs} ms ago`,
      );
    }
    const pr = peer.raw.status().progress[target.id];
    if (!pr || pr.state === "Snapshot" || pr.match < peer.storage.applyState.truncatedIndex) {
      throw new MrkvError(
        "ServerIsBusy",
        `not transferring to peer ${target.id}: it is catching up (it needs a snapshot)`,
      );
    }
  }
}

/**
 * The heartbeat a leader sends for its region at time `now`. A peer is reported down once it
 * has been unheard of for `downMs`: since its last message, or, for one never heard from by
 * this peer object (a new leader, a restarted store), since `unheardSince` first noted it.
 */
export function regionHeartbeatOf(
  peer: Peer,
  now = Date.now(),
  downMs = DEFAULT_MAX_PEER_DOWN_MS,
  unheardSince: Map<number, number> = new Map(),
): RegionHeartbeat {
  const status = peer.raw.status();
  const truncated = peer.storage.applyState.truncatedIndex;
  const pendingPeers: PeerMeta[] = [];
  const downPeers: { peer: PeerMeta; downSeconds: number }[] = [];
  for (const p of peer.region.peers) {
    if (p.id === peer.meta.id) continue;
    const pr = status.progress[p.id];
    if (!pr || pr.match < truncated || pr.state === "Snapshot") pendingPeers.push(p);
    let since = peer.lastHeard.get(p.id);
    if (since === undefined) {
      since = unheardSince.get(p.id) ?? now;
      unheardSince.set(p.id, since);
    }
    if (now - since > downMs) {
      downPeers.push({ peer: p, downSeconds: Math.floor((now - since) / 1000) });
    }
  }
  return {
    region: peer.region,
    leader: peer.region.peers.find((p) => p.id === peer.meta.id) ?? peer.meta,
    pendingPeers,
    downPeers,
    approximateSize: peer.approximateSize,
    approximateKeys: peer.approximateKeys,
  };
}
