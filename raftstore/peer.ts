/**
 * One region peer on this store: its Raft node, its storage, the proposals and reads waiting on
 * it. The peer does no I/O: the store's Ready loop persists, sends and applies for it.
 *
 * Proposals are matched to applied entries by index and term (TiKV's rule): an applied entry at a
 * proposal's index but with another term means the proposal was lost to a leader change, and so
 * was every proposal below an applied index that never showed up.
 *
 * @module
 */
import {
  type ConfChange,
  type ConfChangeV2,
  encodeConfChange,
  type Entry,
  type Message,
  ProposalDroppedError,
  RawNode,
  type Ready,
} from "../raft/mod.ts";
import { MrkvError, unknownOutcome } from "../proto/errors.ts";
import type { Peer as PeerMeta, Region, RegionEpoch } from "../proto/metapb.ts";
import {
  type AdminRequest,
  type ChangePeerRequest,
  type ChangePeerV2Request,
  checkEpoch,
  encodeCmd,
  epochCheckKind,
  type RaftCmd,
} from "./cmd.ts";
import { confChangeV2Of } from "./conf_change.ts";
import type { MergeState } from "./merge.ts";
import type { EntryResult } from "./apply.ts";
import type { RequestTag } from "./applied_requests.ts";
import type { PeerStorage } from "./peer_storage.ts";
import { newSleepState, type SleepState } from "./hibernate.ts";

/** Raft settings a store gives each of its peers. */
export interface PeerConfig {
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly maxSizePerMsg: number;
  readonly maxInflightMsgs: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Leader lease for local reads in ms; 0 turns lease reads off (every read uses ReadIndex). */
  readonly leaseMs?: number;
  readonly rand?: () => number;
}

interface Proposal {
  readonly index: number;
  readonly term: number;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

/** How long a write proposed on a follower is waited for before it is given up as lost. */
const FORWARDED_TTL_MS = 30_000;
/** How long a follower's ReadIndex request waits for its answer before its reads fail. */
export const FOLLOWER_READ_WAIT_MS = 1_000;

interface PendingRead {
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
  /**
   * A read of one key: it may go once its index is visible (applied, with the data perhaps
   * still on its way to the engine: see {@link Peer.visibleIndex}); a scan waits until the
   * data has landed.
   */
  readonly point?: boolean;
}

/** A region peer hosted by this store. */
export class Peer {
  readonly raw: RawNode;
  /** Proposals waiting for apply, in index order. */
  #proposals: Proposal[] = [];
  /** Writes proposed on this follower, by tag (hex; see {@link proposeViaLeader}). */
  #forwarded = new Map<string, { resolve: () => void; reject: (e: Error) => void; at: number }>();
  /** Reads not yet sent as a ReadIndex request (batched: one request per Ready pass). */
  #readsToSend: PendingRead[] = [];
  /** Reads waiting for their ReadIndex answer, by request context. */
  #readsInFlight = new Map<string, PendingRead[]>();
  /** Reads whose read index is known, waiting for apply to reach it. */
  #readsWaitingApply: { index: number; reads: PendingRead[] }[] = [];
  #readSeq = 0;
  /** See {@link visibleIndex}. */
  #visibleIndex = 0;
  /**
   * When each in-flight ReadIndex was issued, and the term this peer led in then (0: it
   * followed): a confirmed one issued as leader of the current term starts a lease from then;
   * one a follower sent is given up on (its reads failed) once it has waited
   * {@link FOLLOWER_READ_WAIT_MS}.
   */
  #readIssuedAt = new Map<string, { at: number; leaderTerm: number }>();
  /** Lease end (performance.now() clock); see {@link hasLease}. */
  #leaseUntil = 0;
  #renewLease = false;
  #renewalInFlight: string | undefined;
  /** Highest term of an entry this peer has applied. */
  #appliedTerm = 0;
  /** Lease length in ms (0: no lease reads). */
  readonly leaseMs: number;
  /** Reads served under the lease, for metrics and tests. */
  leaseReads = 0;
  /** Followers' ReadIndex requests this leader answered from its lease. */
  leaseReadIndexes = 0;
  /** Peers seen in messages, so replies reach peers the region no longer lists. */
  readonly peerCache = new Map<number, PeerMeta>();
  /** Bytes written since the last split check; `approximateSize` is the last measured size. */
  sizeDiffHint = 0;
  approximateSize = 0;
  approximateKeys = 0;
  /** Set once the peer is destroyed; every later call fails. */
  destroyed = false;
  /** Last time (ms) each peer was heard from, for the scheduler's down-peer list. */
  readonly lastHeard = new Map<number, number>();
  /** Whether the region sleeps here, and what waking it needs (hibernate.ts). */
  readonly sleep: SleepState = newSleepState();
  /**
   * Set once the region has applied a PrepareMerge (and not rolled it back): it is frozen and
   * waits for its merge target to take it over (see merge.ts).
   */
  mergeState: MergeState | undefined;
  /**
   * Set when another store said this peer's region was merged into that region (at that epoch
   * of it) while this peer was cut off: see merge_worker.ts.
   */
  mergedInto: { readonly id: number; readonly epoch: RegionEpoch } | undefined;
  /** Deletes applied since the last size scan (they shrink the region by an unknown amount). */
  deletesSinceScan = 0;
  /** Where this leader proposed a PrepareMerge (see {@link checkProposable}). */
  #prepareMerge = { index: 0, term: 0 };

