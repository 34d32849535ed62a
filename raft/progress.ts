/**
 * The leader's view of each peer's log (`Progress`), the window of in-flight appends
 * (`Inflights`), and the `ProgressTracker` that holds the configuration (voters and learners),
 * counts votes and computes the quorum-committed index.
 *
 * A configuration is voters and learners, or, in joint consensus, two voter sets (incoming and
 * outgoing) whose majorities must both agree.
 *
 * @module
 */
import { confStateOfConfig, type MembershipConfig } from "./confchange.ts";
import { invariant } from "./errors.ts";
import { jointCommitted, jointVoteResult, type VoteResult } from "./quorum.ts";
import type { ConfState } from "./types.ts";

export type { VoteResult } from "./quorum.ts";

/**
 * How the leader replicates to a peer:
 * - `Probe`: the peer's log position is unknown; send one MsgApp at a time and wait for the
 *   answer (or a heartbeat response) before the next.
 * - `Replicate`: the peer accepted our last append; stream appends optimistically, bounded
 *   by the in-flight window.
 * - `Snapshot`: a snapshot is on its way; send nothing until it is reported done.
 */
export type ProgressStateType = "Probe" | "Replicate" | "Snapshot";

/**
 * A bounded FIFO of the last index of each MsgApp sent but not yet acknowledged
 * (flow control: at most `size` appends in flight in `Replicate` state).
 * Invariant: indexes in the window increase from oldest to newest.
 */
export class Inflights {
  readonly size: number;
  #buffer: number[] = [];
  #start = 0;
  #count = 0;

  constructor(size: number) {
    this.size = size;
  }

  /** Records an append ending at `index`. Throws if the window is full. */
  add(index: number): void {
    invariant(!this.full(), "cannot add into a full inflights window");
    let next = this.#start + this.#count;
    if (next >= this.size) next -= this.size;
    this.#buffer[next] = index;
    this.#count++;
  }

