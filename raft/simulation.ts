/**
 * A randomized, seeded simulation of a raft group under faults, checking Raft's safety
 * properties after every step. It is the core of `simulation_test.ts` and can be run from the
 * command line too (raft/ itself does no I/O, so the CLI lives in tools/):
 *
 *     deno run tools/raft_simulate.ts [firstSeed] [count] [steps]
 *
 * Each run drives `RawNode`s the way an application does (persist entries and hard state, then
 * send, then apply, then advance — sometimes many steps after taking the Ready, while the node
 * keeps stepping messages and ticks, as with a slow disk), over a network that loses, reorders and duplicates messages
 * and partitions peers, while peers crash and restart from what they persisted (unstable
 * entries are lost), clients propose, the membership changes — single-step (add voter, add
 * learner, promote, remove) and joint (`ConfChangeV2`: replace, grow, shrink, promote and
 * demote, the leader included, entering a joint configuration left automatically or by the
 * application; see simulation_conf.ts) — and leadership is transferred. Peers that apply a
 * configuration without themselves are destroyed, as a store destroys a removed region peer.
 * Idle groups quiesce (quiesce.ts) the way a store lets its regions sleep: sleeping peers are
 * not ticked, any message or local request wakes them, and the time a woken peer believes it
 * went without news of its leader is arbitrary (the application's clock and its view of which
 * peers are down are not trusted for safety).
 *
 * Checked after every step:
 * - election safety: at most one leader per term;
 * - log matching: two logs holding an entry with the same index and term hold the same data
 *   and agree on the term of the preceding entry (checked when entries are persisted; by
 *   induction the logs are then identical up to that index);
 * - committed entries never change: each peer's entry at its persisted commit index matches
 *   the term recorded the first time any peer committed that index; a new leader holds the
 *   highest committed entry (leader completeness). (The persisted index, because a leader
 *   counts its own entries when it appends them: its in-memory commit index may cover entries a
 *   crash loses before the Ready that persists them, and before anyone could observe them.)
 * - state machine safety: every peer applies consecutive indexes, and its running hash after
 *   each index (or after a snapshot) equals the one global sequence's hash at that index;
 * - ReadIndex: a read state's index is at least the highest commit index known anywhere when
 *   the read was requested (linearizable reads);
 * - config agreement: every peer that applies the conf change at an index ends in the same
 *   configuration, a snapshot carries the configuration in force at its index, no committed
 *   conf change is refused at apply (the leader validated it against that very
 *   configuration), and a peer's raft configuration is the one its application applied.
 *
 * The whole run is a function of the seed: replay a failure with `MRKV_SEED=<seed>`.
 *
 * @module
 */
import { decodeConfChangeEntry } from "./codec.ts";
import { ConfChangeError, ProposalDroppedError } from "./errors.ts";
import { seededRandom } from "./logger.ts";
import { isQuiesceMessage } from "./quiesce.ts";
import { RawNode } from "./rawnode.ts";
import { MemoryStorage } from "./storage.ts";
import type { Ready } from "./rawnode.ts";
import { ConfigHistory, confKey, jointSeam, randomConfChange } from "./simulation_conf.ts";
import {
  type ConfState,
  type Entry,
  inConfState,
  isConfChangeEntry,
  isConfChangeV2,
  isJointConfState,
  type Message,
} from "./types.ts";

/** Knobs of one simulation run. */
export interface SimulationOptions {
  seed: number;
  /** Number of random steps (default 2000). */
  steps?: number;
  /** Receives a line per event, for replaying a failing seed by hand. */
  trace?: (line: string) => void;
}

/** What a run did, so callers can check it was not vacuous. */
export interface SimulationStats {
  seed: number;
  steps: number;
  /** Highest index committed by any peer. */
  maxCommitted: number;
  /** Client proposals whose entries were applied somewhere. */
  appliedProposals: number;
  /** Distinct (term, leader) pairs seen. */
  leaders: number;
  crashes: number;
  /** Conf change entries applied, summed over peers. */
  confChangesApplied: number;
  /**
   * Committed `ConfChangeV2` entries, and how many of them entered and left a joint
   * configuration (each index counted once, however many peers applied it).
   */
  confChangesV2: number;
  jointEntered: number;
  jointLeft: number;
  transfers: number;
  snapshotsSent: number;
  readStates: number;
  /** Leaders that quiesced, and followers that went to sleep on a quiesce heartbeat. */
  quiesced: number;
  followersSlept: number;
}

