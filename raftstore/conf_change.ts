/**
 * Membership changes in the store: how a committed conf change entry changes the region's peer
 * list, and how a leader leaves a joint configuration.
 *
 * A conf change entry carries its command (a {@link ChangePeerRequest} in a single-step
 * `ConfChange`, a {@link ChangePeerV2Request} in a `ConfChangeV2`) in its context. The region's
 * peer list is the store's copy of Raft's configuration, so apply changes it only if Raft will
 * accept the same change: {@link execConfChange} checks the change with Raft's own pure rules
 * and compares the configuration the new peer list describes with the one Raft will switch to.
 * Anything else is refused, alike on every replica, and applied as a no-op.
 *
 * Joint consensus follows TiKV: the peer list carries the joint roles (`IncomingVoter`,
 * `DemotingVoter`); a voter is demoted before it is removed (removing a voter directly while
 * entering a joint configuration is refused); `conf_ver` grows by the number of changes when
 * entering, and by the number of peers whose role settles when leaving. Raft leaves nothing on
 * its own (the transition is explicit): the leader proposes the leave as a command once it has
 * applied the entry that entered ({@link maybeLeaveJoint}), first handing leadership to an
 * incoming voter if it is itself being demoted.
 *
 * @module
 */
import {
  changeConfig,
  type ConfChange,
  ConfChangeError,
  type ConfChangeV2,
  configFromConfState,
  type ConfState,
  confStateOfConfig,
  decodeConfChangeEntry,
  type Entry,
  isConfChangeV2,
} from "../raft/mod.ts";
import { MrkvError } from "../proto/errors.ts";
import { isJointRegion, isJointRole, type Peer, type Region } from "../proto/metapb.ts";
import type { ChangePeerRequest, ChangePeerV2Request, PeerChange, RaftCmd } from "./cmd.ts";
import { decodeCmd } from "./cmd.ts";
import type { Peer as LocalPeer } from "./peer.ts";

/** Raft's view of a region's membership (joint when the peer list carries joint roles). */
export function confStateOf(region: Pick<Region, "peers">): ConfState {
  const incoming: number[] = [];
  const outgoing: number[] = [];
  const learners: number[] = [];
  const learnersNext: number[] = [];
  for (const p of region.peers) {
    if (p.role === "Voter" || p.role === "IncomingVoter") incoming.push(p.id);
    if (p.role === "Voter" || p.role === "DemotingVoter") outgoing.push(p.id);
    if (p.role === "Learner") learners.push(p.id);
    if (p.role === "DemotingVoter") learnersNext.push(p.id);
  }
  if (!isJointRegion(region)) return { voters: incoming, learners };
  return { voters: incoming, learners, votersOutgoing: outgoing, learnersNext, autoLeave: false };
}

/** What a committed conf change does to the region. */
export interface ConfChangeOutcome {
  /** The region after the change (the same object when the change alters nothing). */
  readonly region: Region;
  /** The change to hand Raft's `applyConfChange`. */
  readonly cc: ConfChange | ConfChangeV2;
}

/**
 * Applies a committed conf change entry to `region`: returns the new region, or undefined for a
 * single-step change that alters nothing. Throws `MrkvError` (the entry is then a no-op) when
 * the entry carries no valid command, when command and conf change disagree, or when the change
 * is invalid for the region; `checkHeader` checks the command's header against the region.
 */
export function execConfChange(
  region: Region,
  e: Entry,
  checkHeader: (cmd: RaftCmd) => void,
): ConfChangeOutcome | undefined {
  const cc = decodeConfChangeEntry(e);
  if (!cc.context || cc.context.length === 0) {
    throw new MrkvError("BadRequest", `conf change at ${e.index} carries no command`);
  }
  const cmd = decodeCmd(cc.context);
  if (isConfChangeV2(cc)) {
    if (cmd.admin?.type !== "ChangePeerV2") {
      throw new MrkvError("BadRequest", `conf change at ${e.index} does not carry ChangePeerV2`);
    }
    checkSameChanges(e.index, cc, cmd.admin);
    checkHeader(cmd);
    return { region: changePeerV2(region, cmd.admin, cc), cc };
  }
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
  checkHeader(cmd);
  if (isJointRegion(region)) {
    throw new MrkvError(
      "StaleCommand",
      `region ${region.id} is in a joint configuration: only leaving it is allowed`,
    );
  }
  const peers = changePeer(region, cmd.admin);
  if (peers === undefined) return undefined;
  return { region: bumpConfVer(region, peers, 1), cc };
}

