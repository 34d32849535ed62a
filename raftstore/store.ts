/**
 * A store: the region peers one process hosts, and the Ready loop that drives them all.
 *
 * The Ready loop, in this order, for every peer with work at once:
 * 1. install received snapshots (each its own crash-safe sequence, see snapshot.ts);
 * 2. send leaders' appends and heartbeats (they need not wait for the leader's own disk);
 *    one log engine write (one fdatasync) with every peer's new entries and hard state, and
 *    one Deno KV write with the data of committed entries, then applied indexes and region
 *    states — the two at once when every entry applied was already on disk, else log first;
 * 3. send the other Raft messages (votes, acknowledgements), grouped by destination store;
 * 4. act on the apply results: answer proposals and reads, membership changes, splits, log GC;
 * 5. advance every Raft node.
 * Persisting before sending means a vote or an append acknowledgement is never sent for state
 * that a crash could lose. Committed entries are durable before their data is written (they
 * were persisted by an earlier pass, or by this pass's log write, which then goes first), and
 * the data is written before the applied index that covers it, so a restart never re-applies
 * or skips an entry. A crash between the two writes of a pass can leave Deno KV's applied
 * index ahead of the log's hard state, never ahead of its entries (see PeerStorage.load).
 *
 * The rest of the store is in its parts (store_parts.ts is what they share): snapshot installs
 * and peer destruction (peer_lifecycle.ts), what applied admin commands write and do
 * (apply_effects.ts), the store's side of merges (store_merge.ts) and inbound Raft messages
 * (inbound.ts).
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { isEmptySnapshot, type Message, type Ready } from "../raft/mod.ts";
import type { KvEngine, RaftLogEngine } from "../storage/mod.ts";
import { MrkvError } from "../proto/errors.ts";
import { isJointRegion, rangesOverlap, type Region } from "../proto/metapb.ts";
import { applyEntries, type ApplyOutcome, type EntryResult } from "./apply.ts";
import { ApplyWriter } from "./apply_writer.ts";
import { Peer, type PeerConfig } from "./peer.ts";
import { PeerStorage } from "./peer_storage.ts";
import { StoreMeta } from "./store_meta.ts";
import { StoreMetrics } from "./metrics.ts";
import { FlowCounter } from "./flow.ts";
import type { LoadSampler } from "./load_split.ts";
import type { RaftBatch, RaftEnvelope, Transport } from "./transport.ts";
import { generateSnapshot, installSnapshot, loadSavedSnapshot } from "./snapshot.ts";
import { maybeLeaveJoint } from "./conf_change.ts";
import { decodeMergeState } from "./merge.ts";
import { EarlyVotes } from "./split.ts";
import { Hibernation } from "./hibernate.ts";
import { newIncarnation } from "./liveness.ts";
import {
  ApplyEffects,
  type CompactedRange,
  PHASE_APPLY_DATA,
  PHASE_APPLY_STATE,
  writeInitialState,
} from "./apply_effects.ts";
import { PeerLifecycle } from "./peer_lifecycle.ts";
import { StoreMerges } from "./store_merge.ts";
import { Inbound } from "./inbound.ts";
import type { RegionObserver, StoreLogger, StoreParts, Tombstone } from "./store_parts.ts";

export type { RegionObserver, StoreLogger } from "./store_parts.ts";

/** Ticks between checks that leaders of joint configurations are leaving them. */
const JOINT_CHECK_TICKS = 5;
/**
 * Mutations of applied data that may wait behind the write in flight before a pass waits for
 * its own (apply_writer.ts): a bound on the memory they hold while the engine falls behind.
 */
const MAX_QUEUED_APPLY_MUTATIONS = 8_000;

