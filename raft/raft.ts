/**
 * `Raft`: the consensus state machine of one peer. It is driven only by `step(m)` (messages
 * from peers or the application) and `tick()` (logical time), and it answers by appending
 * to `msgs` and changing its log and state; it performs no I/O. `RawNode` wraps it with the
 * Ready/advance protocol.
 *
 * The structure follows etcd's raft (raft.go): a role-specific step function
 * (`stepLeader`, `stepCandidate`, `stepFollower`) behind a common `step` that handles terms,
 * and a role-specific tick function (`tickElection`, `tickHeartbeat`).
 *
 * @module
 */
import { decodeConfChangeV2, encodeConfChangeV2 } from "./codec.ts";
import {
  changeConfig,
  configFromConfState,
  confStateProblem,
  describeChanges,
  isTracked,
  type MembershipConfig,
  trackedIds,
} from "./confchange.ts";
import {
  CompactedError,
  ConfChangeError,
  ConfigError,
  DecodeError,
  invariant,
  ProposalDroppedError,
  SnapshotTemporarilyUnavailableError,
} from "./errors.ts";
import { RaftLog } from "./log.ts";
import { type Logger, seededRandom, SILENT_LOGGER } from "./logger.ts";
import { Progress, ProgressTracker, type VoteResult } from "./progress.ts";
import { ReadOnly } from "./read_only.ts";
import type { Storage } from "./storage.ts";
import {
  bytesEqual,
  type ConfChange,
  type ConfChangeV2,
  type ConfState,
  type Entry,
  type HardState,
  inConfState,
  isConfChangeEntry,
  isConfChangeV2,
  isEmptyHardState,
  type Message,
  type MessageType,
  newMessage,
  type ReadState,
  type Snapshot,
  type SoftState,
  type StateType,
  voteResponseType,
} from "./types.ts";

/** "No peer": no leader known, no vote cast. Peer ids are positive. */
export const NONE = 0;

/** Default for `Config.maxSizePerMsg`: 1 MiB of entries per MsgApp. */
export const DEFAULT_MAX_SIZE_PER_MSG = 1 << 20;
/** Default for `Config.maxInflightMsgs`. */
export const DEFAULT_MAX_INFLIGHT_MSGS = 256;

/**
 * Marks a MsgVote sent because of MsgTimeoutNow (leader transfer): voters grant it even while
 * they believe a leader is alive, since the leader itself asked for it (thesis §3.10).
 */
export const CAMPAIGN_TRANSFER: Uint8Array = new TextEncoder().encode("CampaignTransfer");

/** How a peer starts an election. */
export type CampaignType = "PreElection" | "Election" | "Transfer";

/** Everything needed to start a peer. */
export interface Config {
  /** This peer's id (> 0). */
  id: number;
  /**
   * Ticks a follower waits without hearing from a leader before campaigning. The actual
   * timeout is drawn from [electionTick, 2*electionTick) after each reset (§5.2).
   */
  electionTick: number;
  /** Ticks between a leader's heartbeats. Must be smaller than `electionTick`. */
  heartbeatTick: number;
  /** The stable log. A restarting peer recovers its hard state and entries from it. */
  storage: Storage;
  /** The last applied index (restart); entries up to it are not handed out again. */
  applied?: number;
  /** Maximum bytes of entries per MsgApp (at least one entry is always sent). */
  maxSizePerMsg?: number;
  /** Maximum MsgApps in flight to one peer in Replicate state. */
  maxInflightMsgs?: number;
  /** Leader steps down when a quorum was not heard from in an election timeout. */
  checkQuorum?: boolean;
  /** Run a pre-election before incrementing the term (thesis §9.6). */
  preVote?: boolean;
  /** Uniform random numbers in [0, 1). Default: a PRNG seeded from `id`. */
  rand?: () => number;
  logger?: Logger;
  /** Initial voters, when the storage has no configuration (tests / bootstrap). */
  peers?: number[];
  /** Initial learners, with `peers`. */
  learners?: number[];
  /**
   * Whether the application holds a leader lease right now: a quorum confirmed this leader
   * recently enough that no other leader can exist yet (it needs `checkQuorum`). A ReadIndex
   * from a follower is then answered at once at the commit index, without a heartbeat round.
   * The leader's own ReadIndex requests always take the round: they are how the application
   * confirms, and renews, its lease.
   */
  leaseRead?: () => boolean;
}

/** Per-peer progress as reported by `status()`. */
export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: "Probe" | "Replicate" | "Snapshot";
  readonly isLearner: boolean;
}

/** A snapshot of a peer's state, for monitoring and tests. */
export interface Status {
  readonly id: number;
  readonly hardState: HardState;
  readonly softState: SoftState;
  readonly applied: number;
  /** Leader only: every peer's progress, by id. */
  readonly progress: Readonly<Record<number, ProgressStatus>>;
  /** Leader only: the peer leadership is being transferred to, or 0. */
  readonly leadTransferee: number;
}

function validateConfig(c: Config): void {
  const positive = (n: number | undefined) => n !== undefined && Number.isSafeInteger(n) && n > 0;
  if (!positive(c.id)) throw new ConfigError(`invalid raft config: id must be > 0, got ${c.id}`);
  if (!positive(c.heartbeatTick)) {
    throw new ConfigError(`invalid raft config: heartbeatTick must be > 0, got ${c.heartbeatTick}`);
  }
  if (!positive(c.electionTick) || c.electionTick <= c.heartbeatTick) {
    throw new ConfigError(
      `invalid raft config: electionTick (${c.electionTick}) must be greater than heartbeatTick (${c.heartbeatTick})`,
    );
  }
  if (c.maxInflightMsgs !== undefined && !positive(c.maxInflightMsgs)) {
    throw new ConfigError(`invalid raft config: maxInflightMsgs must be > 0`);
  }
  if (c.maxSizePerMsg !== undefined && !(c.maxSizePerMsg > 0)) {
    throw new ConfigError(`invalid raft config: maxSizePerMsg must be > 0`);
  }
}

/**
 * One raft peer.
 *
 * Invariants: at most one leader per term (a peer votes at most once per term, and `vote` is
 * persisted with `term`); `lead === id` iff `state === "Leader"`; a leader never overwrites
 * or deletes entries in its own log (Leader Append-Only, §5.3).
 */
export class Raft {
  readonly id: number;
  /** Current term. Invariant: never decreases. */
  term = 0;
  /** Peer voted for in `term`, or NONE. */
  vote = NONE;
  readonly raftLog: RaftLog;
  trk: ProgressTracker;
  state: StateType = "Follower";
  /** True when this peer is a learner in its own configuration. */
  isLearner = false;
  /** Messages to send, drained by `RawNode.ready()` (or the test network). */
  msgs: Message[] = [];
  /** Answers to ReadIndex requests made on this peer, drained by `ready()`. */
  readStates: ReadState[] = [];
  /** Current leader, or NONE. */
  lead = NONE;
  /**
   * Leader only: the peer leadership is being transferred to, or NONE. While set, proposals
   * are dropped, so the transferee can catch up with a log that stops growing.
   */
  leadTransferee = NONE;
  /**
   * Leader only: index of the last conf change appended. A new one is refused while
   * `pendingConfIndex > raftLog.applied` (one unapplied conf change at a time).
   */
  pendingConfIndex = 0;
  readOnly = new ReadOnly();
  /**
   * Leader only: proposals were appended but not yet broadcast. Proposals do not send at once;
   * the appends go out when messages are collected, so many proposals between two Readys
   * travel in one MsgApp per follower (batched appends).
   */
  appendPending = false;
  /**
   * ReadIndex requests that arrived before the leader committed an entry of its term: its
   * commit index may still be stale then (§6.4 step 1), so they wait.
   */
  pendingReadIndexMessages: Message[] = [];

