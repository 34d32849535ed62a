/**
 * The data types raft speaks: log entries, messages, hard/soft state, configurations and
 * snapshots. All of them are readonly plain objects so that they can be encoded as they are
 * (see `codec.ts`) and shared between the core and the application without defensive copies.
 *
 * @module
 */

/** Every kind of message the core steps or emits; names follow etcd's `raftpb`. */
export type MessageType =
  | "MsgHup"
  | "MsgBeat"
  | "MsgProp"
  | "MsgApp"
  | "MsgAppResp"
  | "MsgVote"
  | "MsgVoteResp"
  | "MsgPreVote"
  | "MsgPreVoteResp"
  | "MsgSnap"
  | "MsgHeartbeat"
  | "MsgHeartbeatResp"
  | "MsgUnreachable"
  | "MsgSnapStatus"
  | "MsgCheckQuorum"
  | "MsgTransferLeader"
  | "MsgTimeoutNow"
  | "MsgReadIndex"
  | "MsgReadIndexResp";

/** All message types, in a fixed order: the codec uses the position as the wire code. */
export const MESSAGE_TYPES: readonly MessageType[] = [
  "MsgHup",
  "MsgBeat",
  "MsgProp",
  "MsgApp",
  "MsgAppResp",
  "MsgVote",
  "MsgVoteResp",
  "MsgPreVote",
  "MsgPreVoteResp",
  "MsgSnap",
  "MsgHeartbeat",
  "MsgHeartbeatResp",
  "MsgUnreachable",
  "MsgSnapStatus",
  "MsgCheckQuorum",
  "MsgTransferLeader",
  "MsgTimeoutNow",
  "MsgReadIndex",
  "MsgReadIndexResp",
];

/**
 * The kind of a log entry: application data, an encoded single-step `ConfChange`, or an encoded
 * `ConfChangeV2` (several changes at once, joint consensus).
 */
export type EntryType = "Normal" | "ConfChange" | "ConfChangeV2";

/**
 * One log entry. Invariant: within a log, indexes are consecutive and terms never decrease.
 * `data` of a `ConfChange` entry is `encodeConfChange(cc)`, of a `ConfChangeV2` entry
 * `encodeConfChangeV2(cc)`; an empty `Normal` entry is the leader's no-op (or a conf change the
 * leader refused, see `Raft.handleProposal`).
 */
export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** What must be on stable storage before any message that depends on it is sent. */
export interface HardState {
  readonly term: number;
  /** The peer voted for in `term`, 0 for none. */
  readonly vote: number;
  /** Highest index known to be committed. */
  readonly commit: number;
}

/**
 * A membership configuration. Outside joint consensus it is two disjoint sets, `voters` and
 * `learners`, and the three joint fields are absent. In a joint configuration (Raft thesis
 * §4.3, C_old,new) `voters` is the incoming configuration and `votersOutgoing` the outgoing one:
 * every decision needs a majority of each.
 *
 * Invariants (checked by `confStateProblem`): ids are positive and listed once per field;
 * `learners` is disjoint from `voters` and `votersOutgoing`; `learnersNext` is a subset of
 * `votersOutgoing` disjoint from `voters`; when not joint (`votersOutgoing` absent or empty),
 * `learnersNext` is empty and `autoLeave` false; a joint configuration has incoming voters.
 */
export interface ConfState {
  /** Voters (the incoming voters of a joint configuration). */
  readonly voters: readonly number[];
  readonly learners: readonly number[];
  /** Joint only: the outgoing voters, which keep voting until the joint state is left. */
  readonly votersOutgoing?: readonly number[];
  /**
   * Joint only: outgoing voters that become learners when the joint state is left (a voter
   * demoted in the change that entered it cannot be a voter and a learner at once).
   */
  readonly learnersNext?: readonly number[];
  /** Joint only: the leader leaves the joint state on its own once it is applied. */
  readonly autoLeave?: boolean;
}

/**
 * True when `id` has a place in `cs`: a voter of either half, or a learner (a peer in
 * `learnersNext` is an outgoing voter, so it is covered).
 */
export function inConfState(cs: ConfState, id: number): boolean {
  return cs.voters.includes(id) || cs.learners.includes(id) ||
    (cs.votersOutgoing ?? []).includes(id);
}

/** True when `cs` is a joint configuration (it has outgoing voters). */
export function isJointConfState(cs: ConfState): boolean {
  return (cs.votersOutgoing?.length ?? 0) > 0;
}

/** Where a snapshot sits in the log, and the configuration in force at that index. */
export interface SnapshotMetadata {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

/** A state-machine image replacing every entry up to `metadata.index`. */
export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: Uint8Array;
}

/**
 * A raft message. Fields a type does not use are zero/empty. Messages with `term == 0` are
 * local (stepped by the application, e.g. `MsgHup`, `MsgProp`, `MsgTransferLeader`).
 */
export interface Message {
  readonly type: MessageType;
  readonly to: number;
  readonly from: number;
  readonly term: number;
  /** MsgApp: term of the entry at `index`; MsgAppResp reject: term at `rejectHint`. */
  readonly logTerm: number;
  readonly index: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
  readonly snapshot?: Snapshot;
  readonly reject: boolean;
  readonly rejectHint: number;
  readonly context?: Uint8Array;
}

/**
 * The kind of one membership change. `AddNode` on a learner promotes it. `AddLearnerNode` on a
 * voter demotes it inside a `ConfChangeV2` and is ignored in a single-step `ConfChange`.
 */
export type ConfChangeType = "AddNode" | "AddLearnerNode" | "RemoveNode";

