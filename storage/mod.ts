/**
 * The store's storage: the Deno KV engine — the key layout (`keys.ts`), write batches that split
 * themselves into commits fitting Deno KV's limits in a crash-safe order (`write_batch.ts`),
 * chunked values over 64 KiB, range scans and range deletes (`engine.ts`), and the records kept
 * per region and per store (`records.ts`) — and the Raft log engine (`raft_log/`), which holds
 * every region's Raft entries and hard state. See `docs/storage.md`.
 *
 * Imports nothing of ours (only `cborg`); `raftstore/` and `scheduler/` build on it.
 *
 * @module
 */
export {
  type CommitHook,
  type CommitInfo,
  ENGINE_FILE,
  EngineBrokenError,
  KvEngine,
  type KvEngineOptions,
  type KvPair,
} from "./engine.ts";
export { compareBytes, describeKey, encodedKeySize, Keys, type StorageKey } from "./keys.ts";
export {
  type ApplyState,
  CorruptionError,
  type HardState,
  type PeerState,
  type RegionLocalState,
  type StoreIdent,
} from "./records.ts";
export {
  CHUNK_SIZE,
  type CommitLimits,
  DEFAULT_COMMIT_LIMITS,
  DENO_KV_LIMITS,
  INLINE_MAX,
  KeyTooLargeError,
  MAX_VALUE_BYTES,
  ValueTooLargeError,
  WriteBatch,
} from "./write_batch.ts";
export {
  DEFAULT_GC_POLICY,
  LogBatch,
  MemFs,
  RaftLogBrokenError,
  RaftLogEngine,
  type RaftLogOptions,
  type RaftLogStats,
} from "./raft_log/mod.ts";
export {
  migrateRaftLog,
  type MigrationReport,
  RaftLogMissingError,
  raftLogMoved,
} from "./raft_log/migrate.ts";
