/**
 * Hibernating regions: a region nobody uses stops ticking and sending, so an idle store costs
 * next to nothing however many regions it holds (TiKV's hibernate regions, CockroachDB's
 * quiescence; the Raft side is `raft/quiesce.ts`).
 *
 * **Going to sleep.** A leader whose region has seen no proposal, read or new entry for
 * {@link Hibernation.sleepAfterMs}, with nothing pending, everything applied and every follower
 * caught up and heard from lately, quiesces: it sends each follower a quiesce heartbeat and stops
 * ticking. A follower whose log matches stops ticking too, silently. Followers on a store known
 * down (see liveness.ts) are left out, as long as the rest make a quorum: one dead store must not
 * keep every region awake.
 *
 * **Waking.** Anything that needs the region wakes its local peer: a proposal, a read, an
 * operator step, log GC, any Raft message (except a quiesce heartbeat), a change in the liveness
 * of a store holding one of its peers that concerns it (its leader's store went down or
 * restarted; a store whose followers it left out came back). A woken leader heartbeats at
 * once and restarts its quorum check; its lease was dropped when it went to sleep, so its first
 * read confirms leadership with a quorum. A woken follower tells its leader (a message wakes
 * it) and restarts its election timer from the real time it has gone without news of its
 * leader — where news of the leader's store counts, as long as that store has not restarted since
 * the follower went to sleep ({@link StoreLiveness}). So a follower of a live leader keeps
 * refusing votes, and one whose leader's store is dead or restarted campaigns within its election
 * timeout. An awake follower that has not heard from its leader for half an election timeout
 * tells it again (the leader may have gone to sleep, or missed the first word).
 *
 * docs/raftstore.md ("Hibernating regions") has the whole argument.
 *
 * @module
 */
import { type Message, newMessage, NONE } from "../raft/mod.ts";
import type { Peer } from "./peer.ts";
import type { RaftEnvelope } from "./transport.ts";
import { type LivenessChange, StoreLiveness } from "./liveness.ts";
import type { Region } from "../proto/metapb.ts";

/** The context of the message a follower sends to wake its leader. */
export const WAKE: Uint8Array = new TextEncoder().encode("Wake");

/**
 * Most peers a change of store liveness wakes per tick. A store that merely stalls (CPU
 * starvation, a long pause) looks down like a dead one; waking every region it shares at once
 * would turn one slow store into an election storm. Regions that something needs wake at once
 * anyway, and the rest follow at this rate (1,000 a second at 100 ms ticks).
 */
export const LIVENESS_WAKES_PER_TICK = 100;

/** A peer's sleep state, kept on the peer. */
export interface SleepState {
  asleep: boolean;
  /** Last proposal, read or new log entry (performance.now()). */
  activeAt: number;
  /** The last index seen by the idle check. */
  lastIndex: number;
  /** When a message from the current leader last arrived (performance.now()). */
  leaderHeardAt: number;
  /** The incarnation of the leader's store when this follower went to sleep. */
  incarnation: number | undefined;
  /** When this follower last told its leader to wake (performance.now()). */
  pokedAt: number;
  /** A leader that went to sleep leaving out followers on stores known down. */
  skipped: boolean;
}

export function newSleepState(now = performance.now()): SleepState {
  return {
    asleep: false,
    activeAt: now,
    lastIndex: 0,
    leaderHeardAt: now,
    incarnation: undefined,
    pokedAt: -Infinity,
    skipped: false,
  };
}

/** What the hibernation needs of its store. */
export interface HibernatingStore {
  readonly storeId: number;
  readonly peers: ReadonlyMap<number, Peer>;
  readonly config: { readonly raftTickMs: number; readonly electionTicks: number };
  /** Marks a peer for the Ready loop without waking it. */
  markDirty(peer: Peer): void;
  /** Sends envelopes to a store (its transport). */
  send(storeId: number, envelopes: RaftEnvelope[]): void;
}