/** Store-level settings (the store keys of docs/configuration.md, already parsed). */
export interface StoreConfig {
  readonly raftTickMs: number;
  readonly heartbeatTicks: number;
  readonly electionTicks: number;
  readonly regionMaxSize: number;
  readonly regionSplitSize: number;
  readonly splitCheckMs: number;
  readonly raftLogGcCountLimit: number;
  readonly schedulerHeartbeatMs: number;
  /** A leader reports a peer down after this long unheard of (ms; heartbeat.ts has a default). */
  readonly maxPeerDownDuration?: number;
  /** Idle regions sleep (hibernate.ts); default true. */
  readonly hibernateRegions?: boolean;
  /** Followers serve reads with a read index from their leader (kv_service.ts); default true. */
  readonly followerRead?: boolean;
  /** Load-based split (load_split.ts, which has the defaults): on, thresholds and window. */
  readonly loadSplit?: boolean;
  readonly splitQpsThreshold?: number;
  readonly splitByteThreshold?: number;
  readonly splitDetectWindow?: number;
}

/**
 * How many results, from the start, may be answered before the write that applies them lands:
 * data commands whose entries are at or below `persisted` (on disk before this pass). Admin
 * commands wait (their effects are acted on after the write), and answers stay in index order.
 */
function earlyResults(results: readonly EntryResult[], persisted: number): number {
  let n = 0;
  while (n < results.length && !results[n]!.admin && results[n]!.index <= persisted) n++;
  return n;
}

/** Messages only a leader sends, replicating its log; they may leave before its write. */
function isLeaderReplication(m: Message): boolean {
  return m.type === "MsgApp" || m.type === "MsgHeartbeat" || m.type === "MsgSnap";
}

