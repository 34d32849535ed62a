/**
 * Commands replicated through a region's Raft log (after kvproto's `raft_cmdpb`).
 *
 * Every command carries a {@link CmdHeader} naming the region, the proposing peer and the region
 * epoch the proposer saw. Apply checks the epoch again (TiKV's rule: the proposer's view may be
 * stale by the time the entry commits) using the table in {@link EPOCH_CHECK}, and every data key
 * against the region's range.
 *
 * @module
 */
import {
  decodeCbor,
  encodeCbor,
  expectArray,
  expectBytes,
  expectId,
  expectObject,
  expectUint,
  field,
  type Fields,
  optional,
} from "../proto/codec.ts";
import {
  decodeEpoch,
  decodePeer,
  decodeRegion,
  MAX_KEY_BYTES,
  type Peer,
  type Region,
  type RegionEpoch,
} from "../proto/metapb.ts";
import { MrkvError } from "../proto/errors.ts";
import { decodeTag, type RequestTag } from "./applied_requests.ts";

/** Largest value a client may write (docs/api.md: up to 1 MiB). */
export const MAX_VALUE_BYTES = 1024 * 1024;

/** Identifies the target of a command and the epoch its proposer saw. */
export interface CmdHeader {
  readonly regionId: number;
  readonly peerId: number;
  readonly epoch: RegionEpoch;
  /**
   * The client write this command carries out, the same on every attempt: apply runs a tagged
   * write at most once (see applied_requests.ts). A follower that proposed the write also
   * recognizes it by its tag when it applies it.
   */
  readonly request?: RequestTag;
}

/** A data write. */
export type Request =
  | { readonly type: "Put"; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly type: "Delete"; readonly key: Uint8Array };

/** Membership change: the peer to add (as voter or learner), promote or remove. */
export interface ChangePeerRequest {
  readonly type: "ChangePeer";
  readonly changeType: "AddNode" | "AddLearnerNode" | "RemoveNode";
  readonly peer: Peer;
}

/** One change of a {@link ChangePeerV2Request}. */
export interface PeerChange {
  readonly changeType: "AddNode" | "AddLearnerNode" | "RemoveNode";
  readonly peer: Peer;
}

/**
 * A joint-consensus membership change (TiKV's ChangePeerV2), carried by a Raft `ConfChangeV2`.
 * Several changes enter a joint configuration (`AddNode` on a learner makes it an
 * `IncomingVoter`, `AddLearnerNode` on a voter a `DemotingVoter`, `RemoveNode` removes a
 * learner; a voter must be demoted before it can be removed); one change is a single step; no
 * changes leaves the joint configuration.
 */
export interface ChangePeerV2Request {
  readonly type: "ChangePeerV2";
  readonly changes: readonly PeerChange[];
}

/**
 * Merge, first step, on the source region: freezes it (no more writes) and records the smallest
 * log index every peer has (`minIndex`), so the target can carry the entries after it to a
 * lagging source peer. `target` is the target region as the proposer saw it.
 */
export interface PrepareMergeRequest {
  readonly type: "PrepareMerge";
  readonly target: Region;
  readonly minIndex: number;
}

/**
 * Merge, second step, on the target region: take over the source's range. `source` is the
 * source region as of its PrepareMerge (at log index `commit`); `entries` are the source's
 * encoded Raft entries `minIndex + 1 ..= commit`, for a source peer that has not got them yet.
 */
export interface CommitMergeRequest {
  readonly type: "CommitMerge";
  readonly source: Region;
  readonly commit: number;
  readonly entries: readonly Uint8Array[];
}

/** Merge abandoned, on the source region: unfreezes it (the target can no longer take it). */
export interface RollbackMergeRequest {
  readonly type: "RollbackMerge";
  readonly commit: number;
}

/** One region a split creates: it starts at `splitKey`. */
export interface SplitTarget {
  readonly splitKey: Uint8Array;
  readonly newRegionId: number;
  /** One new peer ID per peer of the old region, in the order of the old region's peers. */
  readonly newPeerIds: readonly number[];
}

