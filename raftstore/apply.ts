/**
 * Apply: turning committed entries into engine mutations and results.
 *
 * {@link applyEntries} is pure apart from filling the write batch it is given: it checks each
 * command's epoch and keys again (the proposer's view may be stale by the time the entry
 * commits), puts data mutations in the batch's data phase and state records (apply state, region
 * state) in its state phase, and returns what happened so the peer can answer proposals and the
 * store can act on membership changes and splits once the batch is durable.
 *
 * @module
 */
import { type ConfChange, decodeConfChange, type Entry } from "../raft/mod.ts";
import type { WriteBatch } from "../storage/mod.ts";
import { MrkvError } from "../proto/errors.ts";
import { compareBytes, keyInRegion, type Peer, type Region } from "../proto/metapb.ts";
import {
  type ChangePeerRequest,
  checkEpoch,
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
    readonly cc: ConfChange;
    readonly removed?: Peer;
  }
  | {
    readonly type: "Split";
    /** The old region, now ending at the first split key. */
    readonly left: Region;
    /** The regions the split created, in key order. */
    readonly regions: readonly Region[];
  }
  | { readonly type: "CompactLog"; readonly index: number; readonly term: number };

/** Everything one call to {@link applyEntries} did. */
export interface ApplyOutcome {
  region: Region;
  appliedIndex: number;
  /** Bytes written by Put commands (for the approximate region size). */
  writtenBytes: number;
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

/**
 * Applies `entries` (already committed, in order) to a region at `appliedIndex`. Entries at or
 * below the applied index are skipped (they were applied before a restart). Tagged client
 * writes run at most once, as `requests` decides (it is updated and persisted in `wb`).
 */
export function applyEntries(
  region: Region,
  appliedIndex: number,
  entries: readonly Entry[],
  wb: WriteBatch,
  phases: ApplyPhases,
  requests: AppliedRequests,
): ApplyOutcome {
  const out: ApplyOutcome = {
    region,
    appliedIndex,
    writtenBytes: 0,
    results: [],
    effects: [],
    answered: 0,
  };
  for (const e of entries) {
    if (e.index <= out.appliedIndex) continue;
    let error: MrkvError | undefined;
    let request: string | undefined;
    let admin = e.type === "ConfChange";
    // Apply is total: an entry that cannot be executed — malformed, stale, or forged — is applied
    // as a no-op that answers its proposer with the error. Whatever it added to the batch or the
    // outcome is rolled back, so it leaves no trace but the applied index. The result is a pure
    // function of the entry and the region, so every replica agrees.
    const savepoint = wb.savepoint();
    const before = {
      region: out.region,
      effects: out.effects.length,
      writtenBytes: out.writtenBytes,
    };
    try {
      if (e.type === "ConfChange") execConfChangeEntry(out, e, wb, phases);
      else if (e.data.length > 0) {
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
          execCmd(out, cmd, wb, phases);
          if (tag && !admin) requests.add(tag, e.index);
        }
      }
    } catch (err) {
      wb.rollbackTo(savepoint);
      out.region = before.region;
      out.effects.length = before.effects;
      out.writtenBytes = before.writtenBytes;
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

function execCmd(out: ApplyOutcome, cmd: RaftCmd, wb: WriteBatch, phases: ApplyPhases): void {
  checkHeader(out.region, cmd);
  if (cmd.admin) {
    if (cmd.admin.type === "Split") execSplit(out, cmd.admin, wb, phases);
    else if (cmd.admin.type === "CompactLog") execCompactLog(out, cmd.admin);
    else throw new MrkvError("BadRequest", "ChangePeer must be proposed as a conf change entry");
    return;
  }
  const requests = cmd.requests ?? [];
  for (const r of requests) {
    if (!keyInRegion(r.key, out.region)) {
      throw new MrkvError("KeyNotInRegion", `key is not in region ${out.region.id}`, {
        region_id: out.region.id,
      });
    }
  }
  wb.atPhase(phases.data);
  for (const r of requests) {
    if (r.type === "Put") {
      wb.putData(r.key, r.value);
      out.writtenBytes += r.key.length + r.value.length;
    } else {
      wb.deleteData(r.key);
    }
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
  const cc = decodeConfChange(e.data);
  if (!cc.context || cc.context.length === 0) {
    throw new MrkvError("BadRequest", `conf change at ${e.index} carries no command`);
  }
  const cmd = decodeCmd(cc.context);
  if (cmd.admin?.type !== "ChangePeer") {
    throw new MrkvError("BadRequest", `conf change at ${e.index} does not carry ChangePeer`);
  }
  // Raft's view (the conf change) and the region's (the command) must describe one change, or
  // the two membership lists would drift apart.
  if (cc.type !== cmd.admin.changeType || cc.nodeId !== cmd.admin.peer.id) {
    throw new MrkvError(
      "BadRequest",
      `conf change at ${e.index} (${cc.type} ${cc.nodeId}) does not match its command ` +
        `(${cmd.admin.changeType} ${cmd.admin.peer.id})`,
    );
  }
  checkHeader(out.region, cmd);
  execChangePeer(out, cmd.admin, cc, wb, phases);
}

/** Applies one membership change; a change that would not alter the region is a no-op. */
function execChangePeer(
  out: ApplyOutcome,
  req: ChangePeerRequest,
  cc: ConfChange,
  wb: WriteBatch,
  phases: ApplyPhases,
): void {
  const region = out.region;
  const existing = region.peers.find((p) => p.id === req.peer.id || p.storeId === req.peer.storeId);
  let peers: Peer[];
  let removed: Peer | undefined;
  switch (req.changeType) {
    case "AddNode":
      if (existing && existing.id !== req.peer.id) {
        throw new MrkvError(
          "StaleCommand",
          `store ${req.peer.storeId} already has peer ${existing.id} of region ${region.id}`,
        );
      }
      if (existing?.role === "Voter") return;
      peers = existing
        ? region.peers.map((p) => (p.id === existing.id ? { ...p, role: "Voter" as const } : p))
        : [...region.peers, { ...req.peer, role: "Voter" }];
      break;
    case "AddLearnerNode":
      if (existing) {
        if (existing.id === req.peer.id && existing.role === "Learner") return;
        throw new MrkvError(
          "StaleCommand",
          `store ${req.peer.storeId} already has peer ${existing.id} of region ${region.id}`,
        );
      }
      peers = [...region.peers, { ...req.peer, role: "Learner" }];
      break;
    case "RemoveNode":
      if (!existing || existing.id !== req.peer.id) return;
      removed = existing;
      peers = region.peers.filter((p) => p.id !== existing.id);
      break;
  }
  out.region = {
    ...region,
    peers,
    epoch: { ...region.epoch, confVer: region.epoch.confVer + 1 },
  };
  wb.atPhase(phases.state).putRegionState(region.id, { peerState: "Normal", region: out.region });
  out.effects.push({ type: "ChangePeer", region: out.region, cc, removed });
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
  if (req.compactIndex > out.appliedIndex) {
    throw new MrkvError(
      "StaleCommand",
      `cannot compact region ${out.region.id} past applied index`,
    );
  }
  out.effects.push({ type: "CompactLog", index: req.compactIndex, term: req.compactTerm });
}