  /** Ticks since the last election timeout reset (followers/candidates), or since the
   * last CheckQuorum / transfer check (leaders). */
  electionElapsed = 0;
  /** Leader only: ticks since the last heartbeat. */
  heartbeatElapsed = 0;
  readonly checkQuorum: boolean;
  readonly leaseRead: (() => boolean) | undefined;
  readonly preVote: boolean;
  readonly heartbeatTimeout: number;
  readonly electionTimeout: number;
  /** Drawn from [electionTimeout, 2*electionTimeout) whenever the timer resets. */
  randomizedElectionTimeout = 0;
  readonly maxMsgSize: number;
  readonly maxInflight: number;
  readonly rand: () => number;
  readonly logger: Logger;

  private tickFn: () => void;
  private stepFn: (m: Message) => void;

  constructor(c: Config) {
    validateConfig(c);
    this.id = c.id;
    this.logger = c.logger ?? SILENT_LOGGER;
    this.rand = c.rand ?? seededRandom(c.id);
    this.maxMsgSize = c.maxSizePerMsg ?? DEFAULT_MAX_SIZE_PER_MSG;
    this.maxInflight = c.maxInflightMsgs ?? DEFAULT_MAX_INFLIGHT_MSGS;
    this.checkQuorum = c.checkQuorum ?? false;
    this.leaseRead = c.leaseRead;
    this.preVote = c.preVote ?? false;
    this.heartbeatTimeout = c.heartbeatTick;
    this.electionTimeout = c.electionTick;
    this.raftLog = new RaftLog(c.storage, this.logger);
    this.trk = new ProgressTracker(this.maxInflight);

    const { hardState, confState } = c.storage.initialState();
    let cs: ConfState = confState;
    const fromPeers = (c.peers?.length ?? 0) + (c.learners?.length ?? 0) > 0;
    if (fromPeers) {
      if (cs.voters.length > 0 || cs.learners.length > 0) {
        throw new ConfigError("cannot specify both Config.peers and a configuration in storage");
      }
      cs = { voters: c.peers ?? [], learners: c.learners ?? [] };
    }
    this.applyConfState(cs);
    if (!isEmptyHardState(hardState)) this.loadState(hardState);
    if (c.applied !== undefined && c.applied > 0) this.raftLog.appliedTo(c.applied);
    this.tickFn = () => this.tickElection();
    this.stepFn = (m) => this.stepFollower(m);
    this.becomeFollower(this.term, NONE);
    this.logger.info(
      `raft ${this.id} [peers: ${cs.voters}, learners: ${cs.learners}, term: ${this.term}, ` +
        `commit: ${this.raftLog.committed}, applied: ${this.raftLog.applied}, ` +
        `lastindex: ${this.raftLog.lastIndex()}, lastterm: ${this.raftLog.lastTerm()}]`,
    );
  }

  // --- state ------------------------------------------------------------------------------

  /** Volatile state (leader, role), reported by `Ready.softState` when it changes. */
  softState(): SoftState {
    return { lead: this.lead, raftState: this.state };
  }