/**
 * Split `[start, end)` at one or more keys at once (TiKV's BatchSplit): the old region keeps
 * `[start, k1)`, the i-th new region takes `[k_i, k_{i+1})` and the last one ends where the old
 * region ended. Keys must be strictly increasing and strictly inside the region.
 */
export interface SplitRequest {
  readonly type: "Split";
  readonly splits: readonly SplitTarget[];
}

/** Most regions one split command may create (`ask_batch_split`'s limit). */
export const MAX_SPLITS_PER_CMD = 1000;

/** Log GC: discard entries up to and including `compactIndex`. */
export interface CompactLogRequest {
  readonly type: "CompactLog";
  readonly compactIndex: number;
  readonly compactTerm: number;
}

/** A command that changes the region itself rather than its data. */
export type AdminRequest =
  | ChangePeerRequest
  | ChangePeerV2Request
  | SplitRequest
  | CompactLogRequest
  | PrepareMergeRequest
  | CommitMergeRequest
  | RollbackMergeRequest;

/** One replicated command: either data writes or one admin request. */
export interface RaftCmd {
  readonly header: CmdHeader;
  readonly requests?: readonly Request[];
  readonly admin?: AdminRequest;
}

/**
 * Which epoch fields a command must match at propose and apply time (TiKV's table):
 * data writes need the same `version` (a split or merge moved keys); ChangePeer and ChangePeerV2
 * the same `confVer`; Split, TransferLeader and the merge commands both; CompactLog neither (it
 * only touches this peer's log).
 */
export const EPOCH_CHECK: Readonly<Record<string, { confVer: boolean; version: boolean }>> = {
  Data: { confVer: false, version: true },
  ChangePeer: { confVer: true, version: false },
  ChangePeerV2: { confVer: true, version: false },
  Split: { confVer: true, version: true },
  TransferLeader: { confVer: true, version: true },
  CompactLog: { confVer: false, version: false },
  PrepareMerge: { confVer: true, version: true },
  CommitMerge: { confVer: true, version: true },
  RollbackMerge: { confVer: true, version: true },
};

/** The {@link EPOCH_CHECK} row for a command. */
export function epochCheckKind(cmd: RaftCmd): string {
  return cmd.admin?.type ?? "Data";
}

/** Throws `EpochNotMatch` if `seen` is stale for a command of `kind` against `current`. */
export function checkEpoch(
  kind: string,
  seen: RegionEpoch,
  current: RegionEpoch,
  regionId: number,
): void {
  const rule = EPOCH_CHECK[kind] ?? EPOCH_CHECK.Split!;
  if (
    (rule.confVer && seen.confVer !== current.confVer) ||
    (rule.version && seen.version !== current.version)
  ) {
    throw new MrkvError(
      "EpochNotMatch",
      `region ${regionId} epoch changed: command saw conf_ver ${seen.confVer} version ${seen.version}, ` +
        `region is at conf_ver ${current.confVer} version ${current.version}`,
      { region_id: regionId },
    );
  }
}

/** Encodes a command as the data of a Raft entry. */
export function encodeCmd(cmd: RaftCmd): Uint8Array {
  const { request, ...header } = cmd.header;
  return encodeCbor({
    ...cmd,
    header: request ? { ...header, request: [request.id, request.issuedAt] } : header,
  });
}

/** Decodes and validates a command. Throws `MrkvError("BadRequest")` on malformed input. */
export function decodeCmd(bytes: Uint8Array): RaftCmd {
  const o = expectObject(decodeCbor(bytes, "raft command"), "cmd");
  const h = expectObject(field(o, "header"), "cmd.header");
  const header: CmdHeader = {
    regionId: expectId(field(h, "regionId"), "cmd.header.regionId"),
    peerId: expectUint(field(h, "peerId"), "cmd.header.peerId"),
    epoch: decodeEpoch(field(h, "epoch"), "cmd.header.epoch"),
    request: optional(field(h, "request"), "cmd.header.request", decodeTag, undefined),
  };
  const requests = optional(
    field(o, "requests"),
    "cmd.requests",
    (v, n) => expectArray(v, n, decodeRequest, 100_000),
    undefined,
  );
  const admin = optional(field(o, "admin"), "cmd.admin", decodeAdmin, undefined);
  return { header, requests, admin };
}

