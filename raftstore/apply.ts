/**
 * Apply: turning committed entries into engine mutations and results.
 *
 * {@link applyEntries} is pure apart from filling the write batch it is given: it checks each
 * command's epoch and keys again (the proposer's view may be stale by the time the entry
 * commits), puts data mutations in the batch's data phase and state records (apply state, region
 * state) in its state phase, and returns what happened so the peer can answer proposals and the
 * store can act on membership changes, splits and merges once the batch is durable. Membership
 * changes are in conf_change.ts, the merge commands in merge.ts.
 *
 * @module
 */
import type { ConfChange, ConfChangeV2, Entry } from "../raft/mod.ts";
import type { WriteBatch } from "../storage/mod.ts";
import { MrkvError } from "../proto/errors.ts";
import { compareBytes, keyInRegion, type Region } from "../proto/metapb.ts";
import { execConfChange } from "./conf_change.ts";
import {
  ApplyBlocked,
  execCommitMerge,
  execPrepareMerge,
  execRollbackMerge,
  type MergeState,
} from "./merge.ts";
import {
  checkEpoch,
  type CommitMergeRequest,
  type CompactLogRequest,
  decodeCmd,
  epochCheckKind,
  type RaftCmd,
  type SplitRequest,
} from "./cmd.ts";
import { type AppliedRequests, REQUEST_WINDOW_MS } from "./applied_requests.ts";

/** The outcome of one applied entry, matched to a proposal by index and term. */
export interface EntryResult {
  readonly index: number;
  readonly term: number;
  readonly error?: MrkvError;
  /** The tag of a client write (hex), by which a follower that proposed it recognizes it. */
  readonly request?: string;
  /** A membership change or admin command (answered only once its effects are in place). */
  readonly admin?: boolean;
}

/** A change to the region that the store must act on after the batch is written. */
export type AdminEffect =
  | {
    readonly type: "ChangePeer";
    readonly region: Region;
    readonly cc: ConfChange | ConfChangeV2;
  }
  | {
    readonly type: "Split";
    /** The old region, now ending at the first split key. */
    readonly left: Region;
    /** The regions the split created, in key order. */
    readonly regions: readonly Region[];
  }
  | { readonly type: "CompactLog"; readonly index: number; readonly term: number }
  | { readonly type: "PrepareMerge"; readonly state: MergeState }
  | {
    readonly type: "CommitMerge";
    /** The merged region (the target with the source's range). */
    readonly region: Region;
    /** The source as of its PrepareMerge, at index `commit` of its log. */
    readonly source: Region;
    readonly commit: number;
  }
  | { readonly type: "RollbackMerge"; readonly commit: number };

/** Everything one call to {@link applyEntries} did. */
export interface ApplyOutcome {
  region: Region;
  appliedIndex: number;
  /** Bytes written by Put commands (for the approximate region size). */
  writtenBytes: number;
  /** Delete commands applied (they shrink the region by an unknown amount). */
  deletes: number;
  /** Keys written by Put and Delete commands (for the scheduler's hot-region statistics). */
  writtenKeys: number;
  /** The region's merge state after these entries (set by PrepareMerge, cleared by rollback). */
  merge: MergeState | undefined;
  /**
   * Set when apply stopped before the entry at this index, a CommitMerge whose local source peer
   * is not ready yet: that entry and the ones after it are applied later.
   */
  blockedAt?: number;
  /** The source region a blocked CommitMerge waits for, with the command (to catch it up). */
  waitingFor?: CommitMergeRequest;
  readonly results: EntryResult[];
  readonly effects: AdminEffect[];
  /** How many of `results` the store answered before the write landed. */
  answered: number;
}

/** Phases of the Ready loop's apply batch: data before the state that says it is applied. */
export interface ApplyPhases {
  readonly data: number;
  readonly state: number;
}

/** What apply needs to know beyond the region itself. */
export interface ApplyContext {
  /** The region's merge state before these entries. */
  readonly merge?: MergeState;
  /**
   * Whether the local peer of a CommitMerge's source has applied its PrepareMerge: its applied
   * client writes if so, undefined if apply must wait (see merge.ts). Without it, every
   * CommitMerge waits.
   */
  readonly mergeSource?: (req: CommitMergeRequest) => AppliedRequests | undefined;
  /** Told of every key a data command writes, with its bytes (a leader's load sampling). */
  readonly onWrite?: (key: Uint8Array, bytes: number) => void;
}

/**
 * Applies `entries` (already committed, in order) to a region at `appliedIndex`. Entries at or
 * below the applied index are skipped (they were applied before a restart). Tagged client
 * writes run at most once, as `requests` decides (it is updated and persisted in `wb`). Apply
 * stops early only at a CommitMerge whose source is not ready (`blockedAt`).
 */