  constructor(
    readonly storeId: number,
    readonly meta: PeerMeta,
    readonly storage: PeerStorage,
    config: PeerConfig,
  ) {
    this.raw = new RawNode({
      id: meta.id,
      electionTick: config.electionTicks,
      heartbeatTick: config.heartbeatTicks,
      storage,
      applied: storage.applyState.appliedIndex,
      maxSizePerMsg: config.maxSizePerMsg,
      maxInflightMsgs: config.maxInflightMsgs,
      preVote: config.preVote,
      checkQuorum: config.checkQuorum,
      rand: config.rand,
      leaseRead: () => this.#leaseForFollower(),
    });
    for (const p of storage.region.peers) this.peerCache.set(p.id, p);
    this.leaseMs = config.leaseMs ?? 0;
  }

  get regionId(): number {
    return this.storage.region.id;
  }

  get region(): Region {
    return this.storage.region;
  }

  get appliedIndex(): number {
    return this.storage.applyState.appliedIndex;
  }

  /**
   * The highest index whose applied data a read of one key can see: the applied index, or
   * beyond it what the Ready loop applied and handed to the apply writer, whose writes a point
   * read finds there until they land (raftstore/apply_writer.ts).
   */
  get visibleIndex(): number {
    return Math.max(this.appliedIndex, this.#visibleIndex);
  }

  /** The Ready loop applied up to `index` and its data is readable through the apply writer. */
  appliedInMemory(index: number): void {
    if (index <= this.#visibleIndex) return;
    this.#visibleIndex = index;
    this.releaseReads();
  }

  isLeader(): boolean {
    return this.raw.raft.state === "Leader";
  }

  /** The leader's peer ID as this peer knows it (0 if none). */
  leaderId(): number {
    return this.raw.raft.lead;
  }

  /** The leader's peer meta, if known. */
  leader(): PeerMeta | undefined {
    const lead = this.leaderId();
    return lead === 0
      ? undefined
      : this.peerCache.get(lead) ?? this.region.peers.find((p) => p.id === lead);
  }

  /** Throws `NotLeader` (with the leader when known) unless this peer leads its region. */
  checkLeader(): void {
    if (this.destroyed) {
      throw new MrkvError("RegionNotFound", `region ${this.regionId} is gone from this store`);
    }
    if (!this.isLeader()) {
      const leader = this.leader();
      throw new MrkvError(
        "NotLeader",
        `peer ${this.meta.id} is not the leader of region ${this.regionId}`,
        leader
          ? { region_id: this.regionId, leader: { id: leader.id, store_id: leader.storeId } }
          : { region_id: this.regionId },
      );
    }
  }

  /**
   * Throws unless this peer may propose now (a command of `admin` type, or data): it must lead,
   * and a merging region takes nothing but its RollbackMerge. While a PrepareMerge this leader
   * proposed is not applied, no other admin command is proposed either: one landing after it
   * (a CompactLog, say) would run on the frozen region.
   */
  checkProposable(admin?: AdminRequest["type"]): void {
    this.checkLeader();
    if (this.mergeState && admin !== "RollbackMerge") throw this.#mergingError();
    if (
      admin !== undefined && this.#prepareMerge.index > this.appliedIndex &&
      this.#prepareMerge.term === this.raw.raft.term
    ) {
      throw new MrkvError(
        "ServerIsBusy",
        `region ${this.regionId} is preparing a merge; retry`,
        { region_id: this.regionId },
      );
    }
  }

  #mergingError(): MrkvError {
    return new MrkvError(
      "ServerIsBusy",
      `region ${this.regionId} is merging into region ${this.mergeState?.target.id}; retry`,
      { region_id: this.regionId },
    );
  }

  /**
   * Proposes a command; resolves once it is applied, rejects with the apply error, `NotLeader`
   * or `StaleCommand`. The epoch is checked here and again at apply. Like every method here
   * that proposes, it never throws: failures are rejections (callers on timers rely on it), and
   * the proposal itself happens synchronously, before the first await.
   */
  async propose(cmd: RaftCmd): Promise<void> {
    this.checkProposable(cmd.admin?.type);
    checkEpoch(epochCheckKind(cmd), cmd.header.epoch, this.region.epoch, this.regionId);
    const data = encodeCmd(cmd);
    try {
      this.raw.propose(data);
    } catch (e) {
      if (e instanceof ProposalDroppedError) {
        throw new MrkvError(
          "NotLeader",
          `region ${this.regionId} is transferring its leader; retry`,
          { region_id: this.regionId },
        );
      }
      throw e;
    }
    if (cmd.admin?.type === "PrepareMerge") {
      this.#prepareMerge = { index: this.raw.raft.raftLog.lastIndex(), term: this.raw.raft.term };
    }
    return await this.#track();
  }

  /**
   * Proposes a tagged client write on a follower: Raft forwards it to the leader in the next
   * message batch, and the promise settles when this peer applies the entry (recognized by its
   * tag), i.e. once it is committed on a quorum. On the leader this is {@link propose}.
   */
  async proposeViaLeader(cmd: RaftCmd & { header: { request: RequestTag } }): Promise<void> {
    if (this.isLeader()) return await this.propose(cmd);
    if (this.destroyed) {
      throw new MrkvError("RegionNotFound", `region ${this.regionId} is gone from this store`);
    }
    if (this.mergeState) throw this.#mergingError();
    if (this.leaderId() === 0) {
      throw new MrkvError("NotLeader", `region ${this.regionId} has no known leader`, {
        region_id: this.regionId,
      });
    }
    checkEpoch(epochCheckKind(cmd), cmd.header.epoch, this.region.epoch, this.regionId);
    const tag = cmd.header.request.id.toHex();
    try {
      this.raw.propose(encodeCmd(cmd));
    } catch (e) {
      if (e instanceof ProposalDroppedError) {
        throw new MrkvError("NotLeader", `region ${this.regionId}: ${e.message}`, {
          region_id: this.regionId,
        });
      }
      throw e;
    }
    this.#expireForwarded();
    return await new Promise((resolve, reject) => {
      // A write retried through this follower again replaces the earlier wait: either
      // application of the tag answers it.
      this.#forwarded.get(tag)?.reject(
        unknownOutcome(`write ${tag} was proposed again through peer ${this.meta.id}`),
      );
      this.#forwarded.delete(tag);
      this.#forwarded.set(tag, { resolve, reject, at: Date.now() });
    });
  }