  /**
   * What must be durable before messages that depend on it are sent: the term (a peer never
   * goes back in terms), the vote (at most one per term, across restarts) and the commit index
   * (not strictly required, it saves re-learning it).
   */
  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  /**
   * Restores the persisted hard state at startup. The commit index must lie within the log the
   * storage holds: the application persists entries before the hard state that commits them.
   */
  private loadState(hs: HardState): void {
    invariant(
      hs.commit >= this.raftLog.committed && hs.commit <= this.raftLog.lastIndex(),
      () =>
        `${this.id} state.commit ${hs.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`,
    );
    this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  /**
   * Rebuilds the tracker from a configuration (startup and snapshot restore), joint ones
   * included. The configuration comes from the application's storage or a decoded (validated)
   * snapshot, so an invalid one is a broken invariant.
   */
  private applyConfState(cs: ConfState): void {
    const problem = confStateProblem(cs);
    invariant(problem === undefined, () => `${this.id} cannot restore configuration: ${problem}`);
    this.trk = new ProgressTracker(this.maxInflight);
    const cfg = configFromConfState(cs);
    this.trk.setConfig(cfg);
    const next = this.raftLog.lastIndex() + 1;
    for (const id of trackedIds(cfg)) {
      this.trk.progress.set(
        id,
        new Progress({ next, maxInflight: this.maxInflight, isLearner: cfg.learners.has(id) }),
      );
    }
    this.isLearner = this.trk.learners.has(this.id);
    const self = this.trk.progress.get(this.id);
    if (self) self.match = next - 1;
  }

  /**
   * True when this peer may become leader: it is a voter in its own configuration (in either
   * half of a joint one). A removed peer, an unknown peer and a learner never campaign (and
   * ignore MsgTimeoutNow). Unlike etcd, a peer whose received snapshot is not persisted yet may
   * campaign: `restore` already switched its log and configuration to the snapshot's, and the
   * snapshot is persisted in the same Ready as the vote. This lets a transfer that needed a
   * snapshot finish in one exchange.
   */
  promotable(): boolean {
    const pr = this.trk.progress.get(this.id);
    return pr !== undefined && !pr.isLearner;
  }

  // --- sending ----------------------------------------------------------------------------

  /** Queues `m` with `from` and (except for forwarded local requests) `term` filled in. */
  private send(m: Message): void {
    let term = m.term;
    if (
      m.type === "MsgVote" || m.type === "MsgVoteResp" || m.type === "MsgPreVote" ||
      m.type === "MsgPreVoteResp"
    ) {
      // Vote messages carry the term they are about (a pre-vote is for term+1), set by caller.
      invariant(term !== 0, () => `term should be set when sending ${m.type}`);
    } else {
      invariant(term === 0, () => `term should not be set when sending ${m.type} (was ${term})`);
      // Proposals and read requests forwarded to the leader stay local messages (term 0).
      if (m.type !== "MsgProp" && m.type !== "MsgReadIndex") term = this.term;
    }
    this.msgs.push({ ...m, from: this.id, term });
  }

  /** Sends an append (or a snapshot) to `to` if its progress allows. */
  sendAppend(to: number): void {
    this.maybeSendAppend(to, true);
  }

  /**
   * Sends what `to` needs next: entries from `pr.next` (bounded by `maxSizePerMsg`), or a
   * snapshot when those entries were compacted. Returns true if a message was sent. With
   * `sendIfEmpty` false, an append carrying no entries is not sent.
   */
  maybeSendAppend(to: number, sendIfEmpty: boolean): boolean {
    const pr = this.trk.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    // The append is anchored on the entry just before `next`: the follower accepts it only if
    // it holds that entry with that term (log matching, §5.3).
    const prevIndex = pr.next - 1;
    let prevTerm: number;
    let ents: Entry[];
    try {
      prevTerm = this.raftLog.term(prevIndex);
      ents = this.raftLog.entries(pr.next, this.maxMsgSize);
    } catch (e) {
      if (!(e instanceof CompactedError)) throw e;
      // The entries it needs are gone: only a snapshot can catch it up.
      return this.maybeSendSnapshot(to, pr);
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    if (pr.state === "Replicate") {
      if (ents.length > 0) {
        const last = ents[ents.length - 1]!.index;
        pr.optimisticUpdate(last);
        pr.inflights.add(last);
      }
    } else if (pr.state === "Probe") {
      // One probe at a time: wait for its answer.
      pr.probeSent = true;
    }
    this.send(newMessage({
      type: "MsgApp",
      to,
      index: prevIndex,
      logTerm: prevTerm,
      entries: ents,
      commit: this.raftLog.committed,
    }));
    return true;
  }

  /**
   * The entries `to` needs are compacted: send the storage's snapshot instead. If the storage
   * cannot produce one right now, nothing is sent and the progress stays in Probe; a later
   * heartbeat response or append response triggers another attempt.
   */
  private maybeSendSnapshot(to: number, pr: Progress): boolean {
    if (!pr.recentActive) {
      this.logger.debug(`${this.id} ignores sending snapshot to ${to}: not recently active`);
      return false;
    }
    let snapshot: Snapshot;
    try {
      snapshot = this.raftLog.snapshot();
    } catch (e) {
      if (e instanceof SnapshotTemporarilyUnavailableError) {
        this.logger.debug(`${this.id} failed to send snapshot to ${to}: temporarily unavailable`);
        return false;
      }
      throw e;
    }
    invariant(snapshot.metadata.index !== 0, "need a non-empty snapshot");
    this.logger.debug(
      `${this.id} sends snapshot [${snapshot.metadata.index}, ${snapshot.metadata.term}] to ${to} [${pr}]`,
    );
    pr.becomeSnapshot(snapshot.metadata.index);
    this.send(newMessage({ type: "MsgSnap", to, snapshot }));
    return true;
  }

  /** Heartbeat to `to`. The commit sent is capped at the peer's match, which it surely has. */
  private sendHeartbeat(to: number, ctx: Uint8Array | undefined): void {
    const commit = Math.min(this.trk.progress.get(to)!.match, this.raftLog.committed);
    this.send(newMessage({ type: "MsgHeartbeat", to, commit, context: ctx }));
  }

  /** Sends appends to every peer that can take them. */
  bcastAppend(): void {
    this.appendPending = false;
    for (const id of this.trk.progress.keys()) if (id !== this.id) this.sendAppend(id);
  }

  /**
   * Sends the appends that proposals made pending (see `appendPending`). Called before the
   * messages are handed out (`readMessages`, `RawNode.ready`/`hasReady`).
   */
  flushAppends(): void {
    if (!this.appendPending) return;
    this.appendPending = false;
    if (this.state !== "Leader") return;
    for (const id of this.trk.progress.keys()) {
      if (id !== this.id) this.maybeSendAppend(id, false);
    }
  }

  /** Heartbeats to every peer, carrying the newest pending read's context, if any. */
  bcastHeartbeat(): void {
    this.bcastHeartbeatWithCtx(this.readOnly.lastPendingRequestCtx());
  }

  private bcastHeartbeatWithCtx(ctx: Uint8Array | undefined): void {
    for (const id of this.trk.progress.keys()) if (id !== this.id) this.sendHeartbeat(id, ctx);
  }

  // --- commit and append ------------------------------------------------------------------

  /** Advances the commit index to what a quorum of voters has, if that is a current-term entry. */
  maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.trk.committed(), this.term);
  }

  /**
   * Leader: stamps `es` with the current term and the next indexes, appends them, and counts
   * them as replicated on itself (the application persists them before acting on a commit that
   * includes them, see `Ready`).
   */
  private appendEntry(es: readonly Entry[]): void {
    let li = this.raftLog.lastIndex();
    const stamped: Entry[] = new Array(es.length);
    for (let i = 0; i < es.length; i++) {
      const e = es[i]!;
      stamped[i] = { term: this.term, index: ++li, type: e.type, data: e.data };
    }
    li = this.raftLog.append(stamped);
    this.trk.progress.get(this.id)?.maybeUpdate(li);
    this.maybeCommit();
  }

  // --- role changes -----------------------------------------------------------------------