/** A safety property was broken. The message names the seed and how to replay it. */
export class SimulationViolation extends Error {
  constructor(seed: number, step: number, what: string) {
    super(
      `raft simulation seed ${seed} violated safety at step ${step}: ${what}\n` +
        `  replay: MRKV_SEED=${seed} deno test -A raft/simulation_test.ts`,
    );
    this.name = "SimulationViolation";
  }
}

/** One simulated peer: its durable state (storage + applied state) and, when up, its node. */
interface SimPeer {
  readonly id: number;
  readonly storage: MemoryStorage;
  rn: RawNode | undefined;
  /** Durable applied state, written together with the applied entries. */
  applied: number;
  hash: number;
  confState: ConfState;
  destroyed: boolean;
  restarts: number;
  /**
   * A Ready taken but not yet persisted/sent/applied: the node keeps stepping and ticking
   * meanwhile (as with an asynchronous storage write), and a crash loses it.
   */
  pending: Ready | undefined;
  /** This peer's writes often take many steps. */
  slowDisk: boolean;
  /** Quiesced: not ticked until something wakes it. */
  asleep: boolean;
}

/**
 * FNV-1a over bytes: a cheap digest of entry data. The checks compare digests, not bytes; a
 * collision could only hide a violation, never invent one.
 */
function fnv(data: Uint8Array, h = 0x811c9dc5): number {
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ data[i]!, 0x01000193) >>> 0;
  return h;
}

/**
 * One step of the applied-sequence hash chain: the hash after applying `e` on top of state
 * hash `h`. Equal hashes at an index mean (up to collisions) equal applied prefixes.
 */
function mix(h: number, e: Entry): number {
  return fnv(e.data, Math.imul(h ^ (e.type === "ConfChange" ? 0x5bd1e995 : 0), 0x9e3779b1) >>> 0);
}

/** Big-endian 4-byte encoding: snapshot data (the state hash) and proposal ids. */
function u32(n: number): Uint8Array {
  return new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
}

