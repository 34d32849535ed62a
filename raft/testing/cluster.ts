/**
 * A deterministic cluster of `RawNode`s driven the way an application drives them (persist the
 * Ready, send, apply — conf changes included —, advance), for scenario tests that need the
 * whole loop: automatic leave of joint configurations (triggered by `advance`), restarts from
 * persisted state, snapshots, and peers created when a conf change adds them.
 *
 * `process()` runs every node's Ready loop and delivers messages until nothing is left; no
 * ticks happen inside it. Each node snapshots its state right after applying a conf change (as
 * a store generates snapshots from its current state), so a peer added with an empty log is
 * caught up by a snapshot whose configuration includes it. Every message goes through the codec (`encodeMessage` then
 * `decodeMessage`), as between real servers. Faults: crash/restart, isolate/heal.
 *
 * @module
 */
import { decodeConfChangeEntry, decodeMessage, encodeMessage } from "../codec.ts";
import { ProposalDroppedError } from "../errors.ts";
import type { Raft } from "../raft.ts";
import { RawNode, type Ready } from "../rawnode.ts";
import { MemoryStorage } from "../storage.ts";
import {
  type ConfChange,
  type ConfChangeV2,
  type ConfState,
  type Entry,
  inConfState,
  isConfChangeEntry,
  type Message,
  type ReadState,
} from "../types.ts";

/** Options of a `RawNodeCluster`. */
export interface ClusterOptions {
  preVote?: boolean;
  checkQuorum?: boolean;
  /** Initial learners (besides the voters). */
  learners?: number[];
}

/** One node: its durable state, and its `RawNode` while it is up. */
export interface ClusterNode {
  readonly id: number;
  readonly storage: MemoryStorage;
  /** Undefined while crashed, or once destroyed. */
  rn: RawNode | undefined;
  /** Durable applied state: the applied index and the data of applied normal entries. */
  applied: number;
  data: string[];
  /** The configuration the node applied last (persisted with the applied index). */
  confState: ConfState;
  /** Every configuration the node applied from a conf change entry, in order. */
  readonly confHistory: ConfState[];
  /** The node applied a configuration without itself and was destroyed. */
  destroyed: boolean;
  /** Read states handed out by its Readys. */
  readonly readStates: ReadState[];
}

const text = new TextEncoder();
const untext = new TextDecoder();

/** See the module comment. */
export class RawNodeCluster {
  readonly nodes = new Map<number, ClusterNode>();
  readonly opts: ClusterOptions;
  /** Messages sent and not yet delivered. */
  private queue: Message[] = [];
  /** Nodes cut off from every other node. */
  private readonly isolated = new Set<number>();
  /** Nodes that crash right after completing their next Ready. */
  private readonly crashAfterReady = new Set<number>();
  /** Called after a node applied an entry. */
  onApply: ((id: number, e: Entry) => void) | undefined;

  /**
   * Voters (and `opts.learners`) bootstrapped like a TiKV region: a snapshot at index 1 holds
   * the initial configuration, so a peer added later with an empty log catches up by snapshot.
   */
  constructor(voters: number[], opts: ClusterOptions = {}) {
    this.opts = opts;
    const cs: ConfState = { voters, learners: opts.learners ?? [] };
    for (const id of [...voters, ...cs.learners]) {
      const storage = new MemoryStorage();
      storage.applySnapshot({
        metadata: { index: 1, term: 1, confState: cs },
        data: text.encode("[]"),
      });
      this.addNode(id, storage, 1, cs);
    }
  }

  private addNode(id: number, storage: MemoryStorage, applied: number, cs: ConfState): void {
    const n: ClusterNode = {
      id,
      storage,
      rn: undefined,
      applied,
      data: [],
      confState: cs,
      confHistory: [],
      destroyed: false,
      readStates: [],
    };
    this.nodes.set(id, n);
    this.start(n);
  }

  private start(n: ClusterNode): void {
    const cs = n.confState;
    n.storage.setConfState(cs.voters.length + cs.learners.length > 0 ? cs : undefined);
    n.rn = new RawNode({
      id: n.id,
      electionTick: 10,
      heartbeatTick: 2,
      storage: n.storage,
      applied: n.applied,
      preVote: this.opts.preVote,
      checkQuorum: this.opts.checkQuorum,
    });
  }