function decodeRequest(v: unknown, name: string): Request {
  const o = expectObject(v, name);
  const key = expectBytes(field(o, "key"), `${name}.key`, MAX_KEY_BYTES);
  switch (field(o, "type")) {
    case "Put":
      return {
        type: "Put",
        key,
        value: expectBytes(field(o, "value"), `${name}.value`, MAX_VALUE_BYTES),
      };
    case "Delete":
      return { type: "Delete", key };
    default:
      throw new MrkvError("BadRequest", `${name}.type must be Put or Delete`);
  }
}

function decodeSplitTarget(o: Fields, name: string): SplitTarget {
  return {
    splitKey: expectBytes(field(o, "splitKey"), `${name}.splitKey`, MAX_KEY_BYTES),
    newRegionId: expectId(field(o, "newRegionId"), `${name}.newRegionId`),
    newPeerIds: expectArray(field(o, "newPeerIds"), `${name}.newPeerIds`, expectId, 64),
  };
}

/** Most changes one ChangePeerV2 may carry (a region has at most 64 peers). */
const MAX_PEER_CHANGES = 64;
/** Most source entries one CommitMerge may carry (their size is bounded when proposing). */
const MAX_MERGE_ENTRIES = 100_000;

function decodeChangeType(o: Fields, name: string): PeerChange["changeType"] {
  const changeType = field(o, "changeType");
  if (
    changeType !== "AddNode" && changeType !== "AddLearnerNode" && changeType !== "RemoveNode"
  ) {
    throw new MrkvError("BadRequest", `${name}.changeType is not a conf change type`);
  }
  return changeType;
}

function decodePeerChange(v: unknown, name: string): PeerChange {
  const o = expectObject(v, name);
  return {
    changeType: decodeChangeType(o, name),
    peer: decodePeer(field(o, "peer"), `${name}.peer`),
  };
}

function decodeAdmin(v: unknown, name: string): AdminRequest {
  const o = expectObject(v, name);
  switch (field(o, "type")) {
    case "ChangePeer":
      return {
        type: "ChangePeer",
        changeType: decodeChangeType(o, name),
        peer: decodePeer(field(o, "peer"), `${name}.peer`),
      };
    case "ChangePeerV2":
      return {
        type: "ChangePeerV2",
        changes: expectArray(
          field(o, "changes"),
          `${name}.changes`,
          decodePeerChange,
          MAX_PEER_CHANGES,
        ),
      };
    case "PrepareMerge":
      return {
        type: "PrepareMerge",
        target: decodeRegion(field(o, "target"), `${name}.target`),
        minIndex: expectUint(field(o, "minIndex"), `${name}.minIndex`),
      };
    case "CommitMerge":
      return {
        type: "CommitMerge",
        source: decodeRegion(field(o, "source"), `${name}.source`),
        commit: expectUint(field(o, "commit"), `${name}.commit`),
        entries: expectArray(
          field(o, "entries"),
          `${name}.entries`,
          (x, n) => expectBytes(x, n, 64 * 1024 * 1024),
          MAX_MERGE_ENTRIES,
        ),
      };
    case "RollbackMerge":
      return {
        type: "RollbackMerge",
        commit: expectUint(field(o, "commit"), `${name}.commit`),
      };
    case "Split":
      // A log written before batch splits holds the single-key shape: one split target.
      if (field(o, "splits") === undefined) {
        return { type: "Split", splits: [decodeSplitTarget(o, name)] };
      }
      if (field(o, "splitKey") !== undefined) {
        throw new MrkvError("BadRequest", `${name} has both splits and splitKey`);
      }
      return {
        type: "Split",
        splits: expectArray(
          field(o, "splits"),
          `${name}.splits`,
          (v, n) => decodeSplitTarget(expectObject(v, n), n),
          MAX_SPLITS_PER_CMD,
        ),
      };
    case "CompactLog":
      return {
        type: "CompactLog",
        compactIndex: expectUint(field(o, "compactIndex"), `${name}.compactIndex`),
        compactTerm: expectUint(field(o, "compactTerm"), `${name}.compactTerm`),
      };
    default:
      throw new MrkvError("BadRequest", `${name}.type is not an admin command`);
  }
}