function checkSameChanges(index: number, cc: ConfChangeV2, req: ChangePeerV2Request): void {
  const same = cc.changes.length === req.changes.length &&
    cc.changes.every((c, i) =>
      c.type === req.changes[i]!.changeType && c.nodeId === req.changes[i]!.peer.id
    );
  if (!same) {
    throw new MrkvError(
      "BadRequest",
      `conf change at ${index} does not match its command's ${req.changes.length} change(s)`,
    );
  }
}

function bumpConfVer(region: Region, peers: Peer[], by: number): Region {
  return { ...region, peers, epoch: { ...region.epoch, confVer: region.epoch.confVer + by } };
}

/** A single-step change's new peer list, or undefined if it would not alter the region. */
function changePeer(region: Region, req: ChangePeerRequest): Peer[] | undefined {
  const existing = region.peers.find((p) => p.id === req.peer.id || p.storeId === req.peer.storeId);
  const taken = () =>
    new MrkvError(
      "StaleCommand",
      `store ${req.peer.storeId} already has peer ${existing!.id} of region ${region.id}`,
    );
  switch (req.changeType) {
    case "AddNode":
      if (existing && existing.id !== req.peer.id) throw taken();
      if (existing?.role === "Voter") return undefined;
      return existing
        ? region.peers.map((p) => (p.id === existing.id ? { ...p, role: "Voter" as const } : p))
        : [...region.peers, { ...req.peer, role: "Voter" }];
    case "AddLearnerNode":
      if (existing) {
        if (existing.id === req.peer.id && existing.role === "Learner") return undefined;
        throw taken();
      }
      return [...region.peers, { ...req.peer, role: "Learner" }];
    case "RemoveNode":
      if (!existing || existing.id !== req.peer.id) return undefined;
      return region.peers.filter((p) => p.id !== existing.id);
  }
}

/**
 * A ChangePeerV2's new region (TiKV's rules, see the module comment), checked against the
 * configuration Raft will switch to.
 */
function changePeerV2(region: Region, req: ChangePeerV2Request, cc: ConfChangeV2): Region {
  let raftResult;
  try {
    raftResult = changeConfig(configFromConfState(confStateOf(region)), cc);
  } catch (e) {
    if (!(e instanceof ConfChangeError)) throw e;
    throw new MrkvError("StaleCommand", `region ${region.id} refuses the change: ${e.message}`);
  }
  const next = req.changes.length === 0
    ? leaveJoint(region)
    : enterOrStep(region, req.changes, raftResult.config.votersOutgoing.size > 0);
  const ours = normalize(confStateOf(next));
  const raft = normalize(confStateOfConfig(raftResult.config));
  if (ours !== raft) {
    throw new MrkvError(
      "BadRequest",
      `the change would leave region ${region.id} (${ours}) and Raft (${raft}) disagreeing`,
    );
  }
  return next;
}

/** A configuration as comparable text. */
function normalize(cs: ConfState): string {
  const s = (ids: readonly number[] | undefined) => [...(ids ?? [])].sort((a, b) => a - b);
  return JSON.stringify([
    s(cs.voters),
    s(cs.learners),
    s(cs.votersOutgoing),
    s(cs.learnersNext),
    cs.autoLeave ?? false,
  ]);
}

function enterOrStep(region: Region, changes: readonly PeerChange[], joint: boolean): Region {
  let peers = [...region.peers];
  for (const ch of changes) {
    const existing = peers.find((p) => p.storeId === ch.peer.storeId);
    if (existing && isJointRole(existing.role)) {
      throw new MrkvError("StaleCommand", `region ${region.id} is still in a joint configuration`);
    }
    if (existing && existing.id !== ch.peer.id) {
      throw new MrkvError(
        "StaleCommand",
        `store ${ch.peer.storeId} already has peer ${existing.id} of region ${region.id}`,
      );
    }
    const set = (role: Peer["role"]) =>
      peers = peers.map((p) => (p.id === existing!.id ? { ...p, role } : p));
    switch (ch.changeType) {
      case "AddNode":
        if (!existing) peers.push({ ...ch.peer, role: joint ? "IncomingVoter" : "Voter" });
        else if (existing.role === "Learner") set(joint ? "IncomingVoter" : "Voter");
        else throw duplicate(region, ch);
        break;
      case "AddLearnerNode":
        if (!existing) peers.push({ ...ch.peer, role: "Learner" });
        else if (existing.role === "Voter") set(joint ? "DemotingVoter" : "Learner");
        else throw duplicate(region, ch);
        break;
      case "RemoveNode":
        if (!existing) {
          throw new MrkvError("StaleCommand", `region ${region.id} has no peer ${ch.peer.id}`);
        }
        if (joint && existing.role === "Voter") {
          throw new MrkvError(
            "BadRequest",
            `voter ${ch.peer.id} of region ${region.id} must be demoted before it is removed`,
          );
        }
        peers = peers.filter((p) => p.id !== existing.id);
        break;
    }
  }
  return bumpConfVer(region, peers, changes.length);
}

