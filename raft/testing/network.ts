/**
 * A deterministic in-memory network of `Raft` peers for tests (etcd's `network`, TinyKV's
 * `newNetwork`). `send` is synchronous and runs until no message is left: it steps each
 * message into its target, collects what that peer emits, and delivers those in turn. No
 * ticks happen inside `send`, so a multi-step exchange (election, catch-up, snapshot, leader
 * transfer) must complete through messages alone.
 *
 * Faults: a seeded drop rate per link, cut/isolate/recover, ignoring a message type, holding
 * messages on a link back (delay) until `releaseDelayed`, and duplication. A peer emitting a
 * local-only message (e.g. `MsgHup`) fails the test: campaigns must be stepped internally.
 *
 * @module
 */
import { ProposalDroppedError } from "../errors.ts";
import { seededRandom } from "../logger.ts";
import { type Config, Raft } from "../raft.ts";
import { MemoryStorage } from "../storage.ts";
import { type Entry, isLocalMessage, type Message, type MessageType } from "../types.ts";

/** Options for the peers a `Network` creates itself. */
export interface NetworkOptions {
  electionTick?: number;
  heartbeatTick?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  /** Seed of the fault RNG (drops, duplicates). */
  seed?: number;
  /** Adjusts each created peer's config. */
  configure?: (c: Config) => void;
}

/** Creates a raft peer with a fresh `MemoryStorage` whose initial voters are `peers`. */
export function newTestRaft(
  id: number,
  peers: number[],
  electionTick: number,
  heartbeatTick: number,
  storage: MemoryStorage = new MemoryStorage(peers),
  extra: Partial<Config> = {},
): Raft {
  return new Raft({ id, electionTick, heartbeatTick, storage, ...extra });
}

/** A `MemoryStorage` whose initial configuration is `voters` (and `learners`). */
export function newTestStorage(voters: number[], learners: number[] = []): MemoryStorage {
  return new MemoryStorage(voters, learners);
}

/**
 * Persists `r`'s unstable entries into `s`, marks them stable, and returns the committed but
 * unapplied entries, marking them applied (TinyKV's `nextEnts`).
 */
export function nextEnts(r: Raft, s: MemoryStorage): Entry[] {
  const unstable = r.raftLog.unstableEntries();
  s.append(unstable);
  const last = unstable.at(-1);
  if (last) r.raftLog.stableTo(last.index, last.term);
  const ents = r.raftLog.nextEnts();
  r.raftLog.appliedTo(r.raftLog.committed);
  return ents;
}

/** The sorted ids in `r`'s configuration (voters and learners). */
export function nodes(r: Raft): number[] {
  return [...r.trk.progress.keys()].sort((a, b) => a - b);
}

function linkKey(from: number, to: number): string {
  return `${from}->${to}`;
}

/** See the module comment. A `null` peer is a black hole that swallows its messages. */
export class Network {
  readonly peers = new Map<number, Raft | null>();
  readonly storage = new Map<number, MemoryStorage>();
  /** Drop probability per link. */
  private readonly dropm = new Map<string, number>();
  /** Links whose messages are held back. */
  private readonly delaym = new Set<string>();
  /** Message types dropped everywhere. */
  private readonly ignorem = new Set<MessageType>();
  private dupRate = 0;
  private readonly rand: () => number;
  /** Messages held back by `delay`, in the order they were sent. */
  delayed: Message[] = [];
  /** Every message delivered (after filtering), for assertions. */
  delivered: Message[] = [];
  /** Optional extra filter: return false to drop a message. */
  msgHook: ((m: Message) => boolean) | undefined;

  /**
   * Peers get ids 1..n. `undefined` creates a peer (with all ids as voters), `null` is a black
   * hole, and a `Raft` is used as it is (its id must match its position).
   */
  constructor(peers: (Raft | null | undefined)[], opts: NetworkOptions = {}) {
    this.rand = seededRandom(opts.seed ?? 1);
    const ids = peers.map((_, i) => i + 1);
    peers.forEach((p, i) => {
      const id = i + 1;
      if (p === undefined) {
        const storage = new MemoryStorage(ids);
        const c: Config = {
          id,
          electionTick: opts.electionTick ?? 10,
          heartbeatTick: opts.heartbeatTick ?? 1,
          storage,
          preVote: opts.preVote,
          checkQuorum: opts.checkQuorum,
        };
        opts.configure?.(c);
        this.peers.set(id, new Raft(c));
        this.storage.set(id, storage);
      } else {
        if (p !== null && p.id !== id) throw new Error(`peer at position ${i} has id ${p.id}`);
        this.peers.set(id, p);
        if (p !== null && p.raftLog.storage instanceof MemoryStorage) {
          this.storage.set(id, p.raftLog.storage);
        }
      }
    });
  }