  /** Writes proposed on this follower and not yet applied. */
  forwardedInFlight(): number {
    return this.#forwarded.size;
  }

  /** Forwarded writes whose entry never showed up (lost with a leader change) are dropped. */
  #expireForwarded(): void {
    const cutoff = Date.now() - FORWARDED_TTL_MS;
    for (const [id, f] of this.#forwarded) {
      if (f.at >= cutoff) break; // insertion order is time order
      this.#forwarded.delete(id);
      f.reject(unknownOutcome(`write forwarded by peer ${this.meta.id} was not seen applied`));
    }
  }

  /**
   * Proposes a membership change: a single-step ChangePeer (a Raft `ConfChange`) or a
   * ChangePeerV2 (a `ConfChangeV2`; see conf_change.ts), the command carried in the conf change's
   * context. Raft would turn a change it refuses (another one pending, a joint configuration
   * only the leave may follow, ...) into an empty entry, so it is asked first and a refusal is
   * answered `ServerIsBusy` (nothing was proposed).
   */
  async proposeConfChange(
    cmd: RaftCmd & { admin: ChangePeerRequest | ChangePeerV2Request },
  ): Promise<void> {
    const admin = cmd.admin;
    this.checkProposable(admin.type);
    checkEpoch(admin.type, cmd.header.epoch, this.region.epoch, this.regionId);
    // The leader stays until it has handed leadership over: in one step it may not remove
    // itself, and in a joint change it may only be demoted (it keeps leading, as an outgoing
    // voter, until the configuration is left).
    const removesSelf = admin.type === "ChangePeer"
      ? admin.changeType === "RemoveNode" && admin.peer.id === this.meta.id
      : admin.changes.some((c) => c.changeType === "RemoveNode" && c.peer.id === this.meta.id);
    if (removesSelf) {
      throw new MrkvError(
        "BadRequest",
        `cannot remove leader peer ${this.meta.id} of region ${this.regionId}: transfer leadership first`,
      );
    }
    const context = encodeCmd(cmd);
    const cc: ConfChange | ConfChangeV2 = admin.type === "ChangePeer"
      ? { type: admin.changeType, nodeId: admin.peer.id, context }
      : confChangeV2Of(admin.changes, context);
    const refusal = this.raw.checkConfChange(cc);
    if (refusal !== undefined) {
      throw new MrkvError(
        "ServerIsBusy",
        `region ${this.regionId} cannot take this conf change now: ${refusal}`,
      );
    }
    try {
      this.raw.proposeConfChange(cc);
    } catch (e) {
      if (e instanceof ProposalDroppedError) {
        throw new MrkvError(
          "ServerIsBusy",
          `region ${this.regionId} cannot take a conf change now: ${e.message}`,
        );
      }
      throw e;
    }
    return await this.#track();
  }