/** A single-step membership change, proposed through the log and applied by the application. */
export interface ConfChange {
  readonly type: ConfChangeType;
  readonly nodeId: number;
  readonly context?: Uint8Array;
}

/** One change inside a `ConfChangeV2`. */
export interface ConfChangeSingle {
  readonly type: ConfChangeType;
  readonly nodeId: number;
}

/**
 * How a `ConfChangeV2` is carried out:
 * - `Auto`: one change that alters at most one voter is applied in a single step; anything
 *   else enters a joint configuration that the leader leaves on its own (like `JointImplicit`);
 * - `JointImplicit`: always enter a joint configuration; the leader proposes the leave as soon
 *   as the entering entry is applied;
 * - `JointExplicit`: always enter a joint configuration and stay in it until the application
 *   proposes the leave (an empty `ConfChangeV2`).
 */
export type ConfChangeTransition = "Auto" | "JointImplicit" | "JointExplicit";

/**
 * A membership change of any size (etcd's ConfChangeV2). Its `changes` apply in order. With no
 * changes (and transition `Auto`) it asks to leave the joint configuration.
 */
export interface ConfChangeV2 {
  readonly transition: ConfChangeTransition;
  readonly changes: readonly ConfChangeSingle[];
  readonly context?: Uint8Array;
}

/** Tells the two kinds of conf change apart. */
export function isConfChangeV2(cc: ConfChange | ConfChangeV2): cc is ConfChangeV2 {
  return "changes" in cc;
}

/** True for the entry types that carry a conf change. */
export function isConfChangeEntry(e: Entry): boolean {
  return e.type === "ConfChange" || e.type === "ConfChangeV2";
}

/** The role a peer plays. */
export type StateType = "Follower" | "PreCandidate" | "Candidate" | "Leader";

/** Volatile state, reported in a `Ready` when it changes; never needs persisting. */
export interface SoftState {
  readonly lead: number;
  readonly raftState: StateType;
}

/** The answer to a `readIndex(ctx)` request: reads are linearizable once `index` is applied. */
export interface ReadState {
  readonly index: number;
  readonly requestCtx: Uint8Array;
}

/** An empty hard state: a peer that has never voted nor seen a term. */
export const EMPTY_HARD_STATE: HardState = { term: 0, vote: 0, commit: 0 };

/** An empty snapshot (index 0). */
export const EMPTY_SNAPSHOT: Snapshot = {
  metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } },
  data: new Uint8Array(0),
};

const EMPTY_BYTES = new Uint8Array(0);
const NO_ENTRIES: readonly Entry[] = Object.freeze([]);

/** Builds a message, filling every field not given with its zero value. */
export function newMessage(
  m: Partial<Message> & Pick<Message, "type">,
): Message {
  return {
    type: m.type,
    to: m.to ?? 0,
    from: m.from ?? 0,
    term: m.term ?? 0,
    logTerm: m.logTerm ?? 0,
    index: m.index ?? 0,
    entries: m.entries ?? NO_ENTRIES,
    commit: m.commit ?? 0,
    snapshot: m.snapshot,
    reject: m.reject ?? false,
    rejectHint: m.rejectHint ?? 0,
    context: m.context,
  };
}

/** Builds an entry; `type` defaults to `Normal` and `data` to empty bytes. */
export function newEntry(e: Partial<Entry> & Pick<Entry, "term" | "index">): Entry {
  return { term: e.term, index: e.index, type: e.type ?? "Normal", data: e.data ?? EMPTY_BYTES };
}

/** True when two hard states are equal field by field. */
export function isHardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** True for a hard state that carries nothing. */
export function isEmptyHardState(hs: HardState): boolean {
  return isHardStateEqual(hs, EMPTY_HARD_STATE);
}

/** True for a snapshot at index 0, which stands for "no snapshot". */
export function isEmptySnapshot(s: Snapshot | undefined): boolean {
  return s === undefined || s.metadata.index === 0;
}

/**
 * Messages that only the local application may step (never accepted from the network):
 * they drive timers, report transport outcomes, or start an election.
 */
export function isLocalMessage(t: MessageType): boolean {
  return t === "MsgHup" || t === "MsgBeat" || t === "MsgUnreachable" ||
    t === "MsgSnapStatus" || t === "MsgCheckQuorum";
}

/** Responses: stepping one from a peer not in the configuration is pointless and ignored. */
export function isResponseMessage(t: MessageType): boolean {
  return t === "MsgAppResp" || t === "MsgVoteResp" || t === "MsgHeartbeatResp" ||
    t === "MsgUnreachable" || t === "MsgPreVoteResp";
}

/** The response type matching a vote request type. */
export function voteResponseType(t: "MsgVote" | "MsgPreVote"): "MsgVoteResp" | "MsgPreVoteResp" {
  return t === "MsgVote" ? "MsgVoteResp" : "MsgPreVoteResp";
}

/** Approximate encoded size of an entry, used for `maxSizePerMsg` accounting. */
export function entrySize(e: Entry): number {
  return e.data.byteLength + 16;
}

/**
 * Returns the longest prefix of `ents` whose total size is at most `maxSize`, but always at
 * least one entry (so that a single large entry still makes progress).
 */
export function limitSize(ents: Entry[], maxSize: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = entrySize(ents[0]!);
  let limit = 1;
  for (; limit < ents.length; limit++) {
    size += entrySize(ents[limit]!);
    if (size > maxSize) break;
  }
  return limit === ents.length ? ents : ents.slice(0, limit);
}

/** True when two byte arrays hold the same bytes. */
export function bytesEqual(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