function duplicate(region: Region, ch: PeerChange): MrkvError {
  return new MrkvError(
    "StaleCommand",
    `region ${region.id} already has peer ${ch.peer.id} in the role ${ch.changeType} asks for`,
  );
}

function leaveJoint(region: Region): Region {
  let changed = 0;
  const peers = region.peers.map((p): Peer => {
    if (p.role === "IncomingVoter") {
      changed++;
      return { ...p, role: "Voter" };
    }
    if (p.role === "DemotingVoter") {
      changed++;
      return { ...p, role: "Learner" };
    }
    return p;
  });
  if (changed === 0) {
    throw new MrkvError("StaleCommand", `region ${region.id} is not in a joint configuration`);
  }
  return bumpConfVer(region, peers, changed);
}

/** The Raft conf change that carries a ChangePeerV2 (several changes: an explicit joint one). */
export function confChangeV2Of(changes: readonly PeerChange[], context: Uint8Array): ConfChangeV2 {
  return {
    transition: changes.length > 1 ? "JointExplicit" : "Auto",
    changes: changes.map((c) => ({ type: c.changeType, nodeId: c.peer.id })),
    context,
  };
}

/** Transfers a demoted leader tried before it leaves the joint configuration itself. */
const DEMOTED_TRANSFER_TRIES = 3;
/** Per leader peer: a leave in flight, and transfers tried. */
const leaving = new WeakMap<LocalPeer, { inFlight: boolean; transfers: number }>();

/**
 * Leaves a joint configuration if `peer` leads one: proposes the ChangePeerV2 with no changes.
 * A leader being demoted first hands leadership to a caught-up incoming voter (PD does the same
 * with a TransferLeader step), which then leaves; after a few failed tries it leaves itself,
 * and steps down when the leave applies. A refusal (a change still pending, a transfer in
 * progress) is retried by the caller's next check.
 */
export function maybeLeaveJoint(
  peer: LocalPeer,
  schedule: () => void,
  log: { info(msg: string): void },
): void {
  if (!isJointRegion(peer.region)) {
    leaving.delete(peer);
    return;
  }
  if (!peer.isLeader() || peer.destroyed) return;
  let state = leaving.get(peer);
  if (!state) leaving.set(peer, state = { inFlight: false, transfers: 0 });
  if (state.inFlight || peer.raw.raft.leadTransferee !== 0) return;
  const me = peer.region.peers.find((p) => p.id === peer.meta.id);
  if (me?.role === "DemotingVoter" && state.transfers < DEMOTED_TRANSFER_TRIES) {
    const progress = peer.raw.status().progress;
    const to = peer.region.peers
      .filter((p) => (p.role === "Voter" || p.role === "IncomingVoter") && progress[p.id])
      .sort((a, b) => progress[b.id]!.match - progress[a.id]!.match)[0];
    if (to) {
      state.transfers++;
      log.info(`region ${peer.regionId}: demoted leader hands leadership to peer ${to.id}`);
      peer.transferLeader(to.id);
      schedule();
      return;
    }
  }
  const s = state;
  s.inFlight = true;
  peer.proposeConfChange({
    header: { regionId: peer.regionId, peerId: peer.meta.id, epoch: peer.region.epoch },
    admin: { type: "ChangePeerV2", changes: [] },
  }).then(
    () => log.info(`region ${peer.regionId}: left the joint configuration`),
    (e) => log.info(`region ${peer.regionId}: leaving the joint configuration: ${e.message}`),
  ).finally(() => s.inFlight = false);
  schedule();
}
