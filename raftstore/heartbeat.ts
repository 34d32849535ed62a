/**
 * Heartbeats to the scheduler and the operator steps that come back.
 *
 * Every `scheduler-heartbeat-ms` the store sends its stats and one batched region heartbeat for
 * the regions it leads that have something new to say (heartbeat_report.ts: a changed leader,
 * epoch, peers or size, a step under way, and a slice of all of them so each is refreshed every
 * {@link REFRESH_ROUNDS} rounds); a region whose leader or epoch changed is reported within
 * {@link CHANGE_FLUSH_MS}. The scheduler answers with at most one operator step per region, which
 * the leader carries out if its epoch still matches what the scheduler saw. Every step is
 * idempotent: the scheduler repeats it until a heartbeat shows it done. A new operator's first
 * step does not wait for a heartbeat: the scheduler pushes it down a long poll (step_poll.ts).
 * Steps run concurrently (a split waits for its apply; other regions' steps need not wait for it).
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
 * store heartbeat lists the stores its Raft messages could not reach lately. A sleeping region
 * hears nothing from its followers, so for a sleeping leader a follower on a store heard from
 * lately counts as heard from then (hibernate.ts): sleep alone never makes a peer down, nor a
 * transferee silent.
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
import { ReportPlan } from "./heartbeat_report.ts";
import { StepPoller } from "./step_poll.ts";
import type { MergeWorker } from "./merge_worker.ts";

/** How soon a changed region is reported. */
const CHANGE_FLUSH_MS = 5;
/** Every led region is reported at least once per this many rounds (TiKV: 60 s at 1 s). */
export const REFRESH_ROUNDS = 60;
/** Most awake leaders with pending peers looked at again between rounds (see below). */
const MAX_PENDING_RECHECK = 1_000;
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
  /**
   * Awake leaders whose last look found pending peers, looked at again within a few Raft
   * heartbeats rather than at the next round: the scheduler will not transfer leadership to a
   * pending peer nor promote a pending learner, and a new leader reports every follower pending
   * until it hears back, so waiting a round (a second or more) would hold up such operators.
   */
  #pendingRecheck = new Set<number>();
  #recheckTimer: ReturnType<typeof setTimeout> | undefined;
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
  /** What was reported, and what each round looks at. */
  readonly plan: ReportPlan;
  /** The long poll for steps the scheduler pushes. */
  readonly poller: StepPoller;
  /**
   * Called once if the scheduler answers that this store was removed for good (Tombstone):
   * retrying would only repeat the refusal every interval while the store looked healthy.
   */
  onRemoved: ((reason: Error) => void) | undefined;
  #removed = false;

  constructor(
    readonly store: Store,
    readonly client: PdClient,
    readonly capacity: () => { capacity: number; available: number; usedSize: number },
    readonly split?: SplitWorker,
    readonly merge?: MergeWorker,
  ) {
    const ms = store.config.schedulerHeartbeatMs;
    this.plan = new ReportPlan(REFRESH_ROUNDS * ms, ms);
    this.poller = new StepPoller(store.storeId, client, (r) => this.onPushedStep(r));
  }

  start(): void {
    this.store.observer = this;
    this.#timer = setInterval(() => void this.tick(), this.store.config.schedulerHeartbeatMs);
    void this.tick();
    this.poller.start();
  }

  stop(): void {
    clearInterval(this.#timer);
    clearTimeout(this.#flushTimer);
    clearTimeout(this.#recheckTimer);
    void this.poller.stop();
  }

  /**
   * Carries out a step the scheduler pushed, as if it had come with a heartbeat answer; the
   * region is then reported every round until its answers carry no step.
   */
  async onPushedStep(result: RegionHeartbeatResult): Promise<void> {
    this.plan.expectStep(result.regionId);
    await this.#onResult(result);
  }

  regionChanged(peer: Peer): void {
    if (!peer.isLeader()) return;
    this.#changed.add(peer.regionId);
    this.#armFlush();
  }

  /** Reports the changed regions within {@link CHANGE_FLUSH_MS}, in one request. */
  #armFlush(): void {
    this.#flushTimer ??= setTimeout(() => {
      this.#flushTimer = undefined;
      const ids = [...this.#changed];
      this.#changed.clear();
      void this.sendRegionHeartbeats(ids);
    }, CHANGE_FLUSH_MS);
  }

  /** One periodic round: store stats, then the regions with news (see the module comment). */
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
      await this.#reportRound();
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

  /**
   * The round's regions: a refresh slice, steps under way and led regions that read or wrote
   * since the last round (their flow, for the hot-region view), plus watched ones with news.
   * The round ends the flow interval.
   */
  async #reportRound(): Promise<void> {
    if (this.#inFlight) return; // the slice comes next round
    const h = this.store.hibernation;
    const watched = new Set<number>();
    for (const p of h.awakePeers()) if (p.isLeader()) watched.add(p.regionId);
    for (const id of h.regionsOnDownStores()) watched.add(id);
    const round = this.plan.round(() => this.#ledRegions(), watched);
    for (const id of this.store.flow.regions()) {
      if (this.store.peers.get(id)?.isLeader()) {
        round.forced.add(id);
        round.watched.delete(id);
      }
    }
    await this.sendRegionHeartbeats([...round.forced, ...round.watched], round.watched, true);
  }

  #ledRegions(): number[] {
    const out: number[] = [];
    for (const p of this.store.peers.values()) {
      if (p.isLeader() && p.storage.isInitialized()) out.push(p.regionId);
    }
    this.plan.retain((id) => this.store.peers.get(id)?.isLeader() === true);
    return out;
  }

  /**
   * Reports the given regions (all led regions if omitted) in one request; those in `ifNews`
   * only if they say something new (a refused step always is). A periodic round (`endsFlow`, or
   * all regions) carries each region's flow since the last one; a report of changes between
   * rounds carries none.
   */
  async sendRegionHeartbeats(
    regionIds?: readonly number[],
    ifNews?: ReadonlySet<number>,
    endsFlow = regionIds === undefined,
  ): Promise<void> {
    if (this.#inFlight && regionIds) {
      // Sent when the request out now is answered (see below); a recheck comes again.
      for (const id of regionIds) {
        if (!ifNews?.has(id)) this.#changed.add(id);
        else this.#recheckPending(id);
      }
      return;
    }
    const peers = (regionIds ?? [...this.store.peers.keys()])
      .map((id) => this.store.peers.get(id))
      .filter((p): p is Peer => p !== undefined && p.isLeader() && p.storage.isInitialized());
    const now = Date.now();
    const downMs = this.store.config.maxPeerDownDuration ?? DEFAULT_MAX_PEER_DOWN_MS;
    const heartbeats: RegionHeartbeat[] = [];
    const refused = new Map<number, RefusedStep>();
    for (const p of peers) {
      if (p.sleep.asleep) this.store.hibernation.refreshHeard(p);
      const hb = regionHeartbeatOf(p, now, downMs, this.#unheardSinceOf(p));
      if (hb.pendingPeers.length > 0 && !p.sleep.asleep) this.#recheckPending(p.regionId);
      const r = this.#refused.get(p.regionId);
      if (r) {
        this.#refused.delete(p.regionId);
        refused.set(p.regionId, r);
        heartbeats.push({ ...hb, refusedStep: r });
      } else if (!ifNews?.has(p.regionId) || this.plan.isNews(hb)) {
        heartbeats.push(hb);
      }
    }
    const flow = endsFlow ? this.store.flow.take(heartbeats.map((hb) => hb.region.id)) : undefined;
    if (heartbeats.length === 0) return;
    this.#inFlight = true;
    try {
      const res = await this.client.regionHeartbeat(heartbeats.map((hb) => {
        const f = flow?.get(hb.region.id);
        return f ? { ...hb, flow: f } : hb;
      }));
      this.sent += heartbeats.length;
      this.plan.sent(heartbeats, new Set(res.results.filter((r) => r.step).map((r) => r.regionId)));
      for (const result of res.results) void this.#onResult(result);
    } catch (e) {
      // Not delivered: the refusals go with the next report.
      for (const [id, r] of refused) if (!this.#refused.has(id)) this.#refused.set(id, r);
      this.store.log.warn(
        `store ${this.store.storeId}: region heartbeat failed: ${(e as Error).message}`,
      );
    } finally {
      this.#inFlight = false;
      // Changes noted while this request was out go now (a quiet region may not report again).
      if (this.#changed.size > 0) this.#armFlush();
    }
  }

  #recheckPending(regionId: number): void {
    if (this.store.stopped || this.#removed) return;
    if (this.#pendingRecheck.size >= MAX_PENDING_RECHECK) return;
    this.#pendingRecheck.add(regionId);
    const { heartbeatTicks, raftTickMs } = this.store.config;
    this.#recheckTimer ??= setTimeout(() => {
      this.#recheckTimer = undefined;
      const ids = [...this.#pendingRecheck];
      this.#pendingRecheck.clear();
      void this.sendRegionHeartbeats(ids, new Set(ids));
    }, Math.max(50, 2 * heartbeatTicks * raftTickMs));
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
    // a dead one stays silent (and its store is soon Disconnected at the scheduler anyway). A
    // sleeping region's followers send nothing: their stores' liveness speaks for them.
    if (peer.sleep.asleep) this.store.hibernation.refreshHeard(peer);
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