  /** Frees every append ending at or before `to` (they were acknowledged). */
  freeLE(to: number): void {
    if (this.#count === 0 || to < this.#buffer[this.#start]!) return;
    let idx = this.#start;
    let i = 0;
    for (; i < this.#count; i++) {
      if (to < this.#buffer[idx]!) break;
      if (++idx >= this.size) idx -= this.size;
    }
    this.#count -= i;
    this.#start = this.#count === 0 ? 0 : idx;
  }

  /** Frees the oldest append (a heartbeat response shows the peer is alive). */
  freeFirstOne(): void {
    if (this.#count > 0) this.freeLE(this.#buffer[this.#start]!);
  }

  full(): boolean {
    return this.#count === this.size;
  }

  count(): number {
    return this.#count;
  }

  reset(): void {
    this.#count = 0;
    this.#start = 0;
  }
}

/**
 * The leader's view of one peer.
 * Invariant: `match < next`; in `Snapshot` state `pendingSnapshot > 0`.
 */
export class Progress {
  /** Highest index known to be replicated on the peer. */
  match = 0;
  /** Index of the next entry to send. */
  next: number;
  state: ProgressStateType = "Probe";
  /** Index of the snapshot in flight (Snapshot state), or 0. */
  pendingSnapshot = 0;
  /**
   * The peer answered recently. CheckQuorum resets it every election timeout; the leader
   * steps down when fewer than a quorum of voters are active.
   */
  recentActive = false;
  /** Probe state: an append was sent and we wait for its answer before sending another. */
  probeSent = false;
  readonly inflights: Inflights;
  isLearner: boolean;

  constructor(opts: { next: number; match?: number; maxInflight: number; isLearner?: boolean }) {
    this.next = opts.next;
    this.match = opts.match ?? 0;
    this.inflights = new Inflights(opts.maxInflight);
    this.isLearner = opts.isLearner ?? false;
  }

  private resetState(state: ProgressStateType): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  /** Back to probing. After a snapshot, probe from just after it (it was applied or failed). */
  becomeProbe(): void {
    if (this.state === "Snapshot") {
      const pending = this.pendingSnapshot;
      this.resetState("Probe");
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState("Probe");
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState("Replicate");
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState("Snapshot");
    this.pendingSnapshot = snapshotIndex;
  }

  /** The peer acknowledged entries up to `n`. Returns true if that is news. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /** Replicate state: entries up to `n` were sent, assume they will be accepted. */
  optimisticUpdate(n: number): void {
    this.next = n + 1;
  }

  /**
   * The peer rejected a MsgApp at index `rejected`; `matchHint` is where the logs may match
   * (from fast backtracking). Returns false for a stale rejection that changes nothing.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === "Replicate") {
      // A rejection of something already matched is stale.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // Probe: only the answer to the append we last sent counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** True when nothing more should be sent now (flow control). */
  isPaused(): boolean {
    switch (this.state) {
      case "Probe":
        return this.probeSent;
      case "Replicate":
        return this.inflights.full();
      case "Snapshot":
        return true;
    }
  }

  toString(): string {
    return `${this.state} match=${this.match} next=${this.next}` +
      (this.isLearner ? " learner" : "") +
      (this.state === "Snapshot" ? ` pendingSnap=${this.pendingSnapshot}` : "");
  }
}

/**
 * The configuration and per-peer progress. In a joint configuration `voters` are the incoming
 * voters and `votersOutgoing` the outgoing ones; every quorum decision (commit, votes,
 * CheckQuorum, ReadIndex) needs a majority of each (see `quorum.ts`).
 *
 * Invariant: the keys of `progress` are exactly `voters ∪ votersOutgoing ∪ learners`;
 * `learners` is disjoint from both voter sets; `learnersNext ⊆ votersOutgoing`; a progress has
 * `isLearner` iff its peer is in `learners`; outside joint consensus `votersOutgoing` and
 * `learnersNext` are empty and `autoLeave` is false.
 */
export class ProgressTracker {
  /** The voters (the incoming voters of a joint configuration). */
  readonly voters = new Set<number>();
  /** Joint configuration only: the outgoing voters. Empty when not joint. */
  readonly votersOutgoing = new Set<number>();
  readonly learners = new Set<number>();
  /** Joint only: outgoing voters that become learners when the joint state is left. */
  readonly learnersNext = new Set<number>();
  /** Joint only: the leader proposes leaving the joint state once it is applied. */
  autoLeave = false;
  readonly progress = new Map<number, Progress>();
  /** Votes received in the current (pre-)election: true = granted. */
  readonly votes = new Map<number, boolean>();
  readonly maxInflight: number;

  constructor(maxInflight: number) {
    this.maxInflight = maxInflight;
  }

  /** True in a joint configuration. */
  isJoint(): boolean {
    return this.votersOutgoing.size > 0;
  }

  /** True when `id` votes in the incoming or the outgoing configuration. */
  isVoter(id: number): boolean {
    return this.voters.has(id) || this.votersOutgoing.has(id);
  }

  /** Every voter of either configuration, sorted (who is asked for votes). */
  voterIds(): number[] {
    return [...new Set([...this.voters, ...this.votersOutgoing])].sort((a, b) => a - b);
  }

  /** A copy of the configuration, for the pure functions of `confchange.ts`. */
  config(): MembershipConfig {
    return {
      voters: new Set(this.voters),
      votersOutgoing: new Set(this.votersOutgoing),
      learners: new Set(this.learners),
      learnersNext: new Set(this.learnersNext),
      autoLeave: this.autoLeave,
    };
  }

  /**
   * Replaces the configuration (the caller keeps `progress` in line with it, see
   * `Raft.switchToConfig`).
   */
  setConfig(c: MembershipConfig): void {
    const fill = (dst: Set<number>, src: ReadonlySet<number>) => {
      dst.clear();
      for (const id of src) dst.add(id);
    };
    fill(this.voters, c.voters);
    fill(this.votersOutgoing, c.votersOutgoing);
    fill(this.learners, c.learners);
    fill(this.learnersNext, c.learnersNext);
    this.autoLeave = c.autoLeave;
  }

  /** The current configuration, sorted; the joint fields appear only in a joint one. */
  confState(): ConfState {
    return confStateOfConfig(this);
  }

  /** Votes (or acks) needed for a majority of the (incoming) voters. */
  quorum(): number {
    return Math.floor(this.voters.size / 2) + 1;
  }

  /** True when the configuration is a single voter (and not joint). */
  isSingleton(): boolean {
    return this.voters.size === 1 && !this.isJoint();
  }

  /**
   * The largest index replicated on a quorum of voters (a majority of both halves of a joint
   * configuration; learners do not count). With no voters at all nothing can be committed, so 0.
   */
  committed(): number {
    return jointCommitted(this.voters, this.votersOutgoing, (id) => this.progress.get(id)!.match);
  }

  /** True when a quorum of voters has been heard from recently (CheckQuorum). */
  quorumActive(): boolean {
    return jointVoteResult(
      this.voters,
      this.votersOutgoing,
      (id) => this.progress.get(id)!.recentActive ? true : undefined,
    ) === "Won";
  }

  /** True when `acks` contains a quorum of voters (ReadIndex confirmation). */
  hasQuorum(acks: ReadonlySet<number>): boolean {
    return jointVoteResult(
      this.voters,
      this.votersOutgoing,
      (id) => acks.has(id) ? true : undefined,
    ) === "Won";
  }

  resetVotes(): void {
    this.votes.clear();
  }

  /** Records `id`'s vote; only its first vote in an election counts. */
  recordVote(id: number, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  /**
   * Counts the voters' votes (granted/rejected over both configurations, for logs) and the
   * outcome: a majority of each configuration must grant. Votes of non-voters are ignored.
   */
  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voterIds()) {
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    const result = jointVoteResult(this.voters, this.votersOutgoing, (id) => this.votes.get(id));
    return { granted, rejected, result };
  }
}
