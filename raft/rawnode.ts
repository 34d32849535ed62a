/**
 * `RawNode`: the application's handle on a raft peer, and the Ready/advance protocol.
 *
 * The application loop (etcd's contract):
 * 1. feed it: `tick()` on a timer, `step(m)` for messages from peers, `propose` etc.;
 * 2. when `hasReady()`, take `rd = ready()`;
 * 3. persist `rd.snapshot`, `rd.entries` and `rd.hardState` (entries before the hard state);
 * 4. send `rd.messages` (only now: they may depend on what step 3 persisted);
 * 5. apply `rd.snapshot` then `rd.committedEntries` (calling `applyConfChange` for
 *    `ConfChange` and `ConfChangeV2` entries), and make `rd.readStates` available to waiting
 *    reads;
 * 6. call `advance(rd)`.
 *
 * A leader counts its own log as replicated as soon as it appends, so `committedEntries` may
 * contain entries that are also in `entries` of the same Ready (a single-voter group commits a
 * proposal in the Ready that carries it). That is safe because step 3 precedes step 5.
 *
 * @module
 */
import { encodeConfChange, encodeConfChangeV2 } from "./codec.ts";
import { type Config, Raft, type Status } from "./raft.ts";
import { quiesce, quiesceBlocker, stepQuiesce, wake } from "./quiesce.ts";
import {
  type ConfChange,
  type ConfChangeV2,
  type ConfState,
  type Entry,
  type HardState,
  isConfChangeV2,
  isHardStateEqual,
  isLocalMessage,
  isResponseMessage,
  type Message,
  newMessage,
  type ReadState,
  type Snapshot,
  type SoftState,
} from "./types.ts";

/** Everything the application must do, handed out by `ready()`. */
export interface Ready {
  /** Present only when leader or role changed since the last Ready. */
  readonly softState?: SoftState;
  /** Present only when term, vote or commit changed since the last Ready: persist it. */
  readonly hardState?: HardState;
  /** Answers to `readIndex` requests. */
  readonly readStates: readonly ReadState[];
  /** Entries to persist (append, truncating any overwritten suffix) before sending. */
  readonly entries: readonly Entry[];
  /** A snapshot to persist and apply. */
  readonly snapshot?: Snapshot;
  /** Committed entries to apply, in order. */
  readonly committedEntries: readonly Entry[];
  /** Messages to send after persisting. */
  readonly messages: readonly Message[];
  /** True when the hard state's term/vote or entries changed: write with fsync. */
  readonly mustSync: boolean;
}

/** Ids and error-free wrappers around `Raft` with the Ready protocol. */
export class RawNode {
  /** The state machine; exported for tests and advanced use. */
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;

  constructor(config: Config) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  /**
   * Advances logical time. A peer that is not a voter in its own configuration (removed, not
   * yet added, or a learner) never campaigns, whatever the ticks.
   */
  tick(): void {
    this.raft.tick();
  }

  /** Starts an election now (pre-vote first when enabled). */
  campaign(): void {
    this.raft.step(newMessage({ type: "MsgHup", from: this.raft.id }));
  }

  /** Proposes data to be appended. Throws `ProposalDroppedError` if it cannot be accepted. */
  propose(data: Uint8Array): void {
    this.raft.step(newMessage({
      type: "MsgProp",
      from: this.raft.id,
      entries: [{ term: 0, index: 0, type: "Normal", data }],
    }));
  }

  /** Proposes a batch of data entries in one step (one append, one broadcast). */
  proposeBatch(datas: readonly Uint8Array[]): void {
    this.raft.step(newMessage({
      type: "MsgProp",
      from: this.raft.id,
      entries: datas.map((data) => ({ term: 0, index: 0, type: "Normal" as const, data })),
    }));
  }

  /**
   * Proposes a membership change: a single-step `ConfChange` (a `ConfChange` entry) or a
   * `ConfChangeV2` (a `ConfChangeV2` entry: several changes, joint consensus; with no changes,
   * the explicit leave of a joint configuration). Once committed, decode it
   * (`decodeConfChangeEntry`) and apply it with `applyConfChange`. The leader turns a change it
   * refuses (another one pending, or invalid for the configuration) into an empty normal entry.
   */
  proposeConfChange(cc: ConfChange | ConfChangeV2): void {
    const entry = isConfChangeV2(cc)
      ? { term: 0, index: 0, type: "ConfChangeV2" as const, data: encodeConfChangeV2(cc) }
      : { term: 0, index: 0, type: "ConfChange" as const, data: encodeConfChange(cc) };
    this.raft.step(newMessage({ type: "MsgProp", from: this.raft.id, entries: [entry] }));
  }

  /**
   * Why the leader would refuse `cc` if it were proposed now (it would become an empty entry),
   * or undefined; see `Raft.confChangeRefusal`. Meaningful on the leader only: check there,
   * then propose, so that a refused change can be reported instead of tracked.
   */
  checkConfChange(cc: ConfChange | ConfChangeV2): string | undefined {
    return this.raft.confChangeRefusal(cc);
  }