/** Counters for metrics and tests. */
export interface HibernationStats {
  /** Leaders that quiesced their region. */
  leaderSleeps: number;
  /** Followers that went to sleep on a quiesce heartbeat. */
  followerSleeps: number;
  wakes: number;
  /** Wakes by cause: `request`, `liveness`, `message:<type>` (what woke a sleeping peer). */
  readonly wokenBy: Record<string, number>;
  /** Messages telling a sleeping leader to wake. */
  pokes: number;
}

/** The sleeping and waking of one store's region peers. */
export class Hibernation {
  readonly liveness: StoreLiveness;
  /** Peers that tick. */
  readonly #awake = new Set<Peer>();
  /** Other stores → regions with a peer there (and one here). */
  readonly #byStore = new Map<number, Set<number>>();
  /** Region → the other stores it has peers on. */
  readonly #storesOf = new Map<number, readonly number[]>();
  readonly stats: HibernationStats = {
    leaderSleeps: 0,
    followerSleeps: 0,
    wakes: 0,
    wokenBy: {},
    pokes: 0,
  };
  /** Quiet time after which a leader tries to let its region sleep. */
  readonly sleepAfterMs: number;
  /**
   * How long a store must have been silent before the followers of its leaders wake and
   * campaign on their own: ten election timeouts.
   */
  readonly failoverMs: number;
  /** Stores called down, waiting for {@link failoverMs} of silence. */
  readonly #failovers = new Map<number, number>();
  /** Wakes a liveness change asked for, done a bounded number per tick (see below). */
  #livenessWakes: { regionId: number; storeId: number; change: LivenessChange }[] = [];
  #livenessWakesDone = 0;

  constructor(
    readonly store: HibernatingStore,
    /** False: regions never sleep (they still wake; nothing puts them to sleep). */
    readonly enabled: boolean,
    incarnation: number,
    /** The liveness clock (tests move it). */
    readonly now: () => number = () => performance.now(),
  ) {
    const { raftTickMs, electionTicks } = store.config;
    this.sleepAfterMs = 2 * electionTicks * raftTickMs;
    this.failoverMs = 10 * electionTicks * raftTickMs;
    // A ping every two ticks (as often as leaders heartbeat by default) keeps a live store's
    // news well inside an election timeout. A store is called down only after three: a process
    // starved of CPU for a moment must not wake every region it shares (a follower's lease
    // check uses the time it last heard, not this verdict).
    this.liveness = new StoreLiveness(
      incarnation,
      2 * raftTickMs,
      3 * electionTicks * raftTickMs,
      (id) => store.send(id, []),
      now,
    );
    this.liveness.onChange = (id, change) => this.#onLivenessChange(id, change);
  }

  /** Number of local peers asleep. */
  get asleep(): number {
    return this.store.peers.size - this.#awake.size;
  }

  /** Whether `peer` ticks. */
  isAwake(peer: Peer): boolean {
    return this.#awake.has(peer);
  }

  /** The peers that tick. */
  awakePeers(): Iterable<Peer> {
    return this.#awake;
  }

  /** Regions with a peer on a store known down. */
  *regionsOnDownStores(): Iterable<number> {
    for (const [storeId, regions] of this.#byStore) {
      if (this.liveness.isDown(storeId)) yield* regions;
    }
  }

  /** A peer is created or loaded: it starts awake. */
  added(peer: Peer): void {
    peer.sleep.asleep = false;
    peer.sleep.activeAt = performance.now();
    this.#awake.add(peer);
  }

  /** A peer is gone. */
  removed(peer: Peer): void {
    this.#awake.delete(peer);
    this.#index(peer.regionId, []);
  }

  /** A region's members changed (or were learned): keeps the store → regions index. */
  regionChanged(region: Region): void {
    const others = [...new Set(region.peers.map((p) => p.storeId))].filter(
      (id) => id !== this.store.storeId,
    );
    this.#index(region.id, others);
  }