function readU32(b: Uint8Array): number {
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

const ELECTION_TICK = 10;
const HEARTBEAT_TICK = 2;

/** Runs one seeded simulation; throws `SimulationViolation` when a property breaks. */
export function runSimulation(opts: SimulationOptions): SimulationStats {
  return new Simulation(opts.seed, opts.trace).run(opts.steps ?? 2000);
}

/**
 * One run. Holds the simulated peers, the network, and the global truth the checks compare
 * against. Everything random comes from `rand`, seeded from the seed, so a run replays exactly.
 */
class Simulation {
  readonly seed: number;
  readonly rand: () => number;
  readonly peers = new Map<number, SimPeer>();
  /** Messages in flight, in no particular order (delivery picks at random: reordering). */
  inflight: Message[] = [];
  /** Partition: peer id -> group; messages between groups are lost. Empty = healed. */
  group = new Map<number, number>();
  nextId: number;
  nextProposal = 1;
  step = 0;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly dropRate: number;

  // --- global truth, for the checks ---
  /** term -> the leader of that term. */
  readonly leaderOfTerm = new Map<number, number>();
  /** `${index}/${term}` -> data hash and previous term, for log matching. */
  readonly logIndex = new Map<string, { data: number; prevTerm: number }>();
  /** index -> term of the committed entry there. */
  readonly committedTerm = new Map<number, number>();
  /** index -> running hash of the one applied sequence through that index. */
  readonly chain = new Map<number, number>();
  /** Outstanding reads: ctx key -> highest commit known anywhere when requested. */
  readonly reads = new Map<string, number>();
  maxCommitted = 0;
  readonly appliedProposals = new Set<number>();
  /** The configuration after each conf change index (config agreement). */
  readonly configs: ConfigHistory;
  readonly stats = {
    crashes: 0,
    confChangesApplied: 0,
    confChangesV2: 0,
    jointEntered: 0,
    jointLeft: 0,
    transfers: 0,
    snapshotsSent: 0,
    readStates: 0,
    quiesced: 0,
    followersSlept: 0,
  };
  /** Set in the settling phase: the application keeps everyone awake. */
  settling = false;

  readonly trace: ((line: string) => void) | undefined;

  constructor(seed: number, trace?: (line: string) => void) {
    this.seed = seed;
    this.trace = trace;
    this.rand = seededRandom(seed * 7919 + 17);
    this.preVote = this.rand() < 0.75;
    this.checkQuorum = this.rand() < 0.75;
    this.dropRate = this.rand() * 0.15;
    const n = 3 + Math.floor(this.rand() * 3); // 3..5 voters
    const voters = Array.from({ length: n }, (_, i) => i + 1);
    this.configs = new ConfigHistory(1, { voters, learners: [] });
    this.nextId = n + 1;
    for (const id of voters) {
      // Bootstrapped like a TiKV region: a snapshot at index 1 holds the initial config, so a
      // peer added later (with an empty log) is caught up by a snapshot.
      const storage = new MemoryStorage();
      storage.applySnapshot({
        metadata: { index: 1, term: 1, confState: { voters, learners: [] } },
        data: u32(0),
      });
      this.addPeer(id, storage, 1, 0, { voters, learners: [] });
    }
    this.chain.set(1, 0);
    this.committedTerm.set(1, 1);
  }

  /** A uniform integer in [0, n). */
  private int(n: number): number {
    return Math.floor(this.rand() * n);
  }

  /** A uniformly chosen element, or undefined for an empty list. */
  private pick<T>(xs: readonly T[]): T | undefined {
    return xs.length === 0 ? undefined : xs[this.int(xs.length)];
  }

  private fail(what: string): never {
    throw new SimulationViolation(this.seed, this.step, what);
  }

  /** Creates a peer with the given durable state and starts it. */
  private addPeer(
    id: number,
    storage: MemoryStorage,
    applied: number,
    hash: number,
    cs: ConfState,
  ) {
    const p: SimPeer = {
      id,
      storage,
      rn: undefined,
      applied,
      hash,
      confState: cs,
      destroyed: false,
      restarts: 0,
      pending: undefined,
      slowDisk: this.rand() < 0.2,
      asleep: false,
    };
    this.peers.set(id, p);
    this.start(p);
  }

  /** (Re)starts a peer from its durable state. */
  private start(p: SimPeer): void {
    p.asleep = false;
    p.storage.setConfState(
      p.confState.voters.length + p.confState.learners.length > 0 ? p.confState : undefined,
    );
    p.rn = new RawNode({
      id: p.id,
      electionTick: ELECTION_TICK,
      heartbeatTick: HEARTBEAT_TICK,
      storage: p.storage,
      applied: p.applied,
      preVote: this.preVote,
      checkQuorum: this.checkQuorum,
      maxSizePerMsg: 64 + this.int(256),
      maxInflightMsgs: 1 + this.int(8),
      rand: seededRandom(this.seed * 1000003 + p.id * 101 + p.restarts),
    });
  }

  /** Peers that are up (not crashed, not destroyed). */
  private live(): SimPeer[] {
    const out: SimPeer[] = [];
    for (const p of this.peers.values()) if (p.rn && !p.destroyed) out.push(p);
    return out;
  }

  /**
   * The live leader of the highest term, if any (a deposed leader may still believe it leads
   * in an older term until it hears otherwise).
   */
  private leader(): SimPeer | undefined {
    let best: SimPeer | undefined;
    for (const p of this.live()) {
      if (p.rn!.raft.state === "Leader" && (!best || p.rn!.raft.term > best.rn!.raft.term)) {
        best = p;
      }
    }
    return best;
  }

  /**
   * Runs `steps` random steps: one action, then each live peer runs its Ready loop with
   * probability 0.8 (so unpersisted state regularly survives a step and can be lost in a crash),
   * then every check. Finishes with a fault-free settling phase.
   */
  run(steps: number): SimulationStats {
    for (this.step = 0; this.step < steps; this.step++) {
      this.randomAction();
      for (const p of this.live()) if (this.rand() < 0.8) this.handleReady(p);
      this.check();
    }
    this.settle();
    return {
      seed: this.seed,
      steps,
      maxCommitted: this.maxCommitted,
      appliedProposals: this.appliedProposals.size,
      leaders: [...this.leaderOfTerm.keys()].length,
      ...this.stats,
    };
  }

  /** Heals everything and lets the group run fault-free for a while (more checks). */
  private settle(): void {
    this.group.clear();
    this.settling = true;
    for (const p of this.live()) this.wake(p);
    for (const p of this.peers.values()) if (!p.rn && !p.destroyed) this.start(p);
    for (let i = 0; i < 300; i++, this.step++) {
      this.deliverAll();
      for (const p of this.live()) p.rn!.tick();
      if (i % 10 === 0) this.propose(true);
      for (const p of this.live()) this.handleReady(p);
      for (const p of this.live()) while (p.pending) this.completePending(p);
      this.check();
    }
  }

  /**
   * Picks one action. Weights: message delivery 40% (random messages: reordering), ticks 20%,
   * proposals 12%, and a few percent each for conf changes, transfers, crash/restart,
   * repartitioning, compaction, reads, duplication and snapshot (un)availability.
   */
  private randomAction(): void {
    const r = this.rand();
    if (r < 0.4) {
      for (let k = 1 + this.int(4); k > 0; k--) this.deliverOne();
    } else if (r < 0.6) {
      for (const p of this.live()) if (!p.asleep) p.rn!.tick();
    } else if (r < 0.7) {
      this.propose(this.rand() < 0.8);
    } else if (r < 0.72) {
      this.quiesce();
    } else if (r < 0.75) {
      this.changeConf();
    } else if (r < 0.77) {
      this.transfer();
    } else if (r < 0.79) {
      this.crashOrRestart();
    } else if (r < 0.81) {
      this.repartition();
    } else if (r < 0.84) {
      this.compact();
    } else if (r < 0.86) {
      this.readIndex();
    } else if (r < 0.87) {
      // Duplicate a message in flight.
      const m = this.pick(this.inflight);
      if (m) this.inflight.push(m);
    } else if (r < 0.88) {
      const p = this.pick(this.live());
      if (p) p.storage.snapshotUnavailable = !p.storage.snapshotUnavailable;
    } else if (r < 0.89) {
      // The application wakes a peer on its own (its view of a store's liveness changed).
      const p = this.pick(this.live().filter((x) => x.asleep));
      if (p) this.wake(p);
    } else {
      this.deliverAll();
    }
  }

  // --- the application loop ---------------------------------------------------------------

  /**
   * Takes a Ready and, usually at once, persists, sends, applies and advances it as the store's
   * Ready loop does; a pending one is completed first.
   */
  private handleReady(p: SimPeer): void {
    if (p.pending) {
      if (p.slowDisk && this.rand() < 0.95) return; // still being written
      const rd = p.pending;
      p.pending = undefined;
      this.completeReady(p, rd);
      return;
    }
    const rn = p.rn!;
    if (!rn.hasReady()) return;
    const rd = rn.ready();
    if (this.trace) {
      const r = rn.raft;
      const span = (es: readonly Entry[]) =>
        es.length === 0
          ? "-"
          : `${es[0]!.index}/${es[0]!.term}..${es.at(-1)!.index}/${es.at(-1)!.term}`;
      this.trace(
        `[${this.step}] ready ${p.id} ${r.state} t${r.term} ents=${span(rd.entries)} ` +
          `hs=${rd.hardState ? JSON.stringify(rd.hardState) : "-"} commit=${
            span(rd.committedEntries)
          }` +
          (rd.snapshot ? ` snap=${rd.snapshot.metadata.index}/${rd.snapshot.metadata.term}` : "") +
          ` msgs=${rd.messages.map((m) => `${m.type}>${m.to}`).join(",")}`,
      );
    }
    // Sometimes the write is slow: the Ready completes in a later step (much later on a peer
    // with a slow disk), while the node keeps receiving messages and ticks.
    if (this.rand() < (p.slowDisk ? 0.5 : 0.25)) p.pending = rd;
    else this.completeReady(p, rd);
  }

  /** Completes a pending Ready now (the settling phase has no slow disks). */
  private completePending(p: SimPeer): void {
    const rd = p.pending!;
    p.pending = undefined;
    this.completeReady(p, rd);
  }

  /** Persists, sends, applies and advances a Ready taken earlier. */
  private completeReady(p: SimPeer, rd: Ready): void {
    const rn = p.rn!;
    if (rd.snapshot) p.storage.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) {
      p.storage.append(rd.entries);
      this.checkLogMatching(p, rd.entries);
    }
    if (rd.hardState) p.storage.setHardState(rd.hardState);
    for (const m of rd.messages) {
      if (m.type === "MsgSnap") this.stats.snapshotsSent++;
      this.inflight.push(m);
    }
    if (rd.snapshot) {
      const meta = rd.snapshot.metadata;
      const h = readU32(rd.snapshot.data);
      const expect = this.chain.get(meta.index);
      if (expect === undefined) {
        this.fail(`peer ${p.id} got a snapshot at ${meta.index} nobody applied`);
      }
      if (expect !== h) this.fail(`peer ${p.id} snapshot at ${meta.index} has a different state`);
      if (this.configs.keyAt(meta.index) !== confKey(meta.confState)) {
        this.fail(
          `peer ${p.id} snapshot at ${meta.index} has configuration ${confKey(meta.confState)}`,
        );
      }
      p.applied = meta.index;
      p.hash = h;
      p.confState = meta.confState;
    }
    for (const e of rd.committedEntries) this.apply(p, e);
    p.storage.setConfState(p.confState);
    for (const rs of rd.readStates) this.checkRead(p, rs.index, rs.requestCtx);
    rn.advance(rd);
    if (p.destroyed) p.rn = undefined;
  }

  /**
   * Applies one committed entry to the peer's state machine (the hash chain), checking it
   * against the one global sequence; conf changes update the peer's configuration, create peers
   * that are added, and destroy a peer that applies its own removal.
   */
  private apply(p: SimPeer, e: Entry): void {
    if (p.destroyed) return;
    if (e.index !== p.applied + 1) {
      this.fail(`peer ${p.id} applied ${e.index} after ${p.applied}`);
    }
    p.hash = mix(p.hash, e);
    p.applied = e.index;
    const expect = this.chain.get(e.index);
    if (expect === undefined) this.chain.set(e.index, p.hash);
    else if (expect !== p.hash) {
      this.fail(`peer ${p.id} applied a different entry (or history) at index ${e.index}`);
    }
    if (isConfChangeEntry(e)) {
      this.applyConfChange(p, e);
    } else if (e.data.byteLength === 8) {
      this.appliedProposals.add(readU32(e.data.subarray(4)));
    }
  }

  /**
   * Applies a conf change entry of either kind, checks config agreement, creates the peers it
   * adds (empty: a snapshot brings them up, as a store creates a new region peer) and destroys
   * this peer if it is no longer in the configuration. A refusal at apply is a violation: the
   * leader checked the change against the configuration it applies to.
   */
  private applyConfChange(p: SimPeer, e: Entry): void {
    const cc = decodeConfChangeEntry(e);
    try {
      p.confState = p.rn!.applyConfChange(cc);
    } catch (err) {
      if (!(err instanceof ConfChangeError)) throw err;
      this.fail(`peer ${p.id} refused the committed conf change at ${e.index}: ${err.message}`);
    }
    this.stats.confChangesApplied++;
    const seen = this.configs.record(e.index, p.confState);
    if (seen.verdict === "different") {
      this.fail(`peer ${p.id} has configuration ${confKey(p.confState)} after index ${e.index}`);
    }
    if (seen.verdict === "new" && isConfChangeV2(cc)) {
      this.stats.confChangesV2++;
      if (seen.entered) this.stats.jointEntered++;
      if (seen.left) this.stats.jointLeft++;
    }
    this.trace?.(
      `[${this.step}] ${p.id} applied conf change at ${e.index}: ${confKey(p.confState)}`,
    );
    for (const id of [...p.confState.voters, ...p.confState.learners]) {
      if (!this.peers.has(id)) {
        this.addPeer(id, new MemoryStorage(), 0, 0, { voters: [], learners: [] });
      }
    }
    if (!inConfState(p.confState, p.id)) {
      p.destroyed = true;
    } else if (this.rand() < 0.5) {
      // Stores often snapshot their current state soon after a membership change, so a peer
      // just added is caught up by a snapshot that includes it (an older one is refused).
      this.snapshotApplied(p);
    }
  }

  /**
   * Snapshots the peer's applied state (data: the state hash) if that is newer than its
   * stored snapshot and its log holds the applied entry. Returns whether it did.
   */
  private snapshotApplied(p: SimPeer): boolean {
    const unavailable = p.storage.snapshotUnavailable;
    p.storage.snapshotUnavailable = false;
    const snapIndex = p.storage.snapshot().metadata.index;
    p.storage.snapshotUnavailable = unavailable;
    if (p.applied <= snapIndex || p.applied > p.storage.lastIndex()) return false;
    p.storage.createSnapshot(p.applied, p.confState, u32(p.hash));
    return true;
  }

  // --- actions ----------------------------------------------------------------------------

  /** Delivers one message chosen at random among those in flight. */
  private deliverOne(): void {
    if (this.inflight.length === 0) return;
    const i = this.int(this.inflight.length);
    const m = this.inflight[i]!;
    this.inflight[i] = this.inflight[this.inflight.length - 1]!;
    this.inflight.pop();
    this.deliver(m);
  }

  /** Delivers everything in flight (new messages wait for the next step). */
  private deliverAll(): void {
    const msgs = this.inflight;
    this.inflight = [];
    for (const m of msgs) this.deliver(m);
  }

  /**
   * Delivers a message unless it is lost: target down, partitioned away, or random loss.
   * Snapshot messages report their fate to the sender, as a transport would; a cut link is
   * sometimes reported as unreachable.
   */
  private deliver(m: Message): void {
    const to = this.peers.get(m.to);
    const from = this.peers.get(m.from);
    const cut = (this.group.get(m.from) ?? 0) !== (this.group.get(m.to) ?? 0);
    const lost = !to?.rn || to.destroyed || cut || this.rand() < this.dropRate;
    if (m.type === "MsgSnap" && from?.rn && !from.destroyed) {
      from.rn.reportSnapshot(m.to, lost ? "Failure" : "Finish");
    }
    if (lost) {
      if (cut && from?.rn && !from.destroyed && this.rand() < 0.3) {
        this.wake(from);
        from.rn.reportUnreachable(m.to);
      }
      return;
    }
    this.trace?.(
      `[${this.step}] deliver ${m.type} ${m.from}>${m.to} t${m.term} i${m.index} lt${m.logTerm} c${m.commit}` +
        ` n${m.entries.length}${
          m.entries.length ? `(${m.entries[0]!.index}/${m.entries[0]!.term}..)` : ""
        }` +
        `${m.reject ? ` reject hint${m.rejectHint}` : ""}`,
    );
    if (isQuiesceMessage(m) && !this.settling) {
      // Stepped as a heartbeat (and answered) unless the follower matches and may sleep.
      if (to.rn!.stepQuiesce(m)) {
        if (!to.asleep) this.stats.followersSlept++;
        to.asleep = true;
      } else this.wake(to);
      return;
    }
    this.wake(to);
    try {
      to.rn!.step(m);
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e;
    }
  }

  /**
   * Wakes a sleeping peer, telling it it went an arbitrary time without news of its leader (a
   * store derives it from its clock and its view of other stores' liveness; safety must not
   * depend on either).
   */
  private wake(p: SimPeer): void {
    if (!p.asleep || !p.rn) return;
    p.asleep = false;
    p.rn.wake(this.int(2 * ELECTION_TICK + 1));
  }

  /**
   * The leader quiesces its group if it is idle, skipping peers the application believes are
   * down: crashed or cut off, and now and then a live one by mistake.
   */
  private quiesce(): void {
    // A quiet moment first (no new requests, no crashes): what is in flight lands, so an idle
    // group is reached now and then despite the steady faults.
    for (let k = 0; k < 3; k++) {
      this.deliverAll();
      for (const q of this.live()) this.handleReady(q);
    }
    const p = this.leader();
    if (!p || p.asleep) return;
    const cut = (id: number) => (this.group.get(id) ?? 0) !== (this.group.get(p.id) ?? 0);
    const skip = (id: number) => {
      const q = this.peers.get(id);
      return !q?.rn || q.destroyed || cut(id) || this.rand() < 0.05;
    };
    if (p.rn!.quiesce(skip)) {
      p.asleep = true;
      this.stats.quiesced++;
    }
  }

  /**
   * Proposes a uniquely numbered 8-byte entry (sometimes a batch), usually at the leader,
   * otherwise at a random peer (which forwards it or drops it).
   */
  private propose(atLeader: boolean): void {
    const p = atLeader ? this.leader() : this.pick(this.live());
    if (!p) return;
    this.wake(p);
    const n = this.nextProposal++;
    const data = new Uint8Array(8);
    data.set(u32(0x70726f70), 0);
    data.set(u32(n), 4);
    try {
      if (this.rand() < 0.2) {
        const more = [data];
        for (let k = this.int(5); k > 0; k--) {
          const d = new Uint8Array(8);
          d.set(u32(0x70726f70), 0);
          d.set(u32(this.nextProposal++), 4);
          more.push(d);
        }
        p.rn!.proposeBatch(more);
      } else {
        p.rn!.propose(data);
      }
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e;
    }
  }

  /**
   * Proposes a membership change at the leader, like a scheduler would: a single-step change
   * or a joint one, or the leave of an explicit joint configuration (simulation_conf.ts).
   */
  private changeConf(): void {
    const p = this.leader();
    if (!p) return;
    this.wake(p);
    const cc = randomConfChange(p.rn!.raft.trk.confState(), p.id, {
      rand: () => this.rand(),
      int: (n) => this.int(n),
      pick: (xs) => this.pick(xs),
      newId: () => this.nextId++,
    });
    if (!cc) return;
    this.trace?.(`[${this.step}] propose conf change at ${p.id}: ${JSON.stringify(cc)}`);
    try {
      p.rn!.proposeConfChange(cc);
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e;
    }
  }

  /**
   * Asks the leader to transfer leadership to a random voter (possibly itself; in a joint
   * configuration, a voter of either half).
   */
  private transfer(): void {
    const p = this.leader();
    if (!p) return;
    this.wake(p);
    const to = this.pick(p.rn!.raft.trk.voterIds());
    if (to === undefined) return;
    this.stats.transfers++;
    p.rn!.transferLeader(to);
  }

  /**
   * Restarts a crashed peer from its durable state, or crashes a live one: its RawNode and
   * everything not yet persisted (unstable entries, unsent messages, volatile state) is lost.
   */
  private crashOrRestart(): void {
    const down = [...this.peers.values()].filter((p) => !p.rn && !p.destroyed);
    if (down.length > 0 && this.rand() < 0.6) {
      const p = this.pick(down)!;
      this.trace?.(`[${this.step}] restart ${p.id} applied=${p.applied}`);
      p.restarts++;
      this.start(p);
      return;
    }
    const p = this.pick(this.live());
    if (!p) return;
    // Crash: everything not persisted (unstable entries, a Ready being written, volatile
    // state) is lost.
    this.trace?.(`[${this.step}] crash ${p.id}`);
    p.rn = undefined;
    p.pending = undefined;
    p.storage.snapshotUnavailable = false;
    this.stats.crashes++;
  }

  /**
   * Heals the network, or splits the peers into two random groups. While a joint
   * configuration is in force, the split often runs along its seam — voters of the old
   * configuration against voters of the new one — the partition where a leader that counted
   * only one configuration would lose committed entries.
   */
  private repartition(): void {
    this.group.clear();
    if (this.rand() < 0.4) return; // healed
    const cs = this.leader()?.rn?.raft.trk.confState();
    if (cs !== undefined && isJointConfState(cs) && this.rand() < 0.5) {
      this.group = jointSeam(cs, this.peers.keys(), () => this.int(2));
      return;
    }
    for (const id of this.peers.keys()) this.group.set(id, this.int(2));
  }

  /**
   * Snapshots a peer at its applied index (data: the state hash) and compacts its log,
   * sometimes keeping a few entries, so leaders must send snapshots to lagging peers.
   */
  private compact(): void {
    const p = this.pick(this.live());
    if (!p || !this.snapshotApplied(p)) return;
    const compacted = p.storage.firstIndex() - 1;
    // Keep a few entries so that slightly lagging followers still get appends.
    const keep = this.int(4);
    if (p.applied - keep > compacted) p.storage.compact(p.applied - keep);
  }

  /**
   * Issues a ReadIndex request at a random peer, remembering the highest commit index known
   * anywhere at that moment: a linearizable read must not be served below it.
   */
  private readIndex(): void {
    const p = this.pick(this.live());
    if (!p) return;
    this.wake(p);
    const ctx = u32(this.nextProposal++);
    let known = 0;
    for (const q of this.live()) known = Math.max(known, q.rn!.raft.raftLog.committed);
    this.reads.set(String(readU32(ctx)), known);
    p.rn!.readIndex(ctx);
  }

  // --- checks -----------------------------------------------------------------------------

  /**
   * Log matching, checked as entries are persisted: every log that ever holds (index, term)
   * holds the same data there and the same term just before it.
   */
  private checkLogMatching(p: SimPeer, ents: readonly Entry[]): void {
    for (const e of ents) {
      let prevTerm: number;
      try {
        prevTerm = p.storage.term(e.index - 1);
      } catch {
        continue; // compacted predecessor: nothing to compare
      }
      const key = `${e.index}/${e.term}`;
      const data = fnv(e.data, e.type === "ConfChange" ? 1 : 2);
      const seen = this.logIndex.get(key);
      if (seen === undefined) this.logIndex.set(key, { data, prevTerm });
      else if (seen.data !== data || seen.prevTerm !== prevTerm) {
        this.fail(
          `log matching: peer ${p.id} has a different entry at index ${e.index} term ${e.term}`,
        );
      }
    }
  }

  /** A read state must not be older than the commit known when its read was issued. */
  private checkRead(p: SimPeer, index: number, ctx: Uint8Array): void {
    this.stats.readStates++;
    const known = this.reads.get(String(readU32(ctx)));
    if (known !== undefined && index < known) {
      this.fail(`peer ${p.id} read index ${index} is behind commit ${known} known at request time`);
    }
  }

  /** The per-step checks: election safety, stable commits, leader completeness. */
  private check(): void {
    let newLeader: SimPeer | undefined;
    for (const p of this.live()) {
      const r = p.rn!.raft;
      // The core's configuration is the one the application applied, except while a received
      // snapshot (which switched the core at once) is not yet applied.
      if (!p.pending && !r.raftLog.hasPendingSnapshot()) {
        const k = confKey(r.trk.confState());
        if (k !== confKey(p.confState)) {
          this.fail(`peer ${p.id} runs configuration ${k}, applied ${confKey(p.confState)}`);
        }
      }
      if (r.state === "Leader") {
        const l = this.leaderOfTerm.get(r.term);
        if (l === undefined) {
          this.trace?.(
            `[${this.step}] leader ${p.id} term ${r.term} last ${r.raftLog.lastIndex()}`,
          );
          this.leaderOfTerm.set(r.term, p.id);
          newLeader = p;
        } else if (l !== p.id) this.fail(`two leaders in term ${r.term}: ${l} and ${p.id}`);
      }
    }
    for (const p of this.peers.values()) {
      // The persisted commit index: a leader counts its own entries as soon as it appends them,
      // so its in-memory commit index may include entries a crash loses before anyone saw them.
      const c = p.storage.initialState().hardState.commit;
      if (c > 0) {
        let t = 0;
        try {
          t = p.storage.term(c);
        } catch { /* compacted past: nothing to compare */ }
        const seen = this.committedTerm.get(c);
        if (seen === undefined) {
          this.trace?.(`[${this.step}] first commit of ${c} (term ${t}) by ${p.id}`);
          this.committedTerm.set(c, t);
        } else if (t !== 0 && seen !== t) {
          this.fail(
            `peer ${p.id} committed index ${c} with term ${t}, earlier committed with term ${seen}`,
          );
        }
        if (c > this.maxCommitted) this.maxCommitted = c;
      }
    }
    if (newLeader) {
      // Leader completeness: the new leader holds the highest committed entry.
      const log = newLeader.rn!.raft.raftLog;
      const t = this.committedTerm.get(this.maxCommitted);
      if (this.maxCommitted > log.lastIndex()) {
        this.fail(`leader ${newLeader.id} lacks committed index ${this.maxCommitted}`);
      }
      const lt = log.zeroTermOnCompacted(this.maxCommitted);
      if (t !== undefined && t !== 0 && lt !== 0 && lt !== t) {
        this.fail(
          `leader ${newLeader.id} has term ${lt} at committed index ${this.maxCommitted}, not ${t}`,
        );
      }
    }
  }
}
