/**
 * The Raft log engine: every region's Raft entries and hard state in one append-only,
 * segmented log per store, with group commit, an in-memory index, garbage collection of old
 * files and crash recovery. See `docs/storage.md`.
 *
 * @module
 */
export {
  DEFAULT_GC_POLICY,
  type FileInfo,
  LogBatch,
  RaftLogBrokenError,
  RaftLogEngine,
  type RaftLogOptions,
  type RaftLogStats,
  type WriteInfo,
} from "./engine.ts";
export type { GcPolicy, GcStep } from "./gc.ts";
export { type LogFile, type LogFs, NodeFs } from "./fs.ts";
export { type CrashImageOptions, MemFs, SimulatedCrash } from "./mem_fs.ts";
export type { RecoveryReport } from "./recover.ts";