export function applyEntries(
  region: Region,
  appliedIndex: number,
  entries: readonly Entry[],
  wb: WriteBatch,
  phases: ApplyPhases,
  requests: AppliedRequests,
  ctx: ApplyContext = {},
): ApplyOutcome {
  const out: ApplyOutcome = {
    region,
    appliedIndex,
    writtenBytes: 0,
    deletes: 0,
    writtenKeys: 0,
    merge: ctx.merge,
    results: [],
    effects: [],
    answered: 0,
  };
  const mergeSource = ctx.mergeSource ?? (() => undefined);
  for (const e of entries) {
    if (e.index <= out.appliedIndex) continue;
    let error: MrkvError | undefined;
    let request: string | undefined;
    let admin = e.type === "ConfChange" || e.type === "ConfChangeV2";
    // Apply is total: an entry that cannot be executed — malformed, stale, or forged — is applied
    // as a no-op that answers its proposer with the error. Whatever it added to the batch or the
    // outcome is rolled back, so it leaves no trace but the applied index. The result is a pure
    // function of the entry and the region, so every replica agrees.
    const savepoint = wb.savepoint();
    const before = {
      region: out.region,
      merge: out.merge,
      effects: out.effects.length,
      writtenBytes: out.writtenBytes,
      deletes: out.deletes,
      writtenKeys: out.writtenKeys,
    };
    try {
      if (e.type === "ConfChange" || e.type === "ConfChangeV2") {
        execConfChangeEntry(out, e, wb, phases);
      } else if (e.data.length > 0) {
        const cmd = decodeCmd(e.data);
        const tag = cmd.header.request;
        request = tag?.id.toHex();
        admin = cmd.admin !== undefined;
        const verdict = tag && !admin ? requests.check(tag) : "fresh";
        if (verdict === "expired") {
          throw new MrkvError(
            "StaleCommand",
            `request issued at ${tag!.issuedAt} is more than ${REQUEST_WINDOW_MS} ms older than ` +
              `the newest request region ${out.region.id} applied (${requests.clock}): a stray ` +
              `copy, or the issuing store's clock is behind`,
          );
        }
        if (verdict === "fresh") {
          execCmd(out, cmd, e.index, wb, phases, requests, mergeSource, ctx.onWrite);
          if (tag && !admin) requests.add(tag, e.index);
        }
      }
    } catch (err) {
      wb.rollbackTo(savepoint);
      out.region = before.region;
      out.merge = before.merge;
      out.effects.length = before.effects;
      out.writtenBytes = before.writtenBytes;
      out.deletes = before.deletes;
      out.writtenKeys = before.writtenKeys;
      if (err instanceof ApplyBlocked) {
        out.blockedAt = e.index;
        out.waitingFor = err.req;
        break;
      }
      error = err instanceof MrkvError ? err : new MrkvError(
        "BadRequest",
        `entry ${e.index} of region ${region.id} cannot be applied and was skipped: ${
          (err as Error)?.message ?? String(err)
        }`,
      );
    }
    out.appliedIndex = e.index;
    out.results.push({ index: e.index, term: e.term, error, request, admin });
  }
  requests.persistPass(wb, region.id, phases);
  return out;
}

function execCmd(
  out: ApplyOutcome,
  cmd: RaftCmd,
  index: number,
  wb: WriteBatch,
  phases: ApplyPhases,
  requests: AppliedRequests,
  mergeSource: (req: CommitMergeRequest) => AppliedRequests | undefined,
  onWrite?: (key: Uint8Array, bytes: number) => void,
): void {
  checkHeader(out.region, cmd);
  if (cmd.admin) {
    switch (cmd.admin.type) {
      case "Split":
        return execSplit(out, cmd.admin, wb, phases);
      case "CompactLog":
        return execCompactLog(out, cmd.admin);
      case "PrepareMerge":
        return execPrepareMerge(out, cmd.admin, index, wb, phases);
      case "CommitMerge":
        return execCommitMerge(out, cmd.admin, wb, phases, requests, index, mergeSource);
      case "RollbackMerge":
        return execRollbackMerge(out, cmd.admin, wb, phases);
      case "ChangePeer":
      case "ChangePeerV2":
        throw new MrkvError("BadRequest", `${cmd.admin.type} must be proposed as a conf change`);
    }
  }
  const writes = cmd.requests ?? [];
  // The epoch check already refuses every write proposed before the PrepareMerge; this holds
  // whatever epoch a write names: a frozen region's data may already belong to the target.
  if (out.merge && writes.length > 0) {
    throw new MrkvError("ServerIsBusy", `region ${out.region.id} is merging; retry`, {
      region_id: out.region.id,
    });
  }
  for (const r of writes) {
    if (!keyInRegion(r.key, out.region)) {
      throw new MrkvError("KeyNotInRegion", `key is not in region ${out.region.id}`, {
        region_id: out.region.id,
      });
    }
  }
  wb.atPhase(phases.data);
  for (const r of writes) {
    if (r.type === "Put") {
      wb.putData(r.key, r.value);
      out.writtenBytes += r.key.length + r.value.length;
      onWrite?.(r.key, r.key.length + r.value.length);
    } else {
      wb.deleteData(r.key);
      out.deletes++;
      onWrite?.(r.key, r.key.length);
    }
    out.writtenKeys++;
  }
}