  /** The peer with `id`, which must exist and not be a black hole. */
  peer(id: number): Raft {
    const p = this.peers.get(id);
    if (!p) throw new Error(`no raft peer ${id} in the network`);
    return p;
  }

  /**
   * Delivers `msgs` and everything they cause, until nothing is left. As in etcd's and TinyKV's
   * test networks, the given messages themselves are delivered unfiltered (a test may step a
   * message into an isolated peer); only what peers emit passes through the faults. Use
   * `flush` to send what a peer queued on its own (e.g. after `tick`) through the faults.
   */
  send(...msgs: Message[]): void {
    const queue = [...msgs];
    for (let i = 0; i < queue.length; i++) {
      const m = queue[i]!;
      const p = this.peers.get(m.to);
      if (!p) continue;
      this.delivered.push(m);
      try {
        p.step(m);
      } catch (e) {
        // A proposal a peer refuses is dropped, as a real transport would.
        if (!(e instanceof ProposalDroppedError)) throw e;
      }
      const out = p.readMessages();
      for (const o of out) {
        if (isLocalMessage(o.type)) {
          throw new Error(`peer ${p.id} emitted local message ${o.type}; it must step it itself`);
        }
      }
      for (const f of this.filter(out)) queue.push(f);
    }
  }

  /** Sends the messages peer `id` queued (after a tick, say) through the faults. */
  flush(id: number): void {
    this.send(...this.filter(this.peer(id).readMessages()));
  }

  /** Ticks every live peer once, flushing each one's messages. */
  tickAll(): void {
    for (const [id, p] of this.peers) {
      if (!p) continue;
      p.tick();
      this.flush(id);
    }
  }

  /** Drops messages from `from` to `to` with probability `perc` (1 = always). */
  drop(from: number, to: number, perc: number): void {
    this.dropm.set(linkKey(from, to), perc);
  }

  /** Drops everything between `a` and `b`, both ways. */
  cut(a: number, b: number): void {
    this.drop(a, b, 2);
    this.drop(b, a, 2);
  }

  /** Drops everything to and from `id`. */
  isolate(id: number): void {
    for (const other of this.peers.keys()) if (other !== id) this.cut(id, other);
  }

  /** Drops every message of type `t`. */
  ignore(t: MessageType): void {
    this.ignorem.add(t);
  }

  /** Holds back messages from `from` to `to` until `releaseDelayed()`. */
  delay(from: number, to: number): void {
    this.delaym.add(linkKey(from, to));
  }

  /** Delivers each message twice with probability `rate`. */
  duplicate(rate: number): void {
    this.dupRate = rate;
  }

  /** Delivers the held-back messages (in the given order, default as sent). */
  releaseDelayed(order: "fifo" | "reverse" = "fifo"): void {
    const held = order === "fifo" ? this.delayed : [...this.delayed].reverse();
    this.delayed = [];
    this.delaym.clear();
    this.send(...held);
  }

  /** Clears drops, ignores, delays (held messages stay held) and duplication. */
  recover(): void {
    this.dropm.clear();
    this.ignorem.clear();
    this.delaym.clear();
    this.dupRate = 0;
  }

  private filter(msgs: Message[]): Message[] {
    const out: Message[] = [];
    for (const m of msgs) {
      if (this.ignorem.has(m.type)) continue;
      const perc = this.dropm.get(linkKey(m.from, m.to)) ?? 0;
      if (perc > 0 && this.rand() < perc) continue;
      if (this.msgHook && !this.msgHook(m)) continue;
      if (this.delaym.has(linkKey(m.from, m.to))) {
        this.delayed.push(m);
        continue;
      }
      out.push(m);
      if (this.dupRate > 0 && this.rand() < this.dupRate) out.push(m);
    }
    return out;
  }
}
