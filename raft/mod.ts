/**
 * raft/: mrkv's consensus library, modelled on etcd's raft.
 *
 * A deterministic state machine per peer (`Raft`), a log of stable entries plus an unstable
 * tail (`RaftLog`), per-follower progress with probe/replicate/snapshot states and an
 * in-flight window (`ProgressTracker`), and `RawNode`, the application's handle with the
 * Ready/advance protocol. Storage is an interface (`Storage`) with `MemoryStorage` for tests
 * and caching. Leader election (randomized timeouts, PreVote, CheckQuorum), log replication
 * with fast backtracking and flow control, snapshots, leader transfer, membership changes
 * (single-step, and joint consensus with `ConfChangeV2`) with learners, and ReadIndex are
 * implemented. See docs/raft.md.
 *
 * This directory imports nothing of mrkv's and only `cborg` from outside; it does no I/O and
 * uses no clock or global randomness (time is `tick()`, randomness is `Config.rand`), so a
 * seed replays a run exactly.
 *
 * @module
 */
export * from "./types.ts";
export * from "./errors.ts";
export { type Logger, seededRandom, SILENT_LOGGER } from "./logger.ts";
export { MemoryStorage, type Storage } from "./storage.ts";
export { RaftLog } from "./log.ts";
export { Unstable } from "./log_unstable.ts";
export { Inflights, Progress, type ProgressStateType, ProgressTracker } from "./progress.ts";
export {
  jointCommitted,
  jointVoteResult,
  majorityCommitted,
  majorityVoteResult,
  type VoteResult,
} from "./quorum.ts";
export {
  changeConfig,
  type ConfigChange,
  configFromConfState,
  confStateOfConfig,
  confStateProblem,
  entersJoint,
  isLeaveJoint,
  type MembershipConfig,
} from "./confchange.ts";
export { type ReadIndexStatus, ReadOnly } from "./read_only.ts";
export {
  CAMPAIGN_TRANSFER,
  type CampaignType,
  type Config,
  DEFAULT_MAX_INFLIGHT_MSGS,
  DEFAULT_MAX_SIZE_PER_MSG,
  NONE,
  type ProgressStatus,
  Raft,
  type Status,
} from "./raft.ts";
export { RawNode, type Ready } from "./rawnode.ts";
export { isQuiesceMessage, QUIESCE } from "./quiesce.ts";
export {
  decodeConfChange,
  decodeConfChangeEntry,
  decodeConfChangeV2,
  decodeEntry,
  decodeMessage,
  encodeConfChange,
  encodeConfChangeV2,
  encodeEntry,
  encodeMessage,
} from "./codec.ts";