  #index(regionId: number, stores: readonly number[]): void {
    for (const s of this.#storesOf.get(regionId) ?? []) {
      const set = this.#byStore.get(s);
      set?.delete(regionId);
      if (set?.size === 0) this.#byStore.delete(s);
    }
    if (stores.length === 0) {
      this.#storesOf.delete(regionId);
      return;
    }
    this.#storesOf.set(regionId, stores);
    for (const s of stores) {
      let set = this.#byStore.get(s);
      if (!set) this.#byStore.set(s, set = new Set());
      set.add(regionId);
    }
  }

  /** Regions with a peer on `storeId` (and one here). */
  regionsOn(storeId: number): ReadonlySet<number> {
    return this.#byStore.get(storeId) ?? new Set();
  }

  /** A batch arrived from another store. */
  heard(storeId: number, incarnation: number | undefined): void {
    this.liveness.heard(storeId, incarnation);
  }

  /**
   * One tick: liveness pings and checks; every awake peer ticks; idle leaders try to sleep;
   * followers without news of their leader tell it to wake.
   */
  tick(): void {
    this.liveness.tick(this.#byStore.keys());
    this.#checkFailovers();
    this.#drainLivenessWakes();
    const now = performance.now();
    const { electionTicks, raftTickMs } = this.store.config;
    const halfElection = Math.ceil(electionTicks / 2);
    for (const peer of [...this.#awake]) {
      if (peer.destroyed) {
        this.#awake.delete(peer);
        continue;
      }
      peer.raw.tick();
      this.store.markDirty(peer);
      const raft = peer.raw.raft;
      if (raft.state === "Leader") {
        const last = raft.raftLog.lastIndex();
        if (last !== peer.sleep.lastIndex) {
          peer.sleep.lastIndex = last;
          peer.sleep.activeAt = now;
        } else if (this.enabled && now - peer.sleep.activeAt >= this.sleepAfterMs) {
          this.#trySleep(peer);
        }
      } else if (
        raft.state === "Follower" && raft.lead !== NONE && raft.electionElapsed >= halfElection &&
        now - peer.sleep.pokedAt >= electionTicks * raftTickMs
      ) {
        this.#poke(peer);
      }
    }
  }

  /** Something needs the region: wake its peer and note the activity. */
  touch(peer: Peer): void {
    peer.sleep.activeAt = performance.now();
    if (peer.sleep.asleep) this.wake(peer, true, "request");
  }

  /**
   * A Raft message for `peer` arrived. Returns true if it was a quiesce heartbeat, fully handled
   * here; otherwise the caller steps it (after this woke the peer).
   */
  onMessage(peer: Peer, env: RaftEnvelope, isQuiesce: boolean): boolean {
    if (!isQuiesce) {
      if (peer.sleep.asleep && !isNoNews(peer, env.message)) {
        this.wake(
          peer,
          env.fromPeer.id !== peer.raw.raft.lead,
          `message:${env.message.type}`,
        );
      }
      return false;
    }
    if (peer.stepQuiesce(env.message, env.fromPeer) && this.enabled) {
      if (!peer.sleep.asleep) this.stats.followerSleeps++;
      peer.sleep.asleep = true;
      peer.sleep.incarnation = this.liveness.incarnationOf(env.fromPeer.storeId);
      this.#awake.delete(peer);
    } else if (peer.sleep.asleep) {
      // Answered as a heartbeat: the leader is awake again.
      this.wake(peer, false, "message:unmatched quiesce");
    }
    this.store.markDirty(peer);
    return true;
  }

  /**
   * Wakes a sleeping peer (see the module comment). `tellLeader`: a follower tells its leader,
   * unless the leader's own message woke it.
   */
  wake(peer: Peer, tellLeader: boolean, cause: string): void {
    if (!peer.sleep.asleep || peer.destroyed) return;
    peer.sleep.asleep = false;
    this.#awake.add(peer);
    this.stats.wakes++;
    this.stats.wokenBy[cause] = (this.stats.wokenBy[cause] ?? 0) + 1;
    const raft = peer.raw.raft;
    if (raft.state === "Leader") {
      peer.raw.wake(0);
      this.refreshHeard(peer);
    } else {
      const idleMs = performance.now() - this.#newsOfLeader(peer);
      peer.raw.wake(Math.floor(idleMs / this.store.config.raftTickMs));
      if (tellLeader) this.#poke(peer);
    }
    this.store.markDirty(peer);
  }

  /**
   * For down-peer reports: a sleeping region hears nothing from its followers, so a follower on
   * a store heard from lately counts as heard from then.
   */
  refreshHeard(peer: Peer): void {
    const now = performance.now();
    const wall = Date.now();
    for (const p of peer.region.peers) {
      if (p.storeId === this.store.storeId) continue;
      const at = this.liveness.heardAt(p.storeId);
      if (at === undefined || this.liveness.isDown(p.storeId)) continue;
      const heard = wall - (now - at);
      if (heard > (peer.lastHeard.get(p.id) ?? 0)) peer.lastHeard.set(p.id, heard);
    }
  }

  /**
   * The latest news of this follower's leader: its own messages, or, while the leader's store
   * has not restarted since this follower went to sleep, anything from that store. A restarted
   * store leads nothing it led before, so its leader then counts as never heard from.
   */
  #newsOfLeader(peer: Peer): number {
    const s = peer.sleep;
    const leader = peer.leader();
    if (!leader || leader.storeId === this.store.storeId) return s.leaderHeardAt;
    const now = this.liveness.incarnationOf(leader.storeId);
    if (s.incarnation !== undefined && now !== undefined && now !== s.incarnation) {
      return -Infinity;
    }
    const storeHeard = this.liveness.heardAt(leader.storeId);
    return s.incarnation !== undefined && storeHeard !== undefined
      ? Math.max(s.leaderHeardAt, storeHeard)
      : s.leaderHeardAt;
  }

  #trySleep(peer: Peer): void {
    if (peer.destroyed || !peer.storage.isInitialized() || peer.pendingCount() > 0) return;
    // A region in a merge waits for its target to take it over; it stays awake until then.
    if (peer.mergeState !== undefined || peer.mergedInto !== undefined) return;
    if (peer.storage.snapshotRequested || peer.appliedIndex !== peer.raw.raft.raftLog.committed) {
      return;
    }
    const down = (id: number) => {
      const meta = peer.peerCache.get(id) ?? peer.region.peers.find((p) => p.id === id);
      return meta !== undefined && this.liveness.isDown(meta.storeId);
    };
    if (!peer.raw.quiesce(down)) return;
    // A lease must not outlive the quorum checks a sleeping leader stops making.
    peer.invalidateLease();
    peer.sleep.asleep = true;
    peer.sleep.skipped = peer.region.peers.some((p) => this.liveness.isDown(p.storeId));
    this.#awake.delete(peer);
    this.stats.leaderSleeps++;
    this.store.markDirty(peer); // the quiesce heartbeats go out with the next pass
  }

  /** Tells this follower's leader to wake: an empty heartbeat answer (it wakes on any message). */
  #poke(peer: Peer): void {
    const raft = peer.raw.raft;
    const leader = peer.leader();
    if (!leader || leader.storeId === this.store.storeId) return;
    peer.sleep.pokedAt = performance.now();
    if (this.liveness.isDown(leader.storeId)) return; // nothing would get there
    this.stats.pokes++;
    const region = peer.region;
    const message: Message = {
      ...newMessage({ type: "MsgHeartbeatResp", to: leader.id, context: WAKE }),
      from: peer.meta.id,
      term: raft.term,
    };
    this.store.send(leader.storeId, [{
      regionId: region.id,
      fromPeer: region.peers.find((p) => p.id === peer.meta.id) ?? peer.meta,
      toPeer: leader,
      epoch: region.epoch,
      startKey: region.startKey,
      endKey: region.endKey,
      message,
    }]);
  }

  /**
   * Wakes the sleeping peers a change of `storeId`'s liveness concerns: once it has been down
   * and silent for {@link failoverMs}, followers whose leader is there (they campaign) and leaders
   * left without a live quorum (they check their quorum and step down); when it comes back,
   * leaders that went to sleep without their followers there (they catch them up); when it
   * restarted, every peer of a region it holds (its peers forgot who leads).
   */
  #onLivenessChange(storeId: number, change: LivenessChange): void {
    if (change === "down") {
      // Regions nobody uses need no leader in a hurry; one that is needed wakes at once anyway.
      // So a store called down is given time to speak again before its followers campaign: a
      // stall must not start an election storm, which would only make the stall worse.
      this.#failovers.set(storeId, this.now());
      return;
    }
    this.#failovers.delete(storeId);
    this.#queueWakes(storeId, change);
    this.#drainLivenessWakes();
  }

  #queueWakes(storeId: number, change: LivenessChange): void {
    for (const regionId of this.regionsOn(storeId)) {
      this.#livenessWakes.push({ regionId, storeId, change });
    }
  }

  /** Stores called down whose regions wake once they have been silent for {@link failoverMs}. */
  #checkFailovers(): void {
    for (const [storeId] of this.#failovers) {
      if (!this.liveness.isDown(storeId)) {
        this.#failovers.delete(storeId);
        continue;
      }
      const heard = this.liveness.heardAt(storeId) ?? -Infinity;
      if (this.now() - heard < this.failoverMs) continue;
      this.#failovers.delete(storeId);
      this.#queueWakes(storeId, "down");
    }
  }

  /**
   * Does up to {@link LIVENESS_WAKES_PER_TICK} of the wakes liveness changes asked for, each
   * only if its reason still holds (a store called down that spoke again wakes no more
   * followers).
   */
  #drainLivenessWakes(): void {
    let budget = LIVENESS_WAKES_PER_TICK;
    const queue = this.#livenessWakes;
    while (budget > 0 && this.#livenessWakesDone < queue.length) {
      const { regionId, storeId, change } = queue[this.#livenessWakesDone++]!;
      const peer = this.store.peers.get(regionId);
      if (!peer?.sleep.asleep) continue;
      const down = this.liveness.isDown(storeId);
      const leads = peer.raw.raft.state === "Leader";
      const wake = change === "restarted" ||
        (change === "down" && down &&
          (leads ? !this.#liveQuorum(peer) : peer.leader()?.storeId === storeId)) ||
        (change === "up" && !down && leads && peer.sleep.skipped);
      if (!wake) continue;
      this.wake(peer, true, `liveness:${change}`);
      budget--;
    }
    if (this.#livenessWakesDone >= queue.length || this.#livenessWakesDone > 4096) {
      this.#livenessWakes = queue.slice(this.#livenessWakesDone);
      this.#livenessWakesDone = 0;
    }
  }

  /** Whether the region's voters on stores not known down make a quorum. */
  #liveQuorum(peer: Peer): boolean {
    const voters = peer.region.peers.filter((p) => p.role === "Voter");
    const live = voters.filter((p) =>
      p.storeId === this.store.storeId || !this.liveness.isDown(p.storeId)
    );
    return live.length > voters.length / 2;
  }
}

/**
 * Whether a message for a sleeping peer only confirms what it knows, so that it is stepped
 * without waking the peer: a heartbeat from a follower's own leader (the leader may be awake;
 * the follower answers it and need not tick), and on a leader a plain acknowledgement from a
 * follower that is caught up — the answers to the last heartbeats and appends before the leader
 * went to sleep, still on their way. Anything else wakes it: a follower's word to wake carries
 * {@link WAKE}, and an answer from a follower that is behind needs the leader awake.
 */
export function isNoNews(peer: Peer, m: Message): boolean {
  const raft = peer.raw.raft;
  if (m.term !== raft.term) return false;
  if (raft.state === "Follower") return m.type === "MsgHeartbeat" && m.from === raft.lead;
  if (raft.state !== "Leader") return false;
  const pr = raft.trk.progress.get(m.from);
  const last = raft.raftLog.lastIndex();
  if (!pr || pr.match !== last) return false;
  if (m.type === "MsgHeartbeatResp") return (m.context?.length ?? 0) === 0;
  return m.type === "MsgAppResp" && !m.reject && m.index <= pr.match;
}
