/**
 * Quiescence: an idle group stops ticking, so it costs nothing until something needs it
 * (CockroachDB's quiesced ranges, TiKV's hibernate regions).
 *
 * The leader decides. Once everything it has is committed, applied and on every follower it can
 * reach, it sends each of them a **quiesce heartbeat** — a `MsgHeartbeat` carrying
 * {@link QUIESCE} as context, the leader's last index and term, and its commit index — and the
 * application stops ticking it. A follower whose log ends exactly where the leader's does and
 * whose term and leader agree takes the heartbeat's commit index and stops ticking too, without
 * answering (an answer would wake the leader). A follower that does not match steps it as an
 * ordinary heartbeat instead: its answer wakes the leader, which then brings it up to date and
 * tries again later.
 *
 * Nothing here changes what Raft may decide: the timers only decide *when* a peer campaigns or
 * checks its quorum, never whether a vote, an append or a commit is allowed. Quiescing adopts a
 * commit index only on a log that matches the leader's in its last entry, which by log matching
 * is the leader's whole log, all of it committed. What the application must add (docs/raft.md,
 * "Quiescence") is *liveness*: a sleeping follower must not wait forever for a leader that died
 * ({@link wake} with the time it has really been without news of its leader), and a sleeping
 * leader must not serve lease reads on a lease it cannot renew (it drops its lease to sleep).
 *
 * @module
 */
import type { Raft } from "./raft.ts";
import { bytesEqual, type Message, newMessage } from "./types.ts";

/** The context that marks a heartbeat as a quiesce heartbeat. */
export const QUIESCE: Uint8Array = new TextEncoder().encode("Quiesce");

/** True for a leader's quiesce heartbeat. */
export function isQuiesceMessage(m: Message): boolean {
  return m.type === "MsgHeartbeat" && bytesEqual(m.context, QUIESCE);
}

/**
 * Why this peer cannot quiesce its group now, or `undefined` if it can. Only a leader can: with
 * no leadership transfer under way, not in a joint configuration, every entry persisted,
 * committed and applied, no read waiting, and every follower — except those `skip` names (peers
 * the application knows are down) — caught up to its last index, replicating and heard from in
 * the current quorum-check period. The followers not skipped, with the leader, must make a
 * quorum (of both halves of a joint configuration).
 */
export function quiesceBlocker(r: Raft, skip?: (id: number) => boolean): string | undefined {
  if (r.state !== "Leader") return "not the leader";
  if (r.leadTransferee !== 0) return "a leadership transfer is under way";
  // The leader leaves a joint configuration on its own (autoLeave, retried on ticks); an
  // explicit leave is a proposal, which wakes it anyway. Staying awake until then is simplest.
  if (r.trk.isJoint()) return "a joint configuration is in force";
  const log = r.raftLog;
  const last = log.lastIndex();
  if (log.unstable.entries.length > 0 || log.hasPendingSnapshot()) return "entries not persisted";
  if (log.committed !== last) return "entries not committed";
  if (log.applied !== log.committed) return "entries not applied";
  if (log.lastTerm() !== r.term) return "no entry of its own term";
  if (r.readOnly.lastPendingRequestCtx() !== undefined || r.pendingReadIndexMessages.length > 0) {
    return "reads are waiting";
  }
  const awake = new Set([r.id]);
  for (const [id, pr] of r.trk.progress) {
    if (id === r.id || skip?.(id)) continue;
    if (pr.match !== last || pr.state !== "Replicate") return `peer ${id} is not caught up`;
    if (!pr.recentActive) return `peer ${id} was not heard from lately`;
    awake.add(id);
  }
  if (!r.trk.hasQuorum(awake)) return "the peers not known down are no quorum";
  return undefined;
}

/**
 * Quiesces a leader's group if {@link quiesceBlocker} allows: queues a quiesce heartbeat for
 * every follower not skipped and returns true (the application then stops ticking this peer).
 */
export function quiesce(r: Raft, skip?: (id: number) => boolean): boolean {
  if (quiesceBlocker(r, skip) !== undefined) return false;
  const index = r.raftLog.lastIndex();
  for (const [id, pr] of r.trk.progress) {
    if (id === r.id || skip?.(id)) continue;
    r.msgs.push({
      ...newMessage({
        type: "MsgHeartbeat",
        to: id,
        index,
        logTerm: r.raftLog.lastTerm(),
        // Capped at what the follower surely holds, like every heartbeat (here: everything).
        commit: Math.min(pr.match, r.raftLog.committed),
        context: QUIESCE,
      }),
      from: r.id,
      term: r.term,
    });
  }
  return true;
}

/**
 * Steps a quiesce heartbeat on a follower. Returns true if the follower may stop ticking: same
 * term, a follower of the sender, and its log ends where the leader's does (so it holds the
 * leader's whole log, all committed: it adopts the commit index, and stays silent). Otherwise the
 * message is stepped as the heartbeat it is and false returned: the answer wakes the leader.
 */
export function stepQuiesce(r: Raft, m: Message): boolean {
  const log = r.raftLog;
  if (
    m.term === r.term && r.state === "Follower" && (r.lead === m.from || r.lead === 0) &&
    m.commit === m.index && log.lastIndex() === m.index && log.lastTerm() === m.logTerm
  ) {
    r.electionElapsed = 0;
    r.lead = m.from;
    log.commitTo(m.commit);
    return true;
  }
  r.step(m);
  return false;
}

/**
 * Resumes a peer that stopped ticking. `idleTicks` is how long, in ticks of real time, the peer
 * has been without news of its leader (the application counts news of the leader's process as
 * news of the leader only while that process has not restarted).
 *
 * A follower's election timer moves to at least `idleTicks`, capped at the election timeout: a
 * follower whose leader was heard from lately keeps refusing votes for the rest of that
 * timeout (CheckQuorum's protection of a live leader, and the lease argument, which need at
 * least that much real time since the follower last heard from the leader); one without news for
 * an election timeout grants votes at once and campaigns within its randomized timeout, so
 * followers woken together do not all campaign on the same tick.
 *
 * A leader starts a fresh quorum-check period, forgetting who it heard from before it slept
 * (a sleeping leader has no evidence its followers are still there), and heartbeats at once.
 */
export function wake(r: Raft, idleTicks: number): void {
  if (r.state === "Leader") {
    r.electionElapsed = 0;
    r.heartbeatElapsed = 0;
    for (const [id, pr] of r.trk.progress) if (id !== r.id) pr.recentActive = false;
    r.bcastHeartbeat();
    return;
  }
  r.electionElapsed = Math.max(r.electionElapsed, Math.min(idleTicks, r.electionTimeout));
}