  node(id: number): ClusterNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id} in the cluster`);
    return n;
  }

  /** The live node's raft state machine. */
  raft(id: number): Raft {
    const rn = this.node(id).rn;
    if (!rn) throw new Error(`node ${id} is down`);
    return rn.raft;
  }

  /** The live leader of the highest term, if any. */
  leader(): number | undefined {
    let best: Raft | undefined;
    for (const n of this.nodes.values()) {
      const r = n.rn?.raft;
      if (r?.state === "Leader" && (!best || r.term > best.term)) best = r;
    }
    return best?.id;
  }

  /** Campaigns at `id` now and runs the cluster until it is quiet. */
  campaign(id: number): void {
    this.node(id).rn!.campaign();
    this.process();
  }

  /** Proposes `data` at `id`; false when the proposal was dropped at once. */
  propose(id: number, data: string): boolean {
    return this.dropped(() => this.node(id).rn!.propose(text.encode(data)));
  }

  /** Proposes a conf change at `id`; false when it was dropped at once. */
  proposeConfChange(id: number, cc: ConfChange | ConfChangeV2): boolean {
    return this.dropped(() => this.node(id).rn!.proposeConfChange(cc));
  }

  /** Asks `id` (leader or follower) to transfer leadership to `to`. */
  transferLeader(id: number, to: number): void {
    this.node(id).rn!.transferLeader(to);
    this.process();
  }

  private dropped(f: () => void): boolean {
    try {
      f();
    } catch (e) {
      if (e instanceof ProposalDroppedError) return false;
      throw e;
    }
    this.process();
    return true;
  }

  /** Ticks every live node `n` times, running the cluster after each tick. */
  tick(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const node of this.nodes.values()) node.rn?.tick();
      this.process();
    }
  }

  /** Ticks until some live node leads (at most `max` ticks); returns it. */
  electLeader(max = 200): number {
    for (let i = 0; i < max; i++) {
      const l = this.leader();
      if (l !== undefined) return l;
      this.tick();
    }
    throw new Error(`no leader after ${max} ticks`);
  }

  /** Crashes `id`: everything not persisted (unstable entries, unsent messages) is lost. */
  crash(id: number): void {
    this.node(id).rn = undefined;
  }

  /** Crashes `id` right after it completes its next Ready (applied entries included). */
  crashAfterNextReady(id: number): void {
    this.crashAfterReady.add(id);
  }

  /** Restarts a crashed node from its persisted state. */
  restart(id: number): void {
    const n = this.node(id);
    if (n.rn || n.destroyed) throw new Error(`node ${id} is not down`);
    this.start(n);
  }

  /** Cuts `id` off from every other node (both ways). */
  isolate(id: number): void {
    this.isolated.add(id);
  }

  /** Reconnects `id`, or everyone. */
  heal(id?: number): void {
    if (id === undefined) this.isolated.clear();
    else this.isolated.delete(id);
  }

  /** Snapshots `id` at its applied index and compacts its log up to there. */
  compact(id: number): void {
    const n = this.node(id);
    if (n.storage.snapshot().metadata.index < n.applied) this.snapshot(n);
    n.storage.compact(n.applied);
  }

  /** Snapshots the node's applied state (data: its applied data, as JSON). */
  private snapshot(n: ClusterNode): void {
    n.storage.createSnapshot(n.applied, n.confState, text.encode(JSON.stringify(n.data)));
  }

  /** Runs every node's Ready loop and delivers messages until nothing is left to do. */
  process(): void {
    for (let round = 0;; round++) {
      if (round > 10_000) throw new Error("the cluster does not settle");
      let busy = false;
      for (const n of this.nodes.values()) {
        if (!n.rn?.hasReady()) continue;
        busy = true;
        this.handleReady(n, n.rn!.ready());
      }
      const msgs = this.queue;
      this.queue = [];
      for (const m of msgs) this.deliver(m);
      if (!busy && msgs.length === 0) return;
    }
  }

  /** Persist, send, apply, advance — the application's order. */
  private handleReady(n: ClusterNode, rd: Ready): void {
    const rn = n.rn!;
    if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
    n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    for (const m of rd.messages) this.queue.push(decodeMessage(encodeMessage(m)));
    if (rd.snapshot) {
      n.applied = rd.snapshot.metadata.index;
      n.data = JSON.parse(untext.decode(rd.snapshot.data));
      n.confState = rd.snapshot.metadata.confState;
    }
    for (const e of rd.committedEntries) this.apply(n, e);
    n.storage.setConfState(n.confState);
    n.readStates.push(...rd.readStates);
    rn.advance(rd);
    if (n.destroyed || this.crashAfterReady.delete(n.id)) n.rn = undefined;
  }

  private apply(n: ClusterNode, e: Entry): void {
    if (n.destroyed) return;
    n.applied = e.index;
    if (isConfChangeEntry(e)) {
      const cs = n.rn!.applyConfChange(decodeConfChangeEntry(e));
      n.confState = cs;
      n.confHistory.push(cs);
      // A store creates the peers a change adds (empty; a snapshot brings them up) and
      // destroys itself once it is no longer in the configuration.
      for (const id of [...cs.voters, ...cs.learners]) {
        if (!this.nodes.has(id)) {
          this.addNode(id, new MemoryStorage(), 0, { voters: [], learners: [] });
        }
      }
      if (!inConfState(cs, n.id)) n.destroyed = true;
      else this.snapshot(n);
    } else if (e.data.byteLength > 0) {
      n.data.push(untext.decode(e.data));
    }
    this.onApply?.(n.id, e);
  }

  private deliver(m: Message): void {
    const to = this.nodes.get(m.to);
    const from = this.nodes.get(m.from);
    const lost = !to?.rn || this.isolated.has(m.to) || this.isolated.has(m.from);
    if (m.type === "MsgSnap") from?.rn?.reportSnapshot(m.to, lost ? "Failure" : "Finish");
    if (lost) return;
    try {
      to.rn!.step(m);
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e;
    }
  }
}