  /**
   * Common to every role change: moves to `term` (forgetting the vote only when the term
   * changes — a vote binds for the whole term), forgets the leader, restarts the timers with a
   * fresh randomized timeout, and resets every peer's progress to "unknown, probe from the end
   * of our log". Leader-only state (transfer, pending conf index, reads, unsent appends) is
   * dropped: it belonged to a leadership that is over.
   */
  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.trk.resetVotes();
    const last = this.raftLog.lastIndex();
    for (const [id, pr] of this.trk.progress) {
      const fresh = new Progress({
        next: last + 1,
        maxInflight: this.maxInflight,
        isLearner: pr.isLearner,
      });
      if (id === this.id) fresh.match = last;
      this.trk.progress.set(id, fresh);
    }
    this.pendingConfIndex = 0;
    this.readOnly = new ReadOnly();
    this.pendingReadIndexMessages = [];
    this.appendPending = false;
  }

  /**
   * Draws the next election timeout from [electionTimeout, 2*electionTimeout). Spreading the
   * timeouts makes split votes unlikely and short-lived (§5.2).
   */
  resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout +
      Math.floor(this.rand() * this.electionTimeout);
  }

  /** Follows `lead` (or nobody yet) at `term`; campaigns when its election timer expires. */
  becomeFollower(term: number, lead: number): void {
    this.stepFn = (m) => this.stepFollower(m);
    this.reset(term);
    this.tickFn = () => this.tickElection();
    this.lead = lead;
    this.state = "Follower";
    this.logger.info(`${this.id} became follower at term ${this.term}`);
  }

  /**
   * Candidate (§5.2): moves to the next term and votes for itself. The new term and vote must
   * be persisted before the vote requests go out (they travel in the same Ready).
   */
  becomeCandidate(): void {
    invariant(this.state !== "Leader", "invalid transition [leader -> candidate]");
    this.stepFn = (m) => this.stepCandidate(m);
    this.reset(this.term + 1);
    this.tickFn = () => this.tickElection();
    this.vote = this.id;
    this.state = "Candidate";
    this.logger.info(`${this.id} became candidate at term ${this.term}`);
  }

  /**
   * Pre-candidate (thesis §9.6): asks whether it could win an election at term+1 without
   * changing its term or vote, so an isolated peer does not inflate terms and depose a leader
   * when it rejoins.
   */
  becomePreCandidate(): void {
    invariant(this.state !== "Leader", "invalid transition [leader -> pre-candidate]");
    this.stepFn = (m) => this.stepCandidate(m);
    this.trk.resetVotes();
    this.tickFn = () => this.tickElection();
    this.lead = NONE;
    this.state = "PreCandidate";
    this.logger.info(`${this.id} became pre-candidate at term ${this.term}`);
  }

  /**
   * Leader of the current term. Only reachable from (pre-)candidate after winning a quorum
   * of votes, so at most one peer becomes leader per term (election safety).
   */
  becomeLeader(): void {
    invariant(this.state !== "Follower", "invalid transition [follower -> leader]");
    this.stepFn = (m) => this.stepLeader(m);
    this.reset(this.term);
    this.tickFn = () => this.tickHeartbeat();
    this.lead = this.id;
    this.state = "Leader";
    const self = this.trk.progress.get(this.id);
    if (self) {
      // The leader's own log is always "replicated" to itself.
      self.becomeReplicate();
      self.recentActive = true;
    }
    // Entries from earlier terms may hold a conf change that is not applied yet; refuse new
    // conf changes until everything up to here is applied (see stepLeader, MsgProp).
    this.pendingConfIndex = this.raftLog.lastIndex();
    // The no-op (§8): committing an entry of its own term commits everything before it, and
    // tells the leader which entries are committed.
    this.appendEntry([{ term: 0, index: 0, type: "Normal", data: new Uint8Array(0) }]);
    this.logger.info(`${this.id} became leader at term ${this.term}`);
  }

  // --- elections --------------------------------------------------------------------------

  /** Starts an election (or pre-election) if allowed. */
  private hup(t: CampaignType): void {
    if (this.state === "Leader") {
      this.logger.debug(`${this.id} ignoring MsgHup because already leader`);
      return;
    }
    if (!this.promotable()) {
      this.logger.warn(`${this.id} is unpromotable and can not campaign`);
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      // Its configuration is about to change: campaigning now could use a stale one.
      this.logger.warn(`${this.id} cannot campaign at term ${this.term}: unapplied conf changes`);
      return;
    }
    this.campaign(t);
  }

  /**
   * True when committed but unapplied entries include a conf change: the configuration this
   * peer would campaign with is about to change, so it waits (etcd does the same).
   */
  private hasUnappliedConfChanges(): boolean {
    if (this.raftLog.applied >= this.raftLog.committed) return false;
    const lo = Math.max(this.raftLog.applied + 1, this.raftLog.firstIndex());
    if (lo > this.raftLog.committed) return false;
    const ents = this.raftLog.slice(lo, this.raftLog.committed + 1, Infinity);
    return ents.some(isConfChangeEntry);
  }

  /**
   * Campaigns: pre-vote or vote requests to every voter (of both halves of a joint
   * configuration, whose majorities must both grant), voting for itself first.
   */
  campaign(t: CampaignType): void {
    if (!this.promotable()) {
      this.logger.warn(`${this.id} is unpromotable; campaign() should have been avoided`);
      return;
    }
    let voteMsg: "MsgVote" | "MsgPreVote";
    let term: number;
    if (t === "PreElection") {
      this.becomePreCandidate();
      voteMsg = "MsgPreVote";
      term = this.term + 1; // the pre-vote asks about the next term, without moving to it
    } else {
      this.becomeCandidate();
      voteMsg = "MsgVote";
      term = this.term;
    }
    if (this.poll(this.id, voteResponseType(voteMsg), true) === "Won") {
      // A single-voter group wins at once.
      if (t === "PreElection") this.campaign("Election");
      else this.becomeLeader();
      return;
    }
    const ids = this.trk.voterIds();
    for (const id of ids) {
      if (id === this.id) continue;
      this.logger.info(
        `${this.id} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}] sent ${voteMsg} request to ${id} at term ${this.term}`,
      );
      this.send(newMessage({
        type: voteMsg,
        to: id,
        term,
        index: this.raftLog.lastIndex(),
        logTerm: this.raftLog.lastTerm(),
        context: t === "Transfer" ? CAMPAIGN_TRANSFER : undefined,
      }));
    }
  }

  /** Records a vote and returns the election's outcome so far. */
  private poll(id: number, t: MessageType, granted: boolean): VoteResult {
    this.logger.info(
      `${this.id} received ${t} ${granted ? "" : "rejection "}from ${id} at term ${this.term}`,
    );
    this.trk.recordVote(id, granted);
    return this.trk.tallyVotes().result;
  }

  // --- step -------------------------------------------------------------------------------

  /**
   * Steps one message. Term handling is common to every role (§5.1): a higher term makes us
   * a follower (except for pre-votes and vote requests inside a leader lease); a lower term is
   * answered or ignored. Then the role's step function handles the message.
   */
  step(m: Message): void {
    if (m.term === 0) {
      // Local message: stepped by the application (or forwarded proposals/reads/transfers,
      // which keep term 0 so that they are not mistaken for stale traffic).
    } else if (m.term > this.term) {
      if (m.type === "MsgVote" || m.type === "MsgPreVote") {
        const force = bytesEqual(m.context, CAMPAIGN_TRANSFER);
        const inLease = this.checkQuorum && this.lead !== NONE &&
          this.electionElapsed < this.electionTimeout;
        if (!force && inLease) {
          // We heard from a leader within the minimum election timeout: ignore the vote, so
          // a peer that was cut off cannot depose a healthy leader (thesis §4.2.3).
          this.logger.info(
            `${this.id} [term: ${this.term}] ignored ${m.type} from ${m.from} at term ${m.term}: lease is not expired`,
          );
          return;
        }
      }
      if (m.type === "MsgPreVote") {
        // Never change term on a pre-vote request.
      } else if (m.type === "MsgPreVoteResp" && !m.reject) {
        // A granted pre-vote is for the future term we asked about; we move to it only if we
        // win the pre-election. A rejection with a higher term means we are stale.
      } else {
        this.logger.info(
          `${this.id} [term: ${this.term}] received ${m.type} with higher term ${m.term} from ${m.from}`,
        );
        const fromLeader = m.type === "MsgApp" || m.type === "MsgHeartbeat" || m.type === "MsgSnap";
        this.becomeFollower(m.term, fromLeader ? m.from : NONE);
      }
    } else if (m.term < this.term) {
      if (
        (this.checkQuorum || this.preVote) && (m.type === "MsgHeartbeat" || m.type === "MsgApp")
      ) {
        // A stale leader (e.g. cut off, then healed) learns the new term from this answer and
        // steps down. Without it, with CheckQuorum/PreVote a peer that bumped its term while
        // cut off could never be re-admitted (etcd issue #5451).
        this.send(newMessage({ type: "MsgAppResp", to: m.from }));
      } else if (m.type === "MsgPreVote") {
        // Tell a stale pre-candidate about our term so that it gives up.
        this.logger.info(
          `${this.id} [term: ${this.term}] rejected ${m.type} from ${m.from} [term: ${m.term}]`,
        );
        this.send(
          newMessage({ type: "MsgPreVoteResp", to: m.from, term: this.term, reject: true }),
        );
      }
      // Anything else from an older term is ignored.
      return;
    }

    switch (m.type) {
      case "MsgHup":
        this.hup(this.preVote ? "PreElection" : "Election");
        return;
      case "MsgVote":
      case "MsgPreVote": {
        // We can vote for the sender if we already did in this term, if we have not voted and
        // know no leader, or (pre-vote) if the request is for a later term.
        const canVote = this.vote === m.from ||
          (this.vote === NONE && this.lead === NONE) ||
          (m.type === "MsgPreVote" && m.term > this.term);
        if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
          this.logger.info(
            `${this.id} [term: ${this.term}] cast ${m.type} for ${m.from} [term: ${m.term}]`,
          );
          // The response carries the request's term (a pre-vote is for a future term).
          this.send(newMessage({ type: voteResponseType(m.type), to: m.from, term: m.term }));
          if (m.type === "MsgVote") {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          this.logger.info(
            `${this.id} [term: ${this.term}] rejected ${m.type} from ${m.from} [term: ${m.term}]`,
          );
          this.send(
            newMessage({
              type: voteResponseType(m.type),
              to: m.from,
              term: this.term,
              reject: true,
            }),
          );
        }
        return;
      }
      default:
        this.stepFn(m);
    }
  }

  /**
   * The leader's step function: local triggers (beat, quorum check, proposals, reads) first,
   * then answers from peers, which all need the sender's progress; a sender without progress
   * (removed, or never a member) is ignored.
   */
  private stepLeader(m: Message): void {
    // Messages that do not need a sender's progress.
    switch (m.type) {
      case "MsgBeat":
        this.bcastHeartbeat();
        return;
      case "MsgCheckQuorum":
        if (!this.trk.quorumActive()) {
          this.logger.warn(`${this.id} stepped down to follower since quorum is not active`);
          this.becomeFollower(this.term, NONE);
          return;
        }
        // Start the next check period: everyone must be heard from again.
        for (const [id, pr] of this.trk.progress) if (id !== this.id) pr.recentActive = false;
        return;
      case "MsgProp":
        this.handleProposal(m);
        return;
      case "MsgReadIndex":
        this.handleReadIndex(m);
        return;
    }

    const pr = this.trk.progress.get(m.from);
    if (pr === undefined) {
      this.logger.debug(`${this.id} no progress available for ${m.from}`);
      return;
    }
    switch (m.type) {
      case "MsgAppResp":
        this.handleAppendResponse(m, pr);
        return;
      case "MsgHeartbeatResp":
        this.handleHeartbeatResponse(m, pr);
        return;
      case "MsgSnapStatus":
        if (pr.state !== "Snapshot") return;
        if (m.reject) {
          // Failed: the snapshot must be sent again (after the next probe).
          pr.pendingSnapshot = 0;
        }
        pr.becomeProbe();
        // Wait for a heartbeat response or MsgAppResp before probing again: the snapshot
        // may still be being applied.
        pr.probeSent = true;
        return;
      case "MsgUnreachable":
        // Optimistic appends were probably lost: fall back to probing.
        if (pr.state === "Replicate") pr.becomeProbe();
        return;
      case "MsgTransferLeader":
        this.handleTransferLeader(m, pr);
        return;
    }
  }

  /**
   * A proposal. Dropped when this leader was removed from the configuration or a leader
   * transfer is in progress. A conf change while another is unapplied (`pendingConfIndex`)
   * becomes an empty normal entry: the log keeps the proposal's slot but it changes nothing.
   */
  private handleProposal(m: Message): void {
    invariant(m.entries.length > 0, `${this.id} stepped empty MsgProp`);
    if (!this.trk.progress.has(this.id)) {
      throw new ProposalDroppedError(
        `cannot propose: ${this.id} was removed from the configuration`,
      );
    }
    if (this.leadTransferee !== NONE) {
      throw new ProposalDroppedError(
        `cannot propose: ${this.id} is transferring leadership to ${this.leadTransferee}`,
      );
    }
    let entries = m.entries;
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i]!;
      if (!isConfChangeEntry(e)) continue;
      const refusal = this.confChangeEntryRefusal(e);
      if (refusal !== undefined) {
        this.logger.info(`${this.id} ignores conf change at ${i}: ${refusal}`);
        if (entries === m.entries) entries = [...m.entries];
        (entries as Entry[])[i] = { ...e, type: "Normal", data: new Uint8Array(0) };
      } else {
        this.pendingConfIndex = this.raftLog.lastIndex() + i + 1;
      }
    }
    this.appendEntry(entries);
    this.appendPending = true;
  }

  /**
   * Why this leader would refuse the conf change `cc` now, or undefined if it would accept it.
   * Refused: any conf change while another is unapplied (`pendingConfIndex`); a single-step
   * `ConfChange` in a joint configuration; a `ConfChangeV2` that breaks a rule of
   * `confchange.ts`. Checking against the configuration in force is exact: with nothing
   * pending, every conf change in the log is applied, so `cc` would apply to this very
   * configuration. Only a leader's answer is meaningful (a follower forwards proposals).
   */
  confChangeRefusal(cc: ConfChange | ConfChangeV2): string | undefined {
    if (!isConfChangeV2(cc)) return this.pendingRefusal() ?? this.singleStepRefusal();
    return this.pendingRefusal() ?? this.changeRefusal(cc);
  }

  /**
   * `confChangeRefusal` for a proposed entry. A single-step entry is not decoded (its content
   * never makes it invalid); a `ConfChangeV2` that does not decode is refused.
   */
  private confChangeEntryRefusal(e: Entry): string | undefined {
    const pending = this.pendingRefusal();
    if (pending !== undefined) return pending;
    if (e.type === "ConfChange") return this.singleStepRefusal();
    try {
      return this.changeRefusal(decodeConfChangeV2(e.data));
    } catch (err) {
      if (err instanceof DecodeError) return err.message;
      throw err;
    }
  }

  private pendingRefusal(): string | undefined {
    if (this.pendingConfIndex <= this.raftLog.applied) return undefined;
    return `pending conf change at ${this.pendingConfIndex} not applied (applied ${this.raftLog.applied})`;
  }

  private singleStepRefusal(): string | undefined {
    if (!this.trk.isJoint()) return undefined;
    return "a single-step ConfChange cannot be made in a joint configuration; leave it first";
  }

  private changeRefusal(cc: ConfChangeV2): string | undefined {
    try {
      changeConfig(this.trk.config(), cc);
    } catch (err) {
      if (err instanceof ConfChangeError) return err.message;
      throw err;
    }
    return undefined;
  }

  /**
   * A follower answered a MsgApp (or a snapshot). A rejection moves `next` back (using the
   * follower's hint) and probes again. An acceptance advances `match`, switches Probe or
   * Snapshot to Replicate, frees in-flight slots, may advance the commit index (then everyone
   * hears of it), and may complete a leader transfer.
   */
  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      this.logger.debug(
        `${this.id} received MsgAppResp(rejected, hint: (index ${m.rejectHint}, term ${m.logTerm})) from ${m.from} for index ${m.index}`,
      );
      // Fast backtracking: skip to where the logs may match, using the follower's hint.
      let nextProbeIdx = m.rejectHint;
      if (m.logTerm > 0) {
        nextProbeIdx = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm).index;
      }
      if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
        if (pr.state === "Replicate") pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const oldPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    if (pr.state === "Probe") {
      pr.becomeReplicate();
    } else if (pr.state === "Snapshot" && pr.match >= pr.pendingSnapshot) {
      // The snapshot got there: resume normal replication after it.
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === "Replicate") {
      pr.inflights.freeLE(m.index);
    }
    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    } else if (oldPaused) {
      // The peer was paused and now has room: send what it misses.
      this.sendAppend(m.from);
    }
    // Keep the pipe full: send more while the window allows, without empty appends.
    while (this.maybeSendAppend(m.from, false)) { /* continue */ }
    // Leader transfer: the transferee just caught up.
    if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) {
      this.logger.info(`${this.id} sent MsgTimeoutNow to ${m.from} after it caught up`);
      this.sendTimeoutNow(m.from);
    }
  }

  /**
   * A heartbeat was acknowledged: the peer is alive (CheckQuorum), may be probed again, is
   * sent what it lacks, and its ack counts toward the ReadIndex round named by the context.
   */
  private handleHeartbeatResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.probeSent = false;
    // The peer is alive: free one slot so a full window cannot stall replication forever.
    if (pr.state === "Replicate" && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.raftLog.lastIndex()) this.sendAppend(m.from);
    if (m.context === undefined || m.context.byteLength === 0) return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (acks === undefined || !this.trk.hasQuorum(acks)) return;
    for (const rs of this.readOnly.advance(m.context)) {
      this.respondToReadIndex(rs.req, rs.index);
    }
  }

  /**
   * Leader transfer (thesis §3.10). The transferee is `m.from`. A request for the transfer
   * already in progress is a no-op; one for another peer replaces it; one for the leader
   * itself cancels it. Learners cannot lead.
   */
  private handleTransferLeader(m: Message, pr: Progress): void {
    if (pr.isLearner) {
      this.logger.debug(`${this.id} ignored transferring leadership to learner ${m.from}`);
      return;
    }
    const transferee = m.from;
    const last = this.leadTransferee;
    if (last !== NONE) {
      if (last === transferee) {
        this.logger.info(`${this.id} already transferring leadership to ${transferee}, ignored`);
        return;
      }
      this.abortLeaderTransfer();
    }
    if (transferee === this.id) {
      this.logger.debug(`${this.id} is already leader; transfer to itself ignored`);
      return;
    }
    // The transfer must finish within one election timeout (checked in tickHeartbeat).
    this.electionElapsed = 0;
    this.leadTransferee = transferee;
    if (pr.match === this.raftLog.lastIndex()) {
      this.sendTimeoutNow(transferee);
    } else {
      // Bring it up to date first; handleAppendResponse sends MsgTimeoutNow when it is. A
      // paused probe is resumed at once: the transfer should not wait for the next heartbeat
      // round, so that it completes within a single exchange of messages.
      if (pr.state === "Probe") pr.probeSent = false;
      this.sendAppend(transferee);
    }
  }

  /** Tells the transferee to campaign now (its log matches ours). */
  private sendTimeoutNow(to: number): void {
    this.send(newMessage({ type: "MsgTimeoutNow", to }));
  }

  /** Forgets a pending leader transfer; proposals are accepted again. */
  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  /**
   * ReadIndex on the leader (§6.4). A single voter answers at once. Otherwise the leader must
   * have committed an entry of its term (else its commit index may be behind), then records the
   * read at its commit index and confirms leadership with a heartbeat round — unless the read
   * came from a follower and the application says a lease is held (`Config.leaseRead`).
   */
  private handleReadIndex(m: Message): void {
    if (this.trk.isSingleton() && this.trk.voters.has(this.id)) {
      this.respondToReadIndex(m, this.raftLog.committed);
      return;
    }
    if (!this.committedEntryInCurrentTerm()) {
      this.pendingReadIndexMessages.push(m);
      return;
    }
    const fromFollower = m.from !== NONE && m.from !== this.id;
    if (fromFollower && this.checkQuorum && this.leaseRead?.()) {
      this.respondToReadIndex(m, this.raftLog.committed);
      return;
    }
    this.startReadIndexRound(m);
  }

  /**
   * Records the read at the current commit index, counts our own ack, and sends a heartbeat
   * round carrying the read's context; a quorum of acks proves we were still the leader when
   * the read arrived, so no newer leader can have committed anything we lack.
   */
  private startReadIndexRound(m: Message): void {
    const ctx = m.entries[0]!.data;
    this.readOnly.addRequest(this.raftLog.committed, m);
    this.readOnly.recvAck(this.id, ctx);
    this.bcastHeartbeatWithCtx(ctx);
  }

  /**
   * True once this leader has committed an entry of its own term (its no-op). Only then is its
   * commit index known to be at least every earlier leader's (§6.4).
   */
  private committedEntryInCurrentTerm(): boolean {
    return this.raftLog.zeroTermOnCompacted(this.raftLog.committed) === this.term;
  }

  /** Starts the rounds for reads deferred until the first own-term commit. */
  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const pending = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of pending) this.startReadIndexRound(m);
  }

  /** Answers a read: locally as a ReadState, or to the follower that forwarded it. */
  private respondToReadIndex(req: Message, index: number): void {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index, requestCtx: req.entries[0]!.data });
      return;
    }
    this.send(newMessage({ type: "MsgReadIndexResp", to: req.from, index, entries: req.entries }));
  }

  /**
   * The step function of candidates and pre-candidates: count votes, and yield to any leader
   * of the current term that makes itself known (by append, heartbeat or snapshot).
   */
  private stepCandidate(m: Message): void {
    // Only responses of our kind count: a pre-candidate ignores stale vote responses.
    const myVoteResp = this.state === "PreCandidate" ? "MsgPreVoteResp" : "MsgVoteResp";
    switch (m.type) {
      case "MsgProp":
        throw new ProposalDroppedError(`cannot propose: ${this.id} is a ${this.state}, no leader`);
      case "MsgApp":
        this.becomeFollower(m.term, m.from); // a leader exists at our term
        this.handleAppendEntries(m);
        return;
      case "MsgHeartbeat":
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case "MsgSnap":
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case "MsgTimeoutNow":
        this.logger.debug(`${this.id} ignored MsgTimeoutNow from ${m.from}: it is a ${this.state}`);
        return;
      case "MsgPreVoteResp":
      case "MsgVoteResp": {
        if (m.type !== myVoteResp) return;
        const res = this.poll(m.from, m.type, !m.reject);
        if (res === "Won") {
          if (this.state === "PreCandidate") {
            this.campaign("Election");
          } else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (res === "Lost") {
          // A rejected pre-vote carries the rejecter's term; moving to it is harmless.
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
    }
  }

  /**
   * The follower's step function: accept the leader's appends, heartbeats and snapshots
   * (each resets the election timer), forward proposals, transfer requests and reads to the
   * leader, and campaign on MsgTimeoutNow.
   */
  private stepFollower(m: Message): void {
    switch (m.type) {
      case "MsgProp":
        if (this.lead === NONE) {
          throw new ProposalDroppedError(
            `cannot propose: ${this.id} knows no leader at term ${this.term}`,
          );
        }
        this.send({ ...m, to: this.lead });
        return;
      case "MsgApp":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case "MsgHeartbeat":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case "MsgSnap":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case "MsgTransferLeader":
        if (this.lead === NONE) {
          this.logger.info(
            `${this.id} no leader at term ${this.term}; dropping leader transfer msg`,
          );
          return;
        }
        // Forward to the leader, keeping `from` (the transferee).
        this.msgs.push({ ...m, to: this.lead, term: 0 });
        return;
      case "MsgTimeoutNow":
        // The leader asked us to take over: campaign at once, skipping pre-vote and the
        // lease check (voters see CAMPAIGN_TRANSFER). A non-member or learner refuses.
        this.logger.info(`${this.id} [term ${this.term}] received MsgTimeoutNow from ${m.from}`);
        this.hup("Transfer");
        return;
      case "MsgReadIndex":
        if (this.lead === NONE) {
          this.logger.info(`${this.id} no leader at term ${this.term}; dropping index reading msg`);
          return;
        }
        this.send({ ...m, to: this.lead });
        return;
      case "MsgReadIndexResp":
        if (m.entries.length !== 1) return;
        this.readStates.push({ index: m.index, requestCtx: m.entries[0]!.data });
        return;
    }
  }

  /**
   * The consistency check of §5.3: accept the entries if our log holds the predecessor
   * (`m.index`, `m.logTerm`), else reject with a hint for fast backtracking. The answer's index
   * is the last entry known to match, which the leader records as our `match`.
   */
  private handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      // Everything up to our commit index already matches; tell the leader where we are.
      this.send(newMessage({ type: "MsgAppResp", to: m.from, index: this.raftLog.committed }));
      return;
    }
    const lastNew = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send(newMessage({ type: "MsgAppResp", to: m.from, index: lastNew }));
      return;
    }
    // Reject, with a hint for fast backtracking: the last index at or below m.index whose
    // term is at most m.logTerm. Every entry after it surely conflicts (or is missing).
    const hint = this.raftLog.findConflictByTerm(
      Math.min(m.index, this.raftLog.lastIndex()),
      m.logTerm,
    );
    this.logger.debug(
      `${this.id} rejected MsgApp [logterm: ${m.logTerm}, index: ${m.index}] from ${m.from}`,
    );
    this.send(newMessage({
      type: "MsgAppResp",
      to: m.from,
      index: m.index,
      reject: true,
      rejectHint: hint.index,
      logTerm: hint.term,
    }));
  }

  /**
   * A heartbeat carries a commit index the leader knows we hold (capped at our match), so it
   * is safe to adopt; its context (a ReadIndex round) is echoed back.
   */
  private handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit);
    this.send(newMessage({ type: "MsgHeartbeatResp", to: m.from, context: m.context }));
  }

  /** Installs a leader's snapshot if it is news, and reports where our log now ends. */
  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (s === undefined) return;
    if (this.restore(s)) {
      this.logger.info(
        `${this.id} restored snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`,
      );
      this.send(newMessage({ type: "MsgAppResp", to: m.from, index: this.raftLog.lastIndex() }));
    } else {
      this.logger.info(
        `${this.id} ignored snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`,
      );
      this.send(newMessage({ type: "MsgAppResp", to: m.from, index: this.raftLog.committed }));
    }
  }

  /**
   * Installs a snapshot if it is news: not older than the commit index, and not already
   * matched by our log (then the snapshot only moves the commit index). A snapshot whose
   * configuration does not contain this peer is refused.
   */
  restore(s: Snapshot): boolean {
    const meta = s.metadata;
    if (meta.index <= this.raftLog.committed) return false;
    if (this.state !== "Follower") {
      // Defensive: only a follower installs snapshots.
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    const cs = meta.confState;
    if (!inConfState(cs, this.id)) {
      this.logger.warn(`${this.id} attempted to restore snapshot but it is not in the ConfState`);
      return false;
    }
    if (this.raftLog.matchTerm(meta.index, meta.term)) {
      // Our log already has the snapshot's last entry: fast-forward the commit index only.
      this.raftLog.commitTo(meta.index);
      return false;
    }
    if (this.raftLog.applying > this.raftLog.applied) {
      // The application is still applying committed entries it took in a Ready. Switching
      // configuration under it now would make it apply their conf changes to the snapshot's
      // configuration. Refuse for now; the leader sends the snapshot again later.
      this.logger.info(
        `${this.id} defers snapshot ${meta.index}: entries up to ${this.raftLog.applying} are being applied`,
      );
      return false;
    }
    this.raftLog.restore(s);
    this.applyConfState(cs);
    return true;
  }

  // --- ticks ------------------------------------------------------------------------------

  /** Advances logical time by one tick. */
  tick(): void {
    this.tickFn();
  }

  /** Followers and candidates: campaign when the randomized election timeout passes. */
  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step(newMessage({ type: "MsgHup", from: this.id }));
    }
  }

  /**
   * Leaders: heartbeat every `heartbeatTimeout`; every `electionTimeout`, check the quorum
   * (if enabled) and abandon a leader transfer that has not finished.
   */
  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(newMessage({ type: "MsgCheckQuorum", from: this.id }));
      if (this.state === "Leader" && this.leadTransferee !== NONE) {
        this.logger.info(
          `${this.id} abandons leader transfer to ${this.leadTransferee}: timed out`,
        );
        this.abortLeaderTransfer();
      }
    }
    if (this.state !== "Leader") return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(newMessage({ type: "MsgBeat", from: this.id }));
      // A leave the leader could not propose when it applied the joint configuration (a
      // transfer was in progress then) is retried here rather than waiting for more entries.
      this.maybeAutoLeave();
    }
  }

  // --- membership -------------------------------------------------------------------------

  /**
   * Applies a committed conf change (the application calls this when it applies the entry)
   * and returns the new configuration.
   *
   * A single-step `ConfChange` keeps its historical meaning: adding an existing member is a
   * no-op, AddNode on a learner promotes it, AddLearnerNode on a voter is ignored, and removing
   * the last voter is allowed. It is refused in a joint configuration.
   *
   * A `ConfChangeV2` follows the rules of `confchange.ts` (enter or leave a joint
   * configuration, or change at most one voter in one step; AddLearnerNode on a voter demotes
   * it). Throws `ConfChangeError`, with the configuration unchanged, when the change is not
   * valid for the configuration in force; a leader never proposes such a change, so the
   * application may treat the entry as a no-op.
   */
  applyConfChange(cc: ConfChange | ConfChangeV2): ConfState {
    if (isConfChangeV2(cc)) {
      const { config, fresh } = changeConfig(this.trk.config(), cc);
      this.logger.info(
        `${this.id} applies conf change ${cc.transition} [${describeChanges(cc.changes)}]`,
      );
      return this.switchToConfig(config, fresh);
    }
    if (this.trk.isJoint()) {
      throw new ConfChangeError(
        `cannot apply single-step ${cc.type}(${cc.nodeId}) in a joint configuration`,
      );
    }
    switch (cc.type) {
      case "AddNode":
        this.addNode(cc.nodeId, false);
        break;
      case "AddLearnerNode":
        this.addNode(cc.nodeId, true);
        break;
      case "RemoveNode":
        this.removeNode(cc.nodeId);
        break;
    }
    return this.trk.confState();
  }

  /**
   * Single-step: adds `id` as a voter or learner, or promotes a learner. Invariant kept: voters
   * and learners stay disjoint and are exactly the peers with progress. Not for joint
   * configurations (use a `ConfChangeV2`).
   */
  addNode(id: number, isLearner: boolean): void {
    invariant(!this.trk.isJoint(), `${this.id} addNode(${id}) in a joint configuration`);
    const pr = this.trk.progress.get(id);
    if (pr === undefined) {
      const np = new Progress({
        next: this.raftLog.lastIndex() + 1,
        maxInflight: this.maxInflight,
        isLearner,
      });
      // A new peer has not been heard from yet, but counts as active so that CheckQuorum does
      // not step down the leader right after adding it.
      np.recentActive = true;
      if (id === this.id) np.match = this.raftLog.lastIndex();
      this.trk.progress.set(id, np);
      (isLearner ? this.trk.learners : this.trk.voters).add(id);
    } else if (!isLearner && pr.isLearner) {
      // Promote a learner.
      pr.isLearner = false;
      this.trk.learners.delete(id);
      this.trk.voters.add(id);
    } else {
      // Already a member (or asked to demote a voter, which single-step changes do not do).
      this.logger.info(`${this.id} ignored adding ${id} (learner: ${isLearner}): already a member`);
      return;
    }
    if (id === this.id) this.isLearner = isLearner;
    this.onConfigChanged();
  }

  /**
   * Single-step: removes a peer. Its progress is dropped, so the commit index is recomputed at
   * once with the smaller quorum; a transfer to it is aborted; a leader that removed itself
   * steps down.
   */
  removeNode(id: number): void {
    invariant(!this.trk.isJoint(), `${this.id} removeNode(${id}) in a joint configuration`);
    if (!this.trk.progress.has(id)) return;
    this.trk.progress.delete(id);
    this.trk.voters.delete(id);
    this.trk.learners.delete(id);
    if (this.state === "Leader" && this.leadTransferee === id) this.abortLeaderTransfer();
    if (id === this.id && this.state === "Leader") {
      this.logger.info(`${this.id} removed itself from the configuration; stepping down`);
      this.becomeFollower(this.term, NONE);
      return;
    }
    this.onConfigChanged();
  }

  /**
   * Switches to a configuration computed by `confchange.ts`: progress is dropped for peers
   * that left, created for `fresh` ones (recently active, so that CheckQuorum does not count
   * them as silent before they could answer), and kept for the others.
   *
   * A leader that is no longer a voter of either half (removed, or demoted to learner) steps
   * down, as in etcd; until the joint state is left it is still an outgoing voter and keeps
   * leading, which is what lets it commit the leave entry. A pending transfer to a peer that is
   * no longer a voter is aborted.
   */
  private switchToConfig(cfg: MembershipConfig, fresh: ReadonlySet<number>): ConfState {
    const last = this.raftLog.lastIndex();
    for (const id of [...this.trk.progress.keys()]) {
      if (!isTracked(cfg, id)) this.trk.progress.delete(id);
    }
    for (const id of trackedIds(cfg)) {
      let pr = this.trk.progress.get(id);
      if (pr === undefined || fresh.has(id)) {
        // A new peer is probed at our last entry, so that an append (or a snapshot, when its
        // log is empty) goes out at once instead of at the next heartbeat.
        pr = new Progress({
          next: id === this.id ? last + 1 : Math.max(last, 1),
          maxInflight: this.maxInflight,
        });
        pr.recentActive = true;
        if (id === this.id) pr.match = last;
        this.trk.progress.set(id, pr);
      }
      pr.isLearner = cfg.learners.has(id);
    }
    this.trk.setConfig(cfg);
    this.isLearner = this.trk.learners.has(this.id);
    const cs = this.trk.confState();
    if (this.state !== "Leader") return cs;
    if (!this.trk.isVoter(this.id)) {
      this.logger.info(`${this.id} is no longer a voter of the configuration; stepping down`);
      this.becomeFollower(this.term, NONE);
      return cs;
    }
    if (this.leadTransferee !== NONE && !this.trk.isVoter(this.leadTransferee)) {
      this.abortLeaderTransfer();
    }
    this.onConfigChanged();
    return cs;
  }

  /**
   * Leader in a joint configuration to be left automatically: once the entry that entered it
   * is applied (and no other conf change is pending), propose the leave, an empty
   * `ConfChangeV2`. A refusal (say, a leader transfer in progress) is retried at the next
   * apply or tick; a new leader does the same once it has applied its predecessors' entries.
   */
  private maybeAutoLeave(): void {
    if (
      this.state !== "Leader" || !this.trk.autoLeave ||
      this.pendingConfIndex > this.raftLog.applied
    ) return;
    const data = encodeConfChangeV2({ transition: "Auto", changes: [] });
    try {
      this.step(newMessage({
        type: "MsgProp",
        from: this.id,
        entries: [{ term: 0, index: 0, type: "ConfChangeV2", data }],
      }));
      this.logger.info(`${this.id} proposes leaving the joint configuration`);
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e;
      this.logger.info(`${this.id} cannot leave the joint configuration yet: ${e.message}`);
    }
  }

  /**
   * The application applied every entry through `index` (`RawNode.advance`). A leader may now
   * leave a joint configuration it has just applied.
   */
  appliedTo(index: number): void {
    this.raftLog.appliedTo(index);
    this.maybeAutoLeave();
  }

  /**
   * After a membership change on the leader: the quorum changed, so the commit index may move
   * (a removal can commit entries at once); otherwise make sure new peers get appends.
   */
  private onConfigChanged(): void {
    // With no voters left nothing can be committed or transferred.
    if (this.state !== "Leader" || this.trk.voters.size === 0) return;
    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    } else {
      for (const id of this.trk.progress.keys()) {
        if (id !== this.id) this.maybeSendAppend(id, false);
      }
    }
  }

  // --- monitoring -------------------------------------------------------------------------

  /** A copy of the peer's state for monitoring; progress is only known to a leader. */
  status(): Status {
    const progress: Record<number, ProgressStatus> = {};
    if (this.state === "Leader") {
      for (const [id, pr] of this.trk.progress) {
        progress[id] = { match: pr.match, next: pr.next, state: pr.state, isLearner: pr.isLearner };
      }
    }
    return {
      id: this.id,
      hardState: this.hardState(),
      softState: this.softState(),
      applied: this.raftLog.applied,
      progress,
      leadTransferee: this.leadTransferee,
    };
  }

  /** Drains the queued messages, flushing pending appends first (tests, test network). */
  readMessages(): Message[] {
    this.flushAppends();
    const msgs = this.msgs;
    this.msgs = [];
    return msgs;
  }
}