/** One store: its peers, their Ready loop and the store meta. */
export class Store {
  readonly peers = new Map<number, Peer>();
  readonly meta = new StoreMeta();
  /**
   * Regions whose local peer was destroyed, with the last region meta it had (and, for a region
   * merged away, its merge state: stale peers of it are told where it went).
   */
  readonly tombstones = new Map<number, Tombstone>();
  /** Vote requests for regions a split will create here once applied (split.ts). */
  readonly earlyVotes = new EarlyVotes();
  transport!: Transport;
  observer?: RegionObserver;
  /**
   * Called with every region whose members this store learns (load, snapshot, membership
   * change, split), so their stores' addresses are looked up before Raft needs them.
   */
  onRegionPeers?: (region: Region) => void;
  #dirty = new Set<Peer>();
  #looping = false;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #stopped = false;
  /**
   * Opens the inbound queue once {@link start} has loaded every peer: a message handled before
   * that would find no peer for its region and create a second one over the same Raft state.
   * (Declared before `#inbound`, whose initializer sets it.)
   */
  #started: () => void = () => {};
  /** Serializes inbound message handling (peer creation is async); held until started. */
  #inbound: Promise<void> = new Promise((resolve) => (this.#started = resolve));
  /** Counters for /metrics. */
  readonly stats = {
    readyPasses: 0,
    entriesPersisted: 0,
    entriesApplied: 0,
    messagesSent: 0,
    snapshotsSent: 0,
    snapshotsApplied: 0,
    engineWrites: 0,
    engineWriteMs: 0,
    /** Client writes apply skipped as copies of one already applied, or refused as expired. */
    duplicateWrites: 0,
    expiredWrites: 0,
  };
  /** Latency histograms and the registry `/metrics` renders. */
  readonly metrics = new StoreMetrics();
  /** Bytes read and written per region, reported in heartbeats for hot-region statistics. */
  readonly flow = new FlowCounter();
  /** Samples the requests leaders serve, for load-based split (load_split.ts); unset: off. */
  loadSampler: LoadSampler | undefined;
  /** Set if the Ready loop failed: the store must not serve anything more. */
  fatal: Error | undefined;
  #onDead!: (e: Error) => void;
  /** Rejects with the reason if the store dies on its own (its Ready loop failed). */
  readonly dead: Promise<void> = new Promise((_, reject) => (this.#onDead = reject));
  #loopDone: Promise<void> = Promise.resolve();
  readonly #applyWriter: ApplyWriter;
  /** Which peers sleep, and the other stores' liveness (hibernate.ts, liveness.ts). */
  readonly hibernation: Hibernation;
  #ticks = 0;
  /** The parts this store is made of (see store_parts.ts). */
  readonly #lifecycle: PeerLifecycle;
  readonly #merges: StoreMerges;
  readonly #effects: ApplyEffects;
  readonly #messages: Inbound;

  constructor(
    readonly storeId: number,
    readonly engine: KvEngine,
    readonly raftLog: RaftLogEngine,
    readonly config: StoreConfig,
    readonly log: StoreLogger,
    readonly peerConfig: Partial<PeerConfig> = {},
  ) {
    this.hibernation = new Hibernation(this, config.hibernateRegions ?? true, newIncarnation());
    const parts: StoreParts = {
      storeId,
      engine,
      raftLog,
      log,
      peers: this.peers,
      meta: this.meta,
      tombstones: this.tombstones,
      hibernation: this.hibernation,
      earlyVotes: this.earlyVotes,
      flow: this.flow,
      stats: this.stats,
      stopped: () => this.#stopped,
      observer: () => this.observer,
      transport: () => this.transport,
      setRegion: (region, initialized) => this.#setRegion(region, initialized),
      newPeer: (meta, storage) => new Peer(this.storeId, meta, storage, this.#peerConfig()),
      schedule: (peer) => this.schedule(peer),
      markDirty: (peer) => this.markDirty(peer),
      applyLanded: () => this.#applyWriter.landed(),
      send: (storeId, envelopes) => this.send(storeId, envelopes),
    };
    this.#applyWriter = new ApplyWriter(engine);
    this.#lifecycle = new PeerLifecycle(parts);
    this.#merges = new StoreMerges(parts, this.#lifecycle);
    this.#effects = new ApplyEffects(parts, this.#lifecycle, this.#merges);
    this.#messages = new Inbound(parts, this.#lifecycle, this.#merges);
  }

  /** Loads every peer from the engine and starts ticking. `transport` must be set first. */
  async start(): Promise<void> {
    for (const regionId of await this.engine.regionIds()) {
      const state = await this.engine.regionState(regionId);
      if (!state) continue;
      const region = state.region as Region;
      const peerMeta = region.peers.find((p) => p.storeId === this.storeId);
      if (state.peerState === "Tombstone") {
        const merge = state.merge === undefined
          ? undefined
          : decodeMergeState(state.merge, `merge state of region ${regionId}`);
        this.tombstones.set(regionId, { region, peerId: peerMeta?.id ?? 0, merge });
        // Left by a destruction a crash cut short (see peer_lifecycle.ts).
        await this.engine.deleteAppliedRequests(regionId);
        if (this.raftLog.bounds(regionId) || this.raftLog.hardState(regionId)) {
          await this.raftLog.write(this.raftLog.batch().clean(regionId), { sync: false });
        }
        continue;
      }
      if (state.peerState === "Applying") {
        const snap = await loadSavedSnapshot(this.engine, regionId);
        if (!snap) throw new Error(`region ${regionId} is Applying but its snapshot is missing`);
        this.log.warn(`region ${regionId}: finishing a snapshot install interrupted by a restart`);
        await installSnapshot(
          this.engine,
          this.raftLog,
          snap,
          undefined,
          this.raftLog.hardState(regionId),
        );
        this.stats.snapshotsApplied++;
        const again = await this.engine.regionState(regionId);
        if (!again) continue;
        await this.#loadPeer(again.region as Region);
        continue;
      }
      const peer = await this.#loadPeer(region);
      if (peer && state.peerState === "Merging") {
        peer.mergeState = decodeMergeState(state.merge, `merge state of region ${regionId}`);
      }
    }
    await this.#merges.finishInterrupted();
    this.#ticker = setInterval(() => this.#tick(), this.config.raftTickMs);
    this.#started();
    this.log.info(`store ${this.storeId}: started with ${this.peers.size} region peers`);
  }

  async #loadPeer(region: Region): Promise<Peer | undefined> {
    const meta = region.peers.find((p) => p.storeId === this.storeId);
    if (!meta) {
      this.log.warn(`region ${region.id} has no peer on store ${this.storeId}; ignoring it`);
      return undefined;
    }
    const storage = await PeerStorage.load(this.engine, this.raftLog, region);
    const peer = new Peer(this.storeId, meta, storage, this.#peerConfig());
    await this.#effects.sweepLog(peer);
    this.peers.set(region.id, peer);
    this.hibernation.added(peer);
    this.#setRegion(region, storage.isInitialized());
    this.schedule(peer);
    return peer;
  }

  #peerConfig(): PeerConfig {
    const config: PeerConfig = {
      electionTicks: this.config.electionTicks,
      heartbeatTicks: this.config.heartbeatTicks,
      maxSizePerMsg: 1024 * 1024,
      maxInflightMsgs: 256,
      preVote: true,
      checkQuorum: true,
      // Two ticks short of the shortest election timeout (see Peer.hasLease).
      leaseMs: (this.config.electionTicks - 2) * this.config.raftTickMs,
      ...this.peerConfig,
    };
    // The lease argument rests on CheckQuorum: without it there is no lease.
    return config.checkQuorum ? config : { ...config, leaseMs: 0 };
  }

  /** Stops ticking and the Ready loop; the engine stays open (the caller owns it). */
  stop(): void {
    this.#stopped = true;
    this.#started(); // queued messages are dropped (the loop checks #stopped), not awaited forever
    clearInterval(this.#ticker);
    this.transport?.close();
    for (const p of this.peers.values()) {
      p.failPending(new MrkvError("ServerIsBusy", "store is stopping"));
    }
  }

  /**
   * Resolves once the Ready loop, inbound message handling and peer destructions have gone
   * quiet (a destruction still deleting when the engine closes would fail loudly).
   */
  async idle(): Promise<void> {
    await this.#inbound;
    await this.#loopDone;
    await this.#applyWriter.landed();
    await this.#effects.logGcDone();
    await this.#lifecycle.settled();
  }

  /**
   * The value applied data on its way to the engine writes at user key `key` (`null`: deleted),
   * or `undefined` if none: then the engine has it. A read of one key asks here first.
   */
  appliedValue(key: Uint8Array): Uint8Array | null | undefined {
    return this.#applyWriter.pending(key);
  }

  /**
   * Deno KV commits of applied data, the passes' batches they carried, and reads answered
   * before their data landed (apply_writer.ts).
   */
  get applyWrites(): {
    readonly writes: number;
    readonly batches: number;
    readonly pendingReads: number;
  } {
    const w = this.#applyWriter;
    return { writes: w.writes, batches: w.batches, pendingReads: w.pendingReads };
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Creates region 1 (or any first region) on this store: region state, an apply state at
   * `RAFT_INIT_LOG_INDEX` and a matching hard state, then starts its peer.
   */
  async bootstrapRegion(region: Region): Promise<void> {
    const lb = this.raftLog.batch();
    const wb = this.engine.batch();
    writeInitialState(wb, lb, region);
    await this.raftLog.write(lb);
    await this.engine.write(wb);
    await this.#loadPeer(region);
  }

  // ---- scheduling ----

  /** Records a region in the store meta and tells {@link onRegionPeers} who its peers are. */
  #setRegion(region: Region, initialized: boolean): void {
    this.meta.setRegion(region, initialized);
    this.hibernation.regionChanged(region);
    if (region.peers.length > 0) this.onRegionPeers?.(region);
  }

  /**
   * Something needs this peer (a proposal, a read, an operator step): wakes it if its region
   * sleeps, and marks it for the Ready loop.
   */
  schedule(peer: Peer): void {
    if (this.#stopped || peer.destroyed) return;
    this.hibernation.touch(peer);
    this.markDirty(peer);
  }

  /** Sends envelopes to another store (noted as news of this store, see liveness.ts). */
  send(storeId: number, envelopes: RaftEnvelope[]): void {
    this.hibernation.liveness.sent(storeId);
    this.transport.send(storeId, envelopes);
  }

  /** Marks a peer as having work, without waking it; the Ready loop picks it up soon. */
  markDirty(peer: Peer): void {
    if (this.#stopped || peer.destroyed) return;
    this.#dirty.add(peer);
    if (!this.#looping) {
      this.#looping = true;
      // A macrotask, not a microtask: requests and messages whose I/O has already completed
      // get to propose and step first, so one pass (one engine write, one request per store)
      // carries all of them.
      // (setImmediate runs after the pending I/O callbacks without setTimeout's 4 ms clamp.)
      this.#loopDone = new Promise((resolve) =>
        setImmediate(() => this.#readyLoop().then(resolve))
      );
    }
  }

  #tick(): void {
    if (this.#stopped) return;
    this.hibernation.tick();
    // A joint configuration is left by its leader, whoever that is by now (see conf_change.ts);
    // a refused or lost leave is tried again here. Only awake peers: a leader in a joint
    // configuration does not sleep (raft/quiesce.ts).
    if (++this.#ticks % JOINT_CHECK_TICKS !== 0) return;
    for (const peer of this.hibernation.awakePeers()) {
      if (peer.isLeader() && isJointRegion(peer.region)) {
        maybeLeaveJoint(peer, () => this.schedule(peer), this.log);
      }
    }
  }

  async #readyLoop(): Promise<void> {
    try {
      while (this.#dirty.size > 0 && !this.#stopped) {
        const peers = [...this.#dirty];
        this.#dirty.clear();
        await this.#readyPass(peers);
      }
    } catch (e) {
      this.#fail(e as Error);
    } finally {
      this.#looping = false;
    }
  }

  #fail(e: Error): void {
    if (this.fatal) return;
    this.fatal = e;
    this.log.error(`store ${this.storeId}: Ready loop failed, stopping: ${e.stack ?? e}`);
    this.stop();
    this.#onDead(e);
  }

  async #readyPass(peers: Peer[]): Promise<void> {
    this.stats.readyPasses++;
    this.#merges.catchUpSources();
    // Snapshots Raft asked for are generated here, between passes: apply is paused. A merging
    // region sends none: its peers all had its log up to the merge's min index, and a snapshot
    // could not carry its frozen state.
    if (peers.some((p) => p.storage.snapshotRequested)) await this.#applyWriter.landed();
    for (const p of peers) {
      if (p.storage.snapshotRequested && !p.destroyed && !p.mergeState) {
        p.storage.setGeneratedSnapshot(await generateSnapshot(this.engine, p.storage));
      }
    }
    const readies: [Peer, Ready][] = [];
    for (const p of peers) {
      if (p.destroyed) continue;
      p.flushReads();
      if (p.raw.hasReady()) readies.push([p, p.raw.ready()]);
    }
    if (readies.length === 0) return;
    // A destruction of one of these peers waits for the pass (see peer_lifecycle.ts).
    await this.#lifecycle.runPass(readies.map(([p]) => p), () => this.#runPass(readies));
  }

  /** Steps 1 to 5 of the Ready loop (see the module comment) for the Readies a pass took. */
  async #runPass(readies: [Peer, Ready][]): Promise<void> {
    // 1. Snapshots received.
    if (readies.some(([, rd]) => rd.snapshot && !isEmptySnapshot(rd.snapshot))) {
      await this.#applyWriter.landed();
    }
    for (const [p, rd] of readies) {
      if (rd.snapshot && !isEmptySnapshot(rd.snapshot)) {
        await this.#lifecycle.installSnapshot(p, rd);
      }
    }
    // A message handled during those awaits may have begun to destroy a peer (the destruction
    // waits for this pass): nothing more of its Ready is written.
    readies = readies.filter(([p]) => !p.destroyed);

    // A leader's appends, heartbeats and snapshots go out before its own write, so followers
    // persist in parallel with it (Raft thesis §10.2.1). Safe here: the leader's commit index
    // may count its own entries before they are on its disk, but it only becomes visible —
    // in messages or in apply — through a later pass, which starts after this write is done.
    this.#sendMessages(readies, true);

    // 2. The writes: entries and hard states to the log engine; applied data (phase 0) and apply
    // state (phase 1) to Deno KV. First note how much of each log was on disk before this pass
    // (see earlyResults).
    const persisted = new Map<Peer, number>();
    for (const [p, rd] of readies) {
      const before = p.storage.lastIndex();
      persisted.set(p, rd.entries.length > 0 ? Math.min(before, rd.entries[0]!.index - 1) : before);
    }
    const lb = this.raftLog.batch();
    const wb = this.engine.batch();
    // Whether something applied now was not on disk before this pass (a single-voter region
    // commits what it appends in the same Ready): then the log write must land first.
    let logFirst = false;
    // Whether the log write must be synced: entries, or a new term or vote (etcd's MustSync). A
    // commit index alone need not be: a lost one is learnt again, and loading never leaves it
    // below the applied index.
    let mustSync = false;
    for (const [p, rd] of readies) {
      const before = p.storage.hardState;
      if (rd.entries.length > 0) mustSync = true;
      if (
        rd.hardState && (rd.hardState.term !== before.term || rd.hardState.vote !== before.vote)
      ) {
        mustSync = true;
      }
      p.storage.append(rd.entries, lb);
      if (rd.hardState) p.storage.setHardState(rd.hardState, lb);
      this.stats.entriesPersisted += rd.entries.length;
      if ((rd.committedEntries.at(-1)?.index ?? 0) > persisted.get(p)!) logFirst = true;
    }
    const outcomes: [Peer, ApplyOutcome][] = [];
    const compacted: CompactedRange[] = [];
    for (const [p, rd] of readies) {
      if (rd.committedEntries.length === 0) continue;
      const requests = p.storage.requests;
      const [duplicates, expired] = [requests.duplicates, requests.expired];
      const outcome = applyEntries(
        p.region,
        p.appliedIndex,
        rd.committedEntries,
        wb,
        {
          data: PHASE_APPLY_DATA,
          state: PHASE_APPLY_STATE,
        },
        requests,
        {
          merge: p.mergeState,
          mergeSource: (req) => this.#merges.sourceReady(p, req),
          onWrite: this.#loadHook(p),
        },
      );
      this.stats.duplicateWrites += requests.duplicates - duplicates;
      this.stats.expiredWrites += requests.expired - expired;
      this.#effects.persist(p, outcome, wb, lb, compacted);
      wb.atPhase(PHASE_APPLY_STATE).putApplyState(p.regionId, {
        ...p.storage.applyState,
        appliedIndex: outcome.appliedIndex,
      });
      outcomes.push([p, outcome]);
      this.stats.entriesApplied += rd.committedEntries.length;
    }
    // Data writes whose entries earlier passes persisted are answered now, before this write
    // lands: each is committed — on this store's disk and on a quorum's — so a crash now only
    // means replaying it from the log, and readers wait until the applied index (advanced after
    // the write) covers their read index. An entry persisted by this very write (a single-voter
    // region commits in the same Ready) waits for the write like everything else.
    for (const [p, outcome] of outcomes) {
      const early = earlyResults(outcome.results, persisted.get(p)!);
      if (early > 0) p.onApplied(outcome.results.slice(0, early));
      outcome.answered = early;
    }
    // The applied data is written behind the log (see apply_writer.ts) when nothing in this
    // pass needs it landed before the pass ends: every result was answered above, and no admin
    // command, log compaction or merge acts on it.
    // (And while the writer keeps up: a pass waits for its data once that much is queued.)
    const behind = wb.size > 0 && !logFirst && compacted.length === 0 &&
      this.#applyWriter.queuedMutations < MAX_QUEUED_APPLY_MUTATIONS &&
      outcomes.every(([p, o]) =>
        o.effects.length === 0 && o.blockedAt === undefined && !p.mergeState &&
        o.answered === o.results.length
      );
    if (wb.size > 0 || !lb.isEmpty) {
      const started = performance.now();
      const log = lb.isEmpty ? undefined : this.raftLog.write(lb, { sync: mustSync });
      if (logFirst) await log;
      if (behind) {
        this.#applyWriter.enqueue(wb, (e) => this.#landed(outcomes, e), true);
        // Reads of one key can see it now, through the writer (Peer.visibleIndex).
        for (const [p, outcome] of outcomes) p.appliedInMemory(outcome.appliedIndex);
        await log;
      } else {
        await Promise.all([log, wb.size > 0 ? this.#applyWriter.write(wb) : undefined]);
      }
      this.stats.engineWrites++;
      this.stats.engineWriteMs += performance.now() - started;
      this.metrics.engineWrite.observe((performance.now() - started) / 1000);
    }
    for (const range of compacted) this.#effects.compactLog(range);

    // 3. The other messages, one batch per destination store.
    this.#sendMessages(readies, false);

    // 4. Act on results.
    if (!behind) { for (const [p, outcome] of outcomes) this.#effects.afterApply(p, outcome); }
    for (const [p, rd] of readies) {
      if (rd.softState) {
        if (rd.softState.raftState !== "Leader") {
          p.failPending(
            new MrkvError("NotLeader", `peer ${p.meta.id} lost leadership of region ${p.regionId}`),
            true,
          );
        }
        this.observer?.regionChanged(p);
      }
      p.onReadStates(rd);
    }

    // 5. Advance. A peer whose apply waits at a CommitMerge tells Raft it applied only what it
    // did: the rest is handed out again, and the peer waits for its source (or a tick) instead
    // of spinning.
    const blocked = new Map<Peer, number>();
    for (const [p, outcome] of outcomes) {
      if (outcome.blockedAt !== undefined) blocked.set(p, outcome.blockedAt);
    }
    for (const [p, rd] of readies) {
      if (p.destroyed) continue;
      const at = blocked.get(p);
      if (at === undefined) {
        p.raw.advance(rd);
        if (p.raw.hasReady()) this.#dirty.add(p);
      } else {
        p.raw.advance({ ...rd, committedEntries: rd.committedEntries.filter((e) => e.index < at) });
      }
    }
  }

  /** A pass's applied data written behind the log has landed (step 4 for it). */
  #landed(outcomes: readonly [Peer, ApplyOutcome][], error: Error | undefined): void {
    if (this.#stopped) return;
    if (error) return this.#fail(error);
    try {
      for (const [p, outcome] of outcomes) this.#effects.afterApply(p, outcome);
    } catch (e) {
      this.#fail(e as Error);
    }
  }

  /** What apply tells of each written key: a leader's writes count toward load-based split. */
  #loadHook(p: Peer): ((key: Uint8Array, bytes: number) => void) | undefined {
    const sampler = this.loadSampler;
    if (!sampler || !p.isLeader()) return undefined;
    return (key, bytes) => sampler.record(p.regionId, key, undefined, bytes);
  }

  #sendMessages(readies: readonly [Peer, Ready][], early: boolean): void {
    const byStore = new Map<number, RaftEnvelope[]>();
    const snapshotsTo: [Peer, number][] = [];
    for (const [p, rd] of readies) {
      const region = p.region;
      const from = region.peers.find((x) => x.id === p.meta.id) ?? p.meta;
      for (const m of rd.messages) {
        if (isLeaderReplication(m) !== early) continue;
        const to = region.peers.find((x) => x.id === m.to) ?? p.peerCache.get(m.to);
        if (!to) continue;
        let list = byStore.get(to.storeId);
        if (!list) byStore.set(to.storeId, list = []);
        list.push({
          regionId: region.id,
          fromPeer: from,
          toPeer: to,
          epoch: region.epoch,
          startKey: region.startKey,
          endKey: region.endKey,
          message: m,
        });
        if (m.type === "MsgSnap") snapshotsTo.push([p, m.to]);
      }
    }
    for (const [storeId, envelopes] of byStore) {
      this.stats.messagesSent += envelopes.length;
      this.send(storeId, envelopes);
    }
    // The transport does not confirm delivery. Reporting the snapshot done puts the follower
    // back into probing; if it never got the snapshot, its rejection makes Raft send another.
    for (const [p, to] of snapshotsTo) {
      this.stats.snapshotsSent++;
      p.raw.reportSnapshot(to, "Finish");
    }
  }

  /**
   * Destroys a peer: its region state becomes `Tombstone` first (so a crash cannot bring it
   * back), then its log, Raft state and, if no other local region now owns it, its data go.
   * `region` is the meta its tombstone keeps; by default the peer's own, as a Ready pass still
   * in progress leaves it.
   */
  destroyPeer(p: Peer, region?: Region): Promise<void> {
    return this.#lifecycle.destroyPeer(p, region);
  }

  // ---- inbound messages ----

  /** Handles a batch of Raft messages from another store. */
  onRaftBatch(batch: RaftBatch): void {
    if (this.#stopped) return;
    this.hibernation.heard(batch.fromStoreId, batch.incarnation);
    this.#inbound = this.#inbound.then(async () => {
      for (const env of batch.envelopes) {
        if (this.#stopped) return;
        try {
          await this.#messages.onEnvelope(env);
        } catch (e) {
          this.log.warn(
            `store ${this.storeId}: dropped a message for region ${env.regionId}: ${
              (e as Error).message
            }`,
          );
        }
      }
    });
  }

  /** When a message to each store last failed (heartbeat.ts reports recent ones). */
  readonly unreachableAt = new Map<number, number>();

  /**
   * A send to `storeId` failed: it is down until heard from (which wakes the regions it shares
   * with this store), and awake leaders with a peer there fall back to probing it. The store
   * heartbeat lists it as unreachable for a while, so the scheduler can call it Disconnected.
   */
  onStoreUnreachable(storeId: number): void {
    if (this.#stopped) return;
    this.unreachableAt.set(storeId, Date.now());
    this.hibernation.liveness.unreachable(storeId);
    for (const regionId of this.hibernation.regionsOn(storeId)) {
      const p = this.peers.get(regionId);
      if (!p || !p.isLeader() || !this.hibernation.isAwake(p)) continue;
      const target = p.region.peers.find((x) => x.storeId === storeId);
      if (target) p.raw.reportUnreachable(target.id);
    }
  }

  /** The local peer of `regionId`, or a `RegionNotFound` error. */
  mustPeer(regionId: number): Peer {
    const p = this.peers.get(regionId);
    if (!p || p.destroyed) {
      throw new MrkvError(
        "RegionNotFound",
        `region ${regionId} has no peer on store ${this.storeId}`,
        { region_id: regionId },
      );
    }
    return p;
  }

  /** Whether `range` overlaps no local region but `except`. */
  isRangeFree(range: Pick<Region, "startKey" | "endKey">, except: number): boolean {
    return !this.meta.sortedRegions().some((r) => r.id !== except && rangesOverlap(r, range));
  }
}