  #track(): Promise<void> {
    const index = this.raw.raft.raftLog.lastIndex();
    const term = this.raw.raft.term;
    return new Promise((resolve, reject) => this.#proposals.push({ index, term, resolve, reject }));
  }

  /**
   * Resolves once a linearizable local read is safe (ReadIndex confirmed and applied). A
   * `point` read (one key, read through `Store.appliedValue` first) may go as soon as its index
   * is visible; others wait until the applied data has landed in the engine.
   */
  async read(point = false): Promise<void> {
    this.checkLeader();
    // A merging region's data may already be served, and changed, by the merge target.
    if (this.mergeState) throw this.#mergingError();
    if (this.hasLease()) {
      // Renew ahead of expiry so steady read traffic never falls back to ReadIndex.
      if (this.#leaseUntil - performance.now() < this.leaseMs / 2) this.#renewLease = true;
      this.leaseReads++;
      // The lease makes this leader's commit index a valid read index, but a write may already
      // be acknowledged above what it has applied: a follower answers writes it proposed once
      // it applies them, and followers can hear of a commit before the leader's own apply has
      // landed (appends leave before the leader's write). So wait for apply to reach it.
      const index = this.raw.raft.raftLog.committed;
      if ((point ? this.visibleIndex : this.appliedIndex) >= index) return;
      return await new Promise((resolve, reject) =>
        this.#readsWaitingApply.push({ index, reads: [{ resolve, reject, point }] })
      );
    }
    return await new Promise((resolve, reject) =>
      this.#readsToSend.push({ resolve, reject, point })
    );
  }

  /**
   * Whether this leader may serve a read from its own engine without asking a quorum (TiKV's
   * lease read). A ReadIndex confirmed by a quorum at time T means every voter that answered
   * heard from this leader at or after T; with CheckQuorum they ignore vote requests for an
   * election timeout after that, so no other leader can exist before T + election timeout. The
   * lease ends two ticks earlier, and is void while a leader transfer is in progress (the
   * transferee campaigns at once) or before this leader has applied an entry of its own term
   * (until then its applied state may miss writes a previous leader acknowledged).
   */
  hasLease(): boolean {
    return this.leaseMs > 0 && performance.now() < this.#leaseUntil && this.isLeader() &&
      this.raw.raft.leadTransferee === 0 && this.#appliedTerm === this.raw.raft.term;
  }

  /** Ends the lease (leadership lost or being handed over). */
  invalidateLease(): void {
    this.#leaseUntil = 0;
  }

  /** Transfers leadership to `peerId`; the lease ends first. */
  transferLeader(peerId: number): void {
    this.invalidateLease();
    this.raw.transferLeader(peerId);
  }

  /**
   * Resolves once this follower may serve a linearizable read from its own engine (a follower
   * read): its leader answered a ReadIndex and this peer has applied up to that index. The
   * leader answers at once under its lease (see {@link hasLease}), else after a heartbeat round;
   * either way its commit index then covers every write acknowledged before the read began.
   * Requests are batched like a leader's: one per pass. A lost request fails its reads after
   * {@link FOLLOWER_READ_WAIT_MS} (and a leader change fails them at once, as NotLeader).
   */
  async followerRead(point = false): Promise<void> {
    if (this.isLeader()) return await this.read(point);
    if (this.destroyed) {
      throw new MrkvError("RegionNotFound", `region ${this.regionId} is gone from this store`);
    }
    if (this.mergeState) throw this.#mergingError();
    if (this.leaderId() === 0) {
      throw new MrkvError("NoLeader", `peer ${this.meta.id} knows no leader of ${this.regionId}`);
    }
    return await new Promise((resolve, reject) =>
      this.#readsToSend.push({ resolve, reject, point })
    );
  }

  /**
   * Asked by Raft when a follower's ReadIndex reaches this leader: whether to answer it from the
   * lease. Keeps the lease renewed, as local lease reads do.
   */
  #leaseForFollower(): boolean {
    // Without a lease (none taken yet, or expired) this read takes a heartbeat round, and the
    // next pass starts a lease for those after it.
    if (this.leaseMs === 0) return false;
    if (this.#leaseUntil - performance.now() < this.leaseMs / 2) this.#renewLease = true;
    if (!this.hasLease()) return false;
    this.leaseReadIndexes++;
    return true;
  }

  /** Sends one ReadIndex request for every read queued since the last pass. */
  flushReads(): boolean {
    this.#expireFollowerReads();
    const renew = this.#renewLease && this.#renewalInFlight === undefined && this.isLeader();
    if (this.#readsToSend.length === 0 && !renew) return false;
    this.#renewLease = false;
    const ctx = `${this.meta.id}:${++this.#readSeq}`;
    this.#readsInFlight.set(ctx, this.#readsToSend);
    const leaderTerm = this.isLeader() ? this.raw.raft.term : 0;
    this.#readIssuedAt.set(ctx, { at: performance.now(), leaderTerm });
    if (renew) this.#renewalInFlight = ctx;
    this.#readsToSend = [];
    this.raw.readIndex(new TextEncoder().encode(ctx));
    return true;
  }

  /** Handles a Ready's read states, then releases reads whose index is applied. */
  onReadStates(rd: Ready): void {
    for (const rs of rd.readStates) {
      const ctx = new TextDecoder().decode(rs.requestCtx);
      const reads = this.#readsInFlight.get(ctx);
      if (!reads) continue;
      this.#readsInFlight.delete(ctx);
      const issued = this.#readIssuedAt.get(ctx)!;
      this.#readIssuedAt.delete(ctx);
      if (this.#renewalInFlight === ctx) this.#renewalInFlight = undefined;
      // Only a quorum's answer to this leader's own request vouches for its leadership (a
      // follower's request may have been answered from another leader's lease).
      if (issued.leaderTerm === this.raw.raft.term && this.isLeader()) {
        this.#leaseUntil = Math.max(this.#leaseUntil, issued.at + this.leaseMs);
      }
      this.#readsWaitingApply.push({ index: rs.index, reads });
    }
    this.releaseReads();
  }

  /** Fails a follower's reads whose ReadIndex went unanswered too long (lost on the way). */
  #expireFollowerReads(): void {
    if (this.#readIssuedAt.size === 0) return;
    const old = performance.now() - FOLLOWER_READ_WAIT_MS;
    for (const [ctx, { at, leaderTerm }] of this.#readIssuedAt) {
      if (leaderTerm !== 0 || at > old) continue;
      this.#readIssuedAt.delete(ctx);
      const reads = this.#readsInFlight.get(ctx) ?? [];
      this.#readsInFlight.delete(ctx);
      const e = new MrkvError(
        "NotLeader",
        `the leader of region ${this.regionId} did not answer a follower read in time`,
      );
      for (const r of reads) r.reject(e);
    }
  }

  releaseReads(): void {
    if (this.mergeState) {
      // The merge target may take the range over (and change it) from now on: this region's
      // data answers no read any more (see read()).
      const reads = this.#readsWaitingApply.flatMap((w) => w.reads);
      this.#readsWaitingApply = [];
      for (const r of reads) r.reject(this.#mergingError());
      return;
    }
    const [applied, visible] = [this.appliedIndex, this.visibleIndex];
    this.#readsWaitingApply = this.#readsWaitingApply.filter((w) => {
      if (w.index > visible) return true;
      if (w.index <= applied) {
        for (const r of w.reads) r.resolve();
        return false;
      }
      // Visible, not landed: the reads of one key go, scans wait.
      w.reads = w.reads.filter((r) => {
        if (r.point) r.resolve();
        return !r.point;
      });
      return w.reads.length > 0;
    });
  }

  /** Answers proposals for applied entries; earlier unmatched ones were lost. */
  onApplied(results: readonly EntryResult[]): void {
    for (const r of results) {
      if (r.term > this.#appliedTerm) this.#appliedTerm = r.term;
      if (r.request !== undefined && this.#forwarded.size > 0) {
        const f = this.#forwarded.get(r.request);
        if (f) {
          this.#forwarded.delete(r.request);
          if (r.error) f.reject(r.error);
          else f.resolve();
        }
      }
      while (this.#proposals.length > 0 && this.#proposals[0]!.index <= r.index) {
        const p = this.#proposals.shift()!;
        if (p.index === r.index && p.term === r.term) {
          if (r.error) p.reject(r.error);
          else p.resolve();
        } else {
          p.reject(
            new MrkvError(
              "StaleCommand",
              `proposal at ${p.index} of region ${this.regionId} was lost to a leader change`,
            ),
          );
        }
      }
    }
  }

  /**
   * A snapshot replaced the log up to `index`: proposals at or below it will never be seen at
   * apply. Each may be inside the snapshot or lost, so its outcome is unknown (a retry with the
   * same tag is safe: apply skips it if it was applied).
   */
  onSnapshotInstalled(index: number): void {
    while (this.#proposals.length > 0 && this.#proposals[0]!.index <= index) {
      const p = this.#proposals.shift()!;
      p.reject(
        unknownOutcome(
          `proposal at ${p.index} of region ${this.regionId} was overtaken by a snapshot`,
        ),
      );
    }
    for (const f of this.#forwarded.values()) {
      f.reject(unknownOutcome(`region ${this.regionId} was replaced by a snapshot`));
    }
    this.#forwarded.clear();
  }

  /**
   * Fails every waiting read with `error` and, unless `readsOnly`, every waiting write with an
   * unknown outcome (the peer goes or the store stops: a write it proposed may still commit).
   */
  failPending(error: MrkvError, readsOnly = false): void {
    const all = [
      ...this.#readsToSend,
      ...[...this.#readsInFlight.values()].flat(),
      ...this.#readsWaitingApply.flatMap((w) => w.reads),
    ];
    this.#readsToSend = [];
    this.#readsInFlight.clear();
    this.#readIssuedAt.clear();
    this.#renewalInFlight = undefined;
    this.#readsWaitingApply = [];
    this.invalidateLease();
    for (const r of all) r.reject(error);
    if (readsOnly) return;
    const unknown = unknownOutcome(error.message);
    for (const p of this.#proposals) p.reject(unknown);
    this.#proposals = [];
    for (const f of this.#forwarded.values()) f.reject(unknown);
    this.#forwarded.clear();
  }

  /** Number of proposals and reads waiting (for metrics and tests). */
  pendingCount(): number {
    return this.#proposals.length + this.#forwarded.size + this.#readsToSend.length +
      this.#readsInFlight.size +
      this.#readsWaitingApply.length;
  }

  /** Steps a Raft message from another peer. */
  step(m: Message, from: PeerMeta): void {
    this.#heard(from);
    this.raw.step(m);
    if (from.id === this.raw.raft.lead) this.sleep.leaderHeardAt = performance.now();
  }

  /** Steps a leader's quiesce heartbeat; true if this follower may sleep (raft/quiesce.ts). */
  stepQuiesce(m: Message, from: PeerMeta): boolean {
    this.#heard(from);
    const sleep = this.raw.stepQuiesce(m);
    if (from.id === this.raw.raft.lead) this.sleep.leaderHeardAt = performance.now();
    return sleep;
  }

  #heard(from: PeerMeta): void {
    this.peerCache.set(from.id, from);
    this.lastHeard.set(from.id, Date.now());
  }

  /** Entries this peer still has to apply, for tests. */
  static lastEntry(entries: readonly Entry[]): Entry | undefined {
    return entries[entries.length - 1];
  }
}

/** Encodes a conf change (re-exported for the store's tests). */
export { encodeConfChange };
