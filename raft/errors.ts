/**
 * Typed errors for the expected conditions of the raft library, plus the single assertion
 * helper used for broken invariants (which are bugs, and are never caught inside `raft/`).
 *
 * @module
 */

/** Base class of every error the raft library throws on purpose. */
export class RaftError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A proposal could not be accepted: no leader known, leader transfer in progress, etc. */
export class ProposalDroppedError extends RaftError {}

/** The requested index is older than the storage's first index: it was compacted away. */
export class CompactedError extends RaftError {}

/** The requested index is newer than the storage's last index. */
export class UnavailableError extends RaftError {}

/** The storage cannot produce a snapshot right now; the leader will retry later. */
export class SnapshotTemporarilyUnavailableError extends RaftError {}

/** A snapshot older than the storage's current one was offered. */
export class SnapshotOutOfDateError extends RaftError {}

/** The `Config` passed to `Raft`/`RawNode` is not usable. */
export class ConfigError extends RaftError {}

/**
 * A membership change cannot be applied to the configuration in force (for example it would
 * leave no voter, or enters a joint configuration while already in one). The configuration is
 * left unchanged. Every peer applies the same entries to the same configuration, so every peer
 * refuses the same entry: the application treats it as a no-op.
 */
export class ConfChangeError extends RaftError {}

/** Bytes handed to a decoder do not describe a valid value. */
export class DecodeError extends RaftError {}

/** A raft invariant was broken: a bug in the library or in how the application drives it. */
export class RaftInvariantError extends RaftError {}

/** Throws `RaftInvariantError` with `message` unless `cond` holds. */
export function invariant(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) {
    throw new RaftInvariantError(typeof message === "string" ? message : message());
  }
}