  /**
   * Applies a committed conf change of either kind; returns the configuration now in force
   * (persist it with the applied index). Throws `ConfChangeError`, changing nothing, for a
   * `ConfChangeV2` that is invalid for the configuration in force (see `Raft.applyConfChange`).
   */
  applyConfChange(cc: ConfChange | ConfChangeV2): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /**
   * Steps a message received from a peer. Local-only types (MsgHup, MsgBeat, ...) and
   * responses from peers not in the configuration are ignored. May throw
   * `ProposalDroppedError` for a forwarded proposal that cannot be accepted.
   */
  step(m: Message): void {
    if (isLocalMessage(m.type)) return;
    if (isResponseMessage(m.type) && !this.raft.trk.progress.has(m.from)) return;
    this.raft.step(m);
  }

  /** Asks the leader (this peer, or forwarded to it) to hand leadership to `transferee`. */
  transferLeader(transferee: number): void {
    this.raft.step(newMessage({ type: "MsgTransferLeader", from: transferee }));
  }

  /**
   * Requests a linearizable read point; the answer arrives as a `ReadState` with the same
   * `ctx` (which should be unique) in a later Ready. Dropped silently with no leader.
   */
  readIndex(ctx: Uint8Array): void {
    this.raft.step(newMessage({
      type: "MsgReadIndex",
      entries: [{ term: 0, index: 0, type: "Normal", data: ctx }],
    }));
  }

  /** True when `ready()` would return something to do. */
  hasReady(): boolean {
    const r = this.raft;
    r.flushAppends();
    const ss = r.softState();
    if (ss.lead !== this.prevSoftState.lead || ss.raftState !== this.prevSoftState.raftState) {
      return true;
    }
    const hs = r.hardState();
    if (!isHardStateEqual(hs, this.prevHardState)) return true;
    return r.raftLog.hasPendingSnapshot() || r.raftLog.unstable.entries.length > 0 ||
      r.msgs.length > 0 || r.readStates.length > 0 || r.raftLog.hasNextEnts();
  }

  /**
   * Returns what to do now. Messages and read states are handed over (they will not be
   * returned again); entries, snapshot and committed entries are returned again until
   * `advance(rd)` acknowledges them. Call `advance` before the next `ready`.
   */
  ready(): Ready {
    const r = this.raft;
    r.flushAppends();
    const ss = r.softState();
    const hs = r.hardState();
    const softChanged = ss.lead !== this.prevSoftState.lead ||
      ss.raftState !== this.prevSoftState.raftState;
    const hardChanged = !isHardStateEqual(hs, this.prevHardState);
    const entries = r.raftLog.unstableEntries();
    const rd: Ready = {
      softState: softChanged ? ss : undefined,
      hardState: hardChanged ? hs : undefined,
      readStates: r.readStates,
      entries,
      snapshot: r.raftLog.unstable.snapshot,
      committedEntries: r.raftLog.nextEnts(),
      messages: r.msgs,
      mustSync: entries.length > 0 ||
        (hardChanged &&
          (hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote)),
    };
    if (softChanged) this.prevSoftState = ss;
    const lastCommitted = rd.committedEntries.at(-1);
    if (lastCommitted) r.raftLog.applying = Math.max(r.raftLog.applying, lastCommitted.index);
    r.msgs = [];
    r.readStates = [];
    return rd;
  }

  /** The application has persisted, sent and applied `rd`. */
  advance(rd: Ready): void {
    const r = this.raft;
    if (rd.hardState) this.prevHardState = rd.hardState;
    const lastCommitted = rd.committedEntries.at(-1);
    if (lastCommitted) r.appliedTo(lastCommitted.index);
    else if (rd.snapshot) r.appliedTo(rd.snapshot.metadata.index);
    const lastEntry = rd.entries.at(-1);
    if (lastEntry) r.raftLog.stableTo(lastEntry.index, lastEntry.term);
    if (rd.snapshot) r.raftLog.stableSnapTo(rd.snapshot.metadata.index);
  }

  /** The peer's state, with per-peer progress when it leads. */
  status(): Status {
    return this.raft.status();
  }

  /** The transport could not deliver to `id`: the leader falls back to probing it. */
  reportUnreachable(id: number): void {
    this.raft.step(newMessage({ type: "MsgUnreachable", from: id }));
  }

  /** Reports the outcome of sending a snapshot to `id`. */
  reportSnapshot(id: number, status: "Finish" | "Failure"): void {
    this.raft.step(newMessage({ type: "MsgSnapStatus", from: id, reject: status === "Failure" }));
  }

  // --- quiescence (see quiesce.ts): the application stops ticking an idle group ---

  /** Why this peer cannot quiesce its group now (undefined: it can). */
  quiesceBlocker(skip?: (id: number) => boolean): string | undefined {
    return quiesceBlocker(this.raft, skip);
  }

  /** Leader: queues quiesce heartbeats and returns true if the group may stop ticking. */
  quiesce(skip?: (id: number) => boolean): boolean {
    return quiesce(this.raft, skip);
  }

  /** Steps a quiesce heartbeat; true if this follower may stop ticking. */
  stepQuiesce(m: Message): boolean {
    return stepQuiesce(this.raft, m);
  }

  /** Resumes ticking after `idleTicks` (real time) without news of the leader. */
  wake(idleTicks: number): void {
    wake(this.raft, idleTicks);
  }
}
