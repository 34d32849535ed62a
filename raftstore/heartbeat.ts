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
 *
 * @module
 */
import { MrkvError } from "../proto/errors.ts";
import { epochEqual, isJointRegion, type Peer as PeerMeta } from "../proto/metapb.ts";
import type { PeerChange } from "./cmd.ts";
import {
  isStoreRemoved,
  type OperatorStep,
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
/** A peer not heard from this long is reported down. */
const DOWN_PEER_MS = 5 * 60_000;

/** Sends heartbeats for one store and executes the operator steps in the answers. */
export class HeartbeatWorker implements RegionObserver {
  #timer: ReturnType<typeof setInterval> | undefined;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  #changed = new Set<number>();
  #inFlight = false;
  /** Heartbeats sent and operator steps executed, for metrics and tests. */
  sent = 0;
  stepsExecuted = 0;
  /** What was reported, and what each round looks at. */
  readonly plan: ReportPlan;
  /** The long poll for steps the scheduler pushes. */
  readonly poller: StepPoller;
  /**
   * Called once if the scheduler answers that this store was removed for good (Tombstone):
   * retrying would only repeat the refusal every interval while the store looked healthy.
   */
  onRemoved: ((reason: Error) => void) | undefined;

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
    void this.poller.stop();
  }

  /**
   * Carries out a step the scheduler pushed, as if it had come with a heartbeat answer; the
   * region is then reported every round until its answers carry no step.
   */
  async onPushedStep(result: RegionHeartbeatResult): Promise<void> {
    this.plan.expectStep(result.regionId);
    try {
      await this.#onResult(result);
    } catch (e) {
      this.store.log.error(`region ${result.regionId}: pushed step failed: ${(e as Error).stack}`);
    }
  }

  regionChanged(peer: Peer): void {
    if (!peer.isLeader()) return;
    this.#changed.add(peer.regionId);
    this.#armFlush();
  }

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
    if (this.store.stopped) return;
    try {
      const peers = [...this.store.peers.values()];
      const cap = this.capacity();
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
      });
      await this.#reportRound();
    } catch (e) {
      if (isStoreRemoved(e) && this.onRemoved) {
        this.stop();
        this.onRemoved(e as Error);
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
   * only if they say something new. A periodic round (`endsFlow`, or all regions) carries each
   * region's flow since the last one; a report of changes between rounds carries none.
   */
  async sendRegionHeartbeats(
    regionIds?: readonly number[],
    ifNews?: ReadonlySet<number>,
    endsFlow = regionIds === undefined,
  ): Promise<void> {
    if (this.#inFlight && regionIds) {
      for (const id of regionIds) if (!ifNews?.has(id)) this.#changed.add(id);
      return;
    }
    const peers = (regionIds ?? [...this.store.peers.keys()])
      .map((id) => this.store.peers.get(id))
      .filter((p): p is Peer => p !== undefined && p.isLeader() && p.storage.isInitialized());
    const heartbeats: RegionHeartbeat[] = [];
    for (const p of peers) {
      // A sleeping region hears nothing from its followers: news of their stores counts.
      if (p.sleep.asleep) this.store.hibernation.refreshHeard(p);
      const hb = regionHeartbeatOf(p);
      if (!ifNews?.has(p.regionId) || this.plan.isNews(hb)) heartbeats.push(hb);
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
      for (const result of res.results) await this.#onResult(result);
    } catch (e) {
      this.store.log.warn(
        `store ${this.store.storeId}: region heartbeat failed: ${(e as Error).message}`,
      );
    } finally {
      this.#inFlight = false;
      // Changes noted while this request was out go now (a quiet region may not report again).
      if (this.#changed.size > 0) this.#armFlush();
    }
  }

  async #onResult(result: RegionHeartbeatResult): Promise<void> {
    const peer = this.store.peers.get(result.regionId);
    if (!result.step || !peer || !peer.isLeader()) return;
    if (result.epoch && !epochEqual(result.epoch, peer.region.epoch)) return;
    try {
      await this.execute(peer, result.step);
      this.stepsExecuted++;
    } catch (e) {
      if (!(e instanceof MrkvError)) throw e;
      this.store.log.info(
        `region ${peer.regionId}: operator step ${result.step.type} not done: ${e.message}`,
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
        return await change("RemoveNode", step.peer);
      case "TransferLeader":
        if (step.peer.id === peer.meta.id) return;
        peer.transferLeader(step.peer.id);
        this.store.schedule(peer);
        return;
      case "SplitRegion":
        if (!this.split) return;
        await this.split.splitRegion(peer, step.keys[0]);
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
}

/** The heartbeat a leader sends for its region. */
export function regionHeartbeatOf(peer: Peer): RegionHeartbeat {
  const status = peer.raw.status();
  const truncated = peer.storage.applyState.truncatedIndex;
  const now = Date.now();
  const pendingPeers: PeerMeta[] = [];
  for (const p of peer.region.peers) {
    const pr = status.progress[p.id];
    if (p.id !== peer.meta.id && (!pr || pr.match < truncated || pr.state === "Snapshot")) {
      pendingPeers.push(p);
    }
  }
  const downPeers = peer.region.peers
    .filter((p) => p.id !== peer.meta.id && now - (peer.lastHeard.get(p.id) ?? now) > DOWN_PEER_MS)
    .map((p) => ({ peer: p, downSeconds: Math.floor((now - peer.lastHeard.get(p.id)!) / 1000) }));
  return {
    region: peer.region,
    leader: peer.region.peers.find((p) => p.id === peer.meta.id) ?? peer.meta,
    pendingPeers,
    downPeers,
    approximateSize: peer.approximateSize,
    approximateKeys: peer.approximateKeys,
  };
}