function checkHeader(region: Region, cmd: RaftCmd): void {
  if (cmd.header.regionId !== region.id) {
    throw new MrkvError(
      "RegionNotFound",
      `command for region ${cmd.header.regionId} reached region ${region.id}`,
    );
  }
  checkEpoch(epochCheckKind(cmd), cmd.header.epoch, region.epoch, region.id);
}

function execConfChangeEntry(
  out: ApplyOutcome,
  e: Entry,
  wb: WriteBatch,
  phases: ApplyPhases,
): void {
  const region = out.region;
  const change = execConfChange(region, e, (cmd) => checkHeader(region, cmd));
  // A change that would not alter the region is a no-op.
  if (!change) return;
  out.region = change.region;
  wb.atPhase(phases.state).putRegionState(region.id, {
    peerState: "Normal",
    region: change.region,
  });
  out.effects.push({ type: "ChangePeer", region: change.region, cc: change.cc });
}

/**
 * Applies a (batch) split. Everything is checked before anything changes: keys strictly
 * increasing and strictly inside the region, one new peer ID per peer, every new ID distinct
 * and unused by the region. A command that fails a check changes nothing (an error result).
 */
function execSplit(
  out: ApplyOutcome,
  req: SplitRequest,
  wb: WriteBatch,
  phases: ApplyPhases,
): void {
  const region = out.region;
  if (req.splits.length === 0) {
    throw new MrkvError("BadRequest", `split of region ${region.id} names no split key`);
  }
  const ids = new Set<number>([region.id, ...region.peers.map((p) => p.id)]);
  let previous = region.startKey;
  for (const s of req.splits) {
    if (!keyInRegion(s.splitKey, region) || compareBytes(s.splitKey, previous) <= 0) {
      throw new MrkvError(
        "KeyNotInRegion",
        `split keys must be increasing and strictly inside region ${region.id}`,
        { region_id: region.id },
      );
    }
    previous = s.splitKey;
    if (s.newPeerIds.length !== region.peers.length) {
      throw new MrkvError(
        "StaleCommand",
        `split of region ${region.id} brought ${s.newPeerIds.length} peer IDs for ${region.peers.length} peers`,
      );
    }
    // IDs come from the scheduler and are unique; anything else is a bug or a forgery, and
    // would give two regions (or two peers of one region) the same identity.
    for (const id of [s.newRegionId, ...s.newPeerIds]) {
      if (ids.has(id)) {
        throw new MrkvError(
          "BadRequest",
          `split of region ${region.id} reuses ID ${id} for a new region or its peers`,
        );
      }
      ids.add(id);
    }
  }
  const version = region.epoch.version + 1;
  const regions = req.splits.map((s, i): Region => ({
    id: s.newRegionId,
    startKey: s.splitKey,
    endKey: req.splits[i + 1]?.splitKey ?? region.endKey,
    epoch: { confVer: region.epoch.confVer, version },
    peers: region.peers.map((p, j) => ({ ...p, id: s.newPeerIds[j]! })),
  }));
  const left: Region = {
    ...region,
    endKey: req.splits[0]!.splitKey,
    epoch: { ...region.epoch, version },
  };
  out.region = left;
  wb.atPhase(phases.state).putRegionState(left.id, { peerState: "Normal", region: left });
  out.effects.push({ type: "Split", left, regions });
}

function execCompactLog(out: ApplyOutcome, req: CompactLogRequest): void {
  // A merge target may still carry a lagging source peer up from this log (see merge.ts).
  if (out.merge) {
    throw new MrkvError("StaleCommand", `region ${out.region.id} is merging: its log stays`);
  }
  if (req.compactIndex > out.appliedIndex) {
    throw new MrkvError(
      "StaleCommand",
      `cannot compact region ${out.region.id} past applied index`,
    );
  }
  out.effects.push({ type: "CompactLog", index: req.compactIndex, term: req.compactTerm });
}
