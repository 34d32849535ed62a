/**
 * The leader's view of each peer's log (`Progress`), the window of in-flight appends
 * (`Inflights`), and the `ProgressTracker` that holds the configuration (voters and learners),
 * counts votes and computes the quorum-committed index.
 *
 * Membership changes are single-step (one peer at a time), so a configuration is just two
 * disjoint sets; joint consensus is not implemented.
 *
 * @module
 */
import { invariant } from "./errors.ts";

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

/** Outcome of an election so far. */
export type VoteResult = "Pending" | "Lost" | "Won";

/**
 * The configuration and per-peer progress.
 * Invariant: `voters` and `learners` are disjoint and together are the keys of `progress`.
 */
export class ProgressTracker {
  readonly voters = new Set<number>();
  readonly learners = new Set<number>();
  readonly progress = new Map<number, Progress>();
  /** Votes received in the current (pre-)election: true = granted. */
  readonly votes = new Map<number, boolean>();
  readonly maxInflight: number;

  constructor(maxInflight: number) {
    this.maxInflight = maxInflight;
  }

  /** The current configuration, sorted. */
  confState(): { voters: number[]; learners: number[] } {
    return {
      voters: [...this.voters].sort((a, b) => a - b),
      learners: [...this.learners].sort((a, b) => a - b),
    };
  }

  /** Votes (or acks) needed for a majority of the voters. */
  quorum(): number {
    return Math.floor(this.voters.size / 2) + 1;
  }

  /** True when the only voter is `id`'s group of one. */
  isSingleton(): boolean {
    return this.voters.size === 1;
  }

  /**
   * The largest index replicated on a quorum of voters (learners do not count). With no
   * voters at all nothing can be committed, so 0.
   */
  committed(): number {
    const n = this.voters.size;
    if (n === 0) return 0;
    const matches: number[] = [];
    for (const id of this.voters) matches.push(this.progress.get(id)!.match);
    matches.sort((a, b) => b - a);
    return matches[this.quorum() - 1]!;
  }

  /** True when a quorum of voters has been heard from recently (CheckQuorum). */
  quorumActive(): boolean {
    let active = 0;
    for (const id of this.voters) if (this.progress.get(id)!.recentActive) active++;
    return active >= this.quorum();
  }

  /** True when `acks` contains a quorum of voters. */
  hasQuorum(acks: ReadonlySet<number>): boolean {
    let n = 0;
    for (const id of this.voters) if (acks.has(id)) n++;
    return n >= this.quorum();
  }

  resetVotes(): void {
    this.votes.clear();
  }

  /** Records `id`'s vote; only its first vote in an election counts. */
  recordVote(id: number, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  /** Counts the voters' votes. Votes of non-voters are ignored. */
  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters) {
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    const q = this.quorum();
    let result: VoteResult = "Pending";
    const missing = this.voters.size - granted - rejected;
    if (this.voters.size > 0 && granted >= q) result = "Won";
    else if (this.voters.size === 0 || granted + missing < q) result = "Lost";
    return { granted, rejected, result };
  }
}
