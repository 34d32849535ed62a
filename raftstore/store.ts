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
 * @module
 */
import { setImmediate } from "node:timers";
import {
  ConfChangeError,
  isEmptySnapshot,
  isQuiesceMessage,
  type Message,
  type Ready,
} from "../raft/mod.ts";
import type { KvEngine, LogBatch, RaftLogEngine, WriteBatch } from "../storage/mod.ts";
import { MrkvError } from "../proto/errors.ts";
import {
  epochEqual,
  isJointRegion,
  type Peer as PeerMeta,
  rangesOverlap,
  type Region,
  type RegionEpoch,
} from "../proto/metapb.ts";
import { type AdminEffect, applyEntries, type ApplyOutcome, type EntryResult } from "./apply.ts";
import { Peer, type PeerConfig } from "./peer.ts";
import { PeerStorage, RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM } from "./peer_storage.ts";
import { StoreMeta } from "./store_meta.ts";
import { StoreMetrics } from "./metrics.ts";
import { FlowCounter } from "./flow.ts";
import type { RaftBatch, RaftEnvelope, Transport } from "./transport.ts";
import { generateSnapshot, installSnapshot, loadSavedSnapshot, saveSnapshot } from "./snapshot.ts";
import { type CommitMergeRequest, decodeCmd, type RaftCmd } from "./cmd.ts";
import { maybeLeaveJoint } from "./conf_change.ts";
import {
  catchUpMergeSource,
  decodeMergeState,
  isMergedSourceOf,
  type MergeState,
  regionCovers,
} from "./merge.ts";
import { type AppliedRequests, MAX_TAG_CLOCK_AHEAD_MS } from "./applied_requests.ts";
import { EarlyVotes, isVoteRequest } from "./split.ts";
import { decodeSnapshotData } from "./snapshot.ts";
import { Hibernation } from "./hibernate.ts";
import { newIncarnation } from "./liveness.ts";
import { OverlapDrops } from "./overlap_drops.ts";

/** Phases of the Ready loop's Deno KV write (see the module comment). */
const PHASE_APPLY_DATA = 0;
const PHASE_APPLY_STATE = 1;
/**
 * A merge's source peer becomes a tombstone after the merged target's state: a cut between the
 * two leaves a source that start-up recognizes as merged (see #finishInterruptedMerges).
 */
const PHASE_MERGE_SOURCE = 2;
/** Ticks between checks that leaders of joint configurations are leaving them. */
const JOINT_CHECK_TICKS = 5;

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
}

/** Something that wants to hear about region changes (the heartbeat task). */
export interface RegionObserver {
  /** A region's leader, epoch or size changed on a peer this store leads. */
  regionChanged(peer: Peer): void;
}

/** Logging sink; tests pass a quiet one. */
export interface StoreLogger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
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

/** Raft message types that may create a peer for a region this store does not have. */
function isInitialMessage(m: Message): boolean {
  return m.type === "MsgVote" || m.type === "MsgPreVote" ||
    (m.type === "MsgHeartbeat" && m.commit === 0) || m.type === "MsgSnap" || m.type === "MsgApp";
}

/** One store: its peers, their Ready loop and the store meta. */
export class Store {
  readonly peers = new Map<number, Peer>();
  readonly meta = new StoreMeta();
  /**
   * Regions whose local peer was destroyed, with the last region meta it had (and, for a region
   * merged away, its merge state: stale peers of it are told where it went).
   */
  readonly tombstones = new Map<number, { region: Region; peerId: number; merge?: MergeState }>();
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
   * Destructions in progress by region: a new peer for the region must wait, or the old peer's
   * range delete could remove data the new peer just installed.
   */
  #destroying = new Map<number, Promise<void>>();
  /**
   * The Ready pass in progress: the peers whose Ready it took, and its end. A destruction of one
   * of them waits for that end, so everything the pass does for the peer (a snapshot install,
   * the write of its applied entries, the store meta and new peers of a split) lands before the
   * tombstone, and nothing of it after: an install or a split finishing after the destruction
   * would put the region's range back in the store meta with no peer behind it (and `Normal` on
   * disk), and that range would refuse every later peer of the region as overlapping; and the
   * destruction's range delete, taken over the range from before a split, would delete the
   * data of the regions the split created.
   */
  #pass: { readonly peers: ReadonlySet<Peer>; readonly done: Promise<void> } | undefined;
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
  /** Set if the Ready loop failed: the store must not serve anything more. */
  fatal: Error | undefined;
  #onDead!: (e: Error) => void;
  /** Rejects with the reason if the store dies on its own (its Ready loop failed). */
  readonly dead: Promise<void> = new Promise((_, reject) => (this.#onDead = reject));
  #loopDone: Promise<void> = Promise.resolve();
  /** Tables of applied requests for regions a split creates, from persist to peer creation. */
  readonly #splitRequests = new Map<number, AppliedRequests>();
  /** Compactions recorded in the log engine, one after another (see #compactLog). */
  #logGc: Promise<void> = Promise.resolve();
  /** Which peers sleep, and the other stores' liveness (hibernate.ts, liveness.ts). */
  readonly hibernation: Hibernation;
  /**
   * Merge targets whose apply waits at a CommitMerge, by source region; the command is kept to
   * catch the local source peer up at the start of the next pass (see merge.ts).
   */
  readonly #waitingMerges = new Map<number, { target: Peer; req: CommitMergeRequest }>();
  #ticks = 0;
  /** Messages dropped as overlapping a local region, for a rate-limited report. */
  readonly #overlapDrops = new OverlapDrops();

  constructor(
    readonly storeId: number,
    readonly engine: KvEngine,
    readonly raftLog: RaftLogEngine,
    readonly config: StoreConfig,
    readonly log: StoreLogger,
    readonly peerConfig: Partial<PeerConfig> = {},
  ) {
    this.hibernation = new Hibernation(this, config.hibernateRegions ?? true, newIncarnation());
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
        // Left by a destruction a crash cut short (see #destroy).
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
    await this.#finishInterruptedMerges();
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
    await this.#sweepLog(peer);
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
    await this.#logGc;
    await Promise.allSettled([...this.#destroying.values()]);
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Creates region 1 (or any first region) on this store: region state, an apply state at
   * {@link RAFT_INIT_LOG_INDEX} and a matching hard state, then starts its peer.
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

  #scheduleRegion(regionId: number): void {
    const p = this.peers.get(regionId);
    if (p) this.schedule(p);
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
      this.fatal = e as Error;
      this.log.error(
        `store ${this.storeId}: Ready loop failed, stopping: ${(e as Error).stack ?? e}`,
      );
      this.stop();
      this.#onDead(e as Error);
    } finally {
      this.#looping = false;
    }
  }

  async #readyPass(peers: Peer[]): Promise<void> {
    this.stats.readyPasses++;
    this.#catchUpMergeSources();
    // Snapshots Raft asked for are generated here, between passes: apply is paused. A merging
    // region sends none: its peers all had its log up to the merge's min index, and a snapshot
    // could not carry its frozen state.
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
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#pass = { peers: new Set(readies.map(([p]) => p)), done: promise };
    try {
      await this.#runPass(readies);
    } finally {
      this.#pass = undefined;
      resolve();
    }
  }

  /** Steps 1 to 5 of the Ready loop (see the module comment) for the Readies a pass took. */
  async #runPass(readies: [Peer, Ready][]): Promise<void> {
    // 1. Snapshots received.
    for (const [p, rd] of readies) {
      if (rd.snapshot && !isEmptySnapshot(rd.snapshot)) await this.#installSnapshot(p, rd);
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
          mergeSource: (req) => this.#mergeSourceReady(p, req),
        },
      );
      this.stats.duplicateWrites += requests.duplicates - duplicates;
      this.stats.expiredWrites += requests.expired - expired;
      this.#persistEffects(p, outcome, wb, lb, compacted);
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
    if (wb.size > 0 || !lb.isEmpty) {
      const started = performance.now();
      const log = lb.isEmpty ? undefined : this.raftLog.write(lb, { sync: mustSync });
      if (logFirst) await log;
      await Promise.all([log, wb.size > 0 ? this.engine.write(wb) : undefined]);
      this.stats.engineWrites++;
      this.stats.engineWriteMs += performance.now() - started;
      this.metrics.engineWrite.observe((performance.now() - started) / 1000);
    }
    for (const range of compacted) this.#compactLog(range);

    // 3. The other messages, one batch per destination store.
    this.#sendMessages(readies, false);

    // 4. Act on results.
    for (const [p, outcome] of outcomes) this.#afterApply(p, outcome);
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

  async #installSnapshot(p: Peer, rd: Ready): Promise<void> {
    if (p.destroyed) return;
    const snap = rd.snapshot!;
    const { region } = decodeSnapshotData(snap.data);
    const wasInitialized = p.storage.isInitialized();
    const oldRange = wasInitialized ? p.region : undefined;
    const wb = this.engine.batch();
    saveSnapshot(wb, snap, region);
    await this.engine.write(wb);
    const { requests } = await installSnapshot(
      this.engine,
      this.raftLog,
      snap,
      oldRange,
      rd.hardState ?? p.storage.hardState,
    );
    p.storage.resetToSnapshot(snap.metadata.index, snap.metadata.term, region, requests);
    p.onSnapshotInstalled(snap.metadata.index);
    for (const peer of region.peers) p.peerCache.set(peer.id, peer);
    this.#setRegion(region, true);
    this.stats.snapshotsApplied++;
    this.log.info(
      `region ${region.id}: installed snapshot at index ${snap.metadata.index} (${snap.data.length} bytes)`,
    );
  }

  /**
   * Persists what admin effects need in the same write as the apply state. Log ranges that a
   * CompactLog truncated are added to `compacted`, to delete once the write has landed.
   */
  #persistEffects(
    p: Peer,
    outcome: ApplyOutcome,
    wb: WriteBatch,
    lb: LogBatch,
    compacted: CompactedRange[],
  ): void {
    for (const effect of outcome.effects) {
      if (effect.type === "Split") {
        for (const right of effect.regions) {
          if (this.tombstones.has(right.id) || this.peers.get(right.id)?.storage.isInitialized()) {
            continue;
          }
          const existing = this.peers.get(right.id);
          // The new region inherits the client writes its parent applied: a retry of one of
          // them may now be routed to it. Written before its region state, so a crash cannot
          // leave the region without them.
          const requests = p.storage.requests.clone();
          requests.writeAll(wb.atPhase(PHASE_APPLY_STATE), right.id, RAFT_INIT_LOG_INDEX);
          this.#splitRequests.set(right.id, requests);
          writeInitialState(wb.atPhase(PHASE_APPLY_STATE), lb, right, existing?.storage.hardState);
        }
      } else if (effect.type === "CommitMerge") {
        const source = this.peers.get(effect.source.id);
        const wbs = wb.atPhase(PHASE_MERGE_SOURCE);
        wbs.putRegionState(effect.source.id, {
          peerState: "Tombstone",
          region: source?.region ?? effect.source,
          merge: source?.mergeState,
        });
        wbs.deleteRaftState(effect.source.id);
      } else if (effect.type === "CompactLog") {
        // The truncated index is persisted with this write's apply state; the log engine
        // drops the entries only once it has landed (#compactLog), so a crash can leave
        // entries below the truncated index but never a hole above it.
        const range = p.storage.compactTo(effect.index, effect.term);
        if (range) compacted.push({ regionId: p.regionId, ...range });
        else {
          this.log.warn(
            `region ${p.regionId}: ignored CompactLog to ${effect.index} (term ${effect.term}): ` +
              `not inside this log (first ${p.storage.firstIndex()}, last ${p.storage.lastIndex()})`,
          );
        }
      }
    }
  }

  /**
   * Tells the log engine to drop entries a CompactLog truncated, once the truncated index is
   * durable in Deno KV. Unsynced: losing it in a crash only leaves entries below the truncated
   * index, which {@link #sweepLog} drops again; the engine reclaims the space later.
   */
  #compactLog({ regionId, hi }: CompactedRange): void {
    this.#logGc = this.#logGc.then(async () => {
      if (this.#stopped) return;
      try {
        await this.raftLog.write(this.raftLog.batch().compact(regionId, hi - 1), { sync: false });
      } catch (e) {
        if (!this.#stopped) {
          this.log.warn(
            `region ${regionId}: recording the log compaction to ${hi - 1} failed (a restart ` +
              `finishes it): ${(e as Error).message}`,
          );
        }
      }
    });
  }

  /**
   * Drops what a crash can leave of a log compaction (start-up only, before the peer runs):
   * entries at or below the truncated index.
   */
  async #sweepLog(p: Peer): Promise<void> {
    const bounds = this.raftLog.bounds(p.regionId);
    const first = p.storage.firstIndex();
    if (bounds && bounds.first < first) {
      await this.raftLog.write(this.raftLog.batch().compact(p.regionId, first - 1), {
        sync: false,
      });
      this.log.warn(
        `region ${p.regionId}: finished an interrupted log compaction (entries below ${first})`,
      );
    }
  }

  #afterApply(p: Peer, outcome: ApplyOutcome): void {
    const before = p.region;
    p.storage.applyState = { ...p.storage.applyState, appliedIndex: outcome.appliedIndex };
    p.storage.region = outcome.region;
    p.sizeDiffHint += outcome.writtenBytes;
    p.approximateSize += outcome.writtenBytes;
    p.deletesSinceScan += outcome.deletes;
    this.flow.write(p.regionId, outcome.writtenBytes);
    for (const effect of outcome.effects) this.#onAdminEffect(p, effect);
    if (!p.destroyed) {
      if (!epochEqual(before.epoch, p.region.epoch)) {
        this.#setRegion(p.region, true);
        this.observer?.regionChanged(p);
      }
      p.onApplied(outcome.results.slice(outcome.answered));
      p.releaseReads();
    } else {
      p.onApplied(outcome.results.slice(outcome.answered));
    }
  }

  #onAdminEffect(p: Peer, effect: AdminEffect): void {
    switch (effect.type) {
      case "ChangePeer":
        try {
          p.raw.applyConfChange(effect.cc);
        } catch (e) {
          // Apply checked the change with Raft's own rules, so this is a bug; the region keeps
          // going rather than crash the store.
          if (!(e instanceof ConfChangeError)) throw e;
          this.log.error(`region ${p.regionId}: Raft refused an applied conf change: ${e.message}`);
        }
        for (const peer of effect.region.peers) p.peerCache.set(peer.id, peer);
        // Destroyed only once out of both configurations: a demoted voter stays as a learner.
        if (!effect.region.peers.some((x) => x.id === p.meta.id)) {
          this.log.info(`region ${p.regionId}: peer ${p.meta.id} was removed; destroying it`);
          this.destroyPeer(p, effect.region).catch((e) =>
            this.log.error(`region ${p.regionId}: destroying peer ${p.meta.id} failed: ${e}`)
          );
        } else if (isJointRegion(effect.region)) {
          maybeLeaveJoint(p, () => this.schedule(p), this.log);
        }
        break;
      case "PrepareMerge":
        p.mergeState = effect.state;
        this.log.info(
          `region ${p.regionId}: prepared to merge into region ${effect.state.target.id} ` +
            `(at ${effect.state.commit})`,
        );
        // A target waiting at the CommitMerge for this source may go on.
        this.#scheduleRegion(effect.state.target.id);
        break;
      case "CommitMerge":
        this.#retireMergedSource(p, effect.source.id);
        break;
      case "RollbackMerge":
        p.mergeState = undefined;
        this.log.info(`region ${p.regionId}: merge rolled back`);
        break;
      case "Split": {
        // Also for a peer being destroyed: its destruction waits for this pass and then takes
        // the left half out of the store meta; the new regions come to exist either way (their
        // state is in the write that just landed).
        this.#setRegion(effect.left, true);
        // The size is shared out evenly until the next size check measures it.
        const share = Math.floor(p.approximateSize / (effect.regions.length + 1));
        p.approximateSize = share;
        for (const right of effect.regions) this.#createSplitPeer(p, right, share);
        this.log.info(
          `region ${effect.left.id} split: new regions ${
            effect.regions.map((r) => r.id).join(", ")
          }`,
        );
        break;
      }
      case "CompactLog":
        break; // already applied to the peer storage in #persistEffects
    }
  }

  // ---- merge (see merge.ts) ----

  /**
   * Whether the local peer of a CommitMerge's source has applied its PrepareMerge: its applied
   * client writes if so. If not, the target's apply waits, and the next pass catches the source
   * up from the entries the command carries.
   */
  #mergeSourceReady(target: Peer, req: CommitMergeRequest) {
    const source = this.peers.get(req.source.id);
    if (
      source && !source.destroyed && source.storage.isInitialized() &&
      source.appliedIndex >= req.commit
    ) {
      const ms = source.mergeState;
      if (ms?.commit === req.commit && ms.target.id === target.regionId) {
        return source.storage.requests;
      }
      // The target committed a merge the source does not know: never merge a range that may
      // have moved on. Waits (and says so) rather than guess.
      this.log.error(
        `region ${target.regionId}: CommitMerge of region ${req.source.id} at ${req.commit} ` +
          `does not match its local merge state (${JSON.stringify(ms && ms.commit)}); waiting`,
      );
      return undefined;
    }
    this.#waitingMerges.set(req.source.id, { target, req });
    return undefined;
  }

  /** Appends the entries waiting merges carry to their lagging local source peers. */
  #catchUpMergeSources(): void {
    for (const [sourceId, { target, req }] of this.#waitingMerges) {
      this.#waitingMerges.delete(sourceId);
      const source = this.peers.get(sourceId);
      if (!source || source.destroyed || !source.storage.isInitialized()) {
        this.log.warn(
          `region ${target.regionId}: waiting to merge region ${sourceId}, which has no ` +
            `initialized peer on store ${this.storeId}`,
        );
        continue;
      }
      const note = catchUpMergeSource(source, req);
      if (note) this.log.warn(`region ${sourceId}: cannot catch up for merge: ${note}`);
      this.schedule(source);
    }
  }

  /**
   * The target applied the merge of `sourceId`: its local source peer goes (its tombstone is in
   * the write that just landed), keeping the data, which now belongs to the target.
   */
  #retireMergedSource(target: Peer, sourceId: number): void {
    const source = this.peers.get(sourceId);
    if (!source) return;
    target.approximateSize += source.approximateSize;
    target.approximateKeys += source.approximateKeys;
    this.log.info(`region ${target.regionId}: merged region ${sourceId}`);
    this.#retire(source, source.mergeState);
  }

  /**
   * Takes a peer out of service whose tombstone is already durable, without touching the data
   * in its range; its log and applied requests are deleted in the background.
   */
  #retire(p: Peer, merge: MergeState | undefined): void {
    p.destroyed = true;
    p.failPending(
      new MrkvError("RegionNotFound", `region ${p.regionId} was merged into another region`),
    );
    this.peers.delete(p.regionId);
    this.hibernation.removed(p);
    this.meta.removeRegion(p.regionId);
    this.tombstones.set(p.regionId, { region: p.region, peerId: p.meta.id, merge });
    const done = (async () => {
      // Unsynced: a restart that finds the tombstone drops the log again.
      await this.raftLog.write(this.raftLog.batch().clean(p.regionId), { sync: false });
      await this.engine.deleteAppliedRequests(p.regionId);
    })().catch((e) => {
      this.log.warn(`region ${p.regionId}: cleaning up after a merge failed: ${e}`);
    }).finally(() => {
      if (this.#destroying.get(p.regionId) === done) this.#destroying.delete(p.regionId);
    });
    this.#destroying.set(p.regionId, done);
  }

  /**
   * Start-up: a merging source whose local target already covers its range with a newer
   * version was merged, but a crash cut the write before its tombstone: finish the job.
   */
  async #finishInterruptedMerges(): Promise<void> {
    for (const p of [...this.peers.values()]) {
      const ms = p.mergeState;
      const target = ms && this.peers.get(ms.target.id);
      if (
        !ms || !target?.storage.isInitialized() ||
        target.region.epoch.version <= ms.target.epoch.version ||
        !regionCovers(target.region, p.region)
      ) continue;
      this.log.warn(`region ${p.regionId}: finishing its merge into region ${target.regionId}`);
      const wb = this.engine.batch();
      wb.putRegionState(p.regionId, { peerState: "Tombstone", region: p.region, merge: ms });
      wb.deleteRaftState(p.regionId);
      await this.engine.write(wb);
      this.#retire(p, ms);
      this.#setRegion(target.region, true);
    }
  }

  #createSplitPeer(parent: Peer, right: Region, approximateSize: number): void {
    const requests = this.#splitRequests.get(right.id) ?? parent.storage.requests.clone();
    this.#splitRequests.delete(right.id);
    if (this.tombstones.has(right.id)) return;
    const existing = this.peers.get(right.id);
    if (existing?.storage.isInitialized()) return;
    const meta = right.peers.find((x) => x.storeId === this.storeId);
    if (!meta) return;
    const hs = existing?.storage.hardState;
    if (existing) {
      existing.destroyed = true;
      this.peers.delete(right.id);
      this.hibernation.removed(existing);
    }
    const storage = new PeerStorage(
      right,
      initialHardState(hs),
      {
        appliedIndex: RAFT_INIT_LOG_INDEX,
        truncatedIndex: RAFT_INIT_LOG_INDEX,
        truncatedTerm: RAFT_INIT_LOG_TERM,
      },
      [],
      requests,
    );
    const peer = new Peer(this.storeId, meta, storage, this.#peerConfig());
    this.#overlapDrops.clear(right.id);
    this.peers.set(right.id, peer);
    this.hibernation.added(peer);
    this.#setRegion(right, true);
    peer.approximateSize = approximateSize;
    // The parent's leader campaigns at once for the new region so it is not leaderless for an
    // election timeout (TiKV does the same). Followers that had not applied the split when its
    // vote requests came held them (see #maybeCreatePeer); they are answered now.
    if (parent.isLeader()) peer.raw.campaign();
    for (const env of this.earlyVotes.take(right.id, meta.id)) peer.step(env.message, env.fromPeer);
    this.schedule(peer);
  }

  /**
   * Destroys a peer: its region state becomes `Tombstone` first (so a crash cannot bring it
   * back), then its log, Raft state and, if no other local region now owns it, its data go.
   * `region` is the meta its tombstone keeps; by default the peer's own, as a Ready pass still
   * in progress leaves it.
   */
  destroyPeer(p: Peer, region?: Region): Promise<void> {
    if (p.destroyed) return this.#destroying.get(p.regionId) ?? Promise.resolve();
    p.destroyed = true;
    const done = this.#destroy(p, region).finally(() => {
      if (this.#destroying.get(p.regionId) === done) this.#destroying.delete(p.regionId);
    });
    this.#destroying.set(p.regionId, done);
    return done;
  }

  async #destroy(p: Peer, lastRegion: Region | undefined): Promise<void> {
    // A Ready pass that took the peer's Ready finishes with it first (see #pass); a failed pass
    // stops the store, and the Ready loop reports it.
    const pass = this.#pass;
    if (pass?.peers.has(p)) await pass.done;
    const region = lastRegion ?? p.region; // as the pass left it
    p.failPending(
      new MrkvError(
        "RegionNotFound",
        `region ${p.regionId} was removed from store ${this.storeId}`,
      ),
    );
    this.peers.delete(p.regionId);
    this.hibernation.removed(p);
    this.meta.removeRegion(p.regionId);
    this.tombstones.set(p.regionId, { region, peerId: p.meta.id });
    const wb = this.engine.batch();
    wb.putRegionState(p.regionId, { peerState: "Tombstone", region });
    wb.deleteRaftState(p.regionId);
    await this.engine.write(wb);
    // Unsynced: a restart that finds the Tombstone drops the log again.
    await this.raftLog.write(this.raftLog.batch().clean(p.regionId), { sync: false });
    await this.engine.deleteAppliedRequests(p.regionId);
    if (p.storage.isInitialized() && this.meta.overlapping(p.region).length === 0) {
      const r = p.region;
      await this.engine.deleteRange(r.startKey, r.endKey.length === 0 ? undefined : r.endKey);
    }
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
          await this.#onEnvelope(env);
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

  async #onEnvelope(env: RaftEnvelope): Promise<void> {
    if (env.toPeer.storeId !== this.storeId) return;
    let peer = this.peers.get(env.regionId);
    if (env.isTombstone) {
      if (env.mergeTarget) {
        // Our region was merged away while this peer was cut off. It is not destroyed here:
        // its data may still be needed by the local target to catch up (merge_worker.ts).
        if (peer && peer.meta.id === env.toPeer.id && !peer.mergedInto) {
          this.log.info(
            `region ${env.regionId}: peer ${peer.meta.id} learns its region was merged into ` +
              `region ${env.mergeTarget.id} (told by peer ${env.fromPeer.id})`,
          );
          peer.mergedInto = env.mergeTarget;
        }
        return;
      }
      // Only a sender with a newer membership can tell us we are gone.
      if (peer && peer.meta.id === env.toPeer.id && peer.region.epoch.confVer < env.epoch.confVer) {
        this.log.info(
          `region ${env.regionId}: peer ${peer.meta.id} is stale (told by peer ${env.fromPeer.id}); destroying it`,
        );
        await this.destroyPeer(peer);
      }
      return;
    }
    if (peer && peer.meta.id !== env.toPeer.id) {
      if (env.toPeer.id < peer.meta.id) return; // for an older incarnation of our peer
      // A newer incarnation implies our peer was removed and the region re-added this store,
      // which bumps conf_ver twice: without a newer epoch the message proves nothing.
      if (peer.storage.isInitialized() && env.epoch.confVer <= peer.region.epoch.confVer) return;
      // Our peer was removed and the region re-added us under a new ID: replace it.
      await this.destroyPeer(peer);
      peer = undefined;
    }
    if (!peer) {
      const tomb = this.tombstones.get(env.regionId);
      if (tomb?.merge && env.toPeer.id <= tomb.peerId) {
        this.#replyMerged(env, tomb.region, tomb.merge);
        return;
      }
      peer = await this.#maybeCreatePeer(env);
      if (!peer) return;
    }
    // A message from a peer that is no longer a member, with an older epoch: tell it to go.
    const region = peer.region;
    if (
      peer.storage.isInitialized() && env.epoch.confVer < region.epoch.confVer &&
      !region.peers.some((x) => x.id === env.fromPeer.id)
    ) {
      this.send(env.fromPeer.storeId, [{
        regionId: region.id,
        fromPeer: peer.meta,
        toPeer: env.fromPeer,
        epoch: region.epoch,
        startKey: region.startKey,
        endKey: region.endKey,
        isTombstone: true,
        message: {
          ...env.message,
          type: "MsgHeartbeat",
          to: env.fromPeer.id,
          from: peer.meta.id,
          entries: [],
          snapshot: undefined,
        },
      }]);
      return;
    }
    if (env.message.type === "MsgProp") {
      const refusal = checkForwardedProposal(env);
      if (refusal) {
        this.log.warn(
          `region ${env.regionId}: refused a proposal from peer ${env.fromPeer.id}: ${refusal}`,
        );
        return;
      }
    }
    if (env.message.type === "MsgSnap" && env.message.snapshot) {
      const snapRegion = decodeSnapshotData(env.message.snapshot.data).region;
      // A snapshot of a merge target taken after the merge covers its source: a local source
      // peer that missed the merge goes first.
      for (const r of this.meta.overlapping(snapRegion)) {
        const source = this.peers.get(r.id);
        if (r.id !== snapRegion.id && source && isMergedSourceOf(source, snapRegion)) {
          this.log.info(
            `region ${r.id}: merged into region ${snapRegion.id}, whose snapshot arrived; ` +
              `destroying peer ${source.meta.id}`,
          );
          await this.destroyPeer(source);
        }
      }
      const clash = this.meta.overlapping(snapRegion).find((r) => r.id !== snapRegion.id);
      if (clash) {
        this.log.warn(
          `region ${snapRegion.id}: refusing a snapshot that overlaps local region ${clash.id}`,
        );
        return;
      }
    }
    if (this.hibernation.onMessage(peer, env, isQuiesceMessage(env.message))) return;
    peer.step(env.message, env.fromPeer);
    this.markDirty(peer);
  }

  /** Tells a stale peer of a region merged away where its region went (see merge_worker.ts). */
  #replyMerged(env: RaftEnvelope, region: Region, merge: MergeState): void {
    const isStale = (e: RegionEpoch) =>
      e.version < region.epoch.version || e.confVer < region.epoch.confVer;
    if (!isStale(env.epoch)) return;
    this.transport.send(env.fromPeer.storeId, [{
      regionId: region.id,
      fromPeer: env.toPeer,
      toPeer: env.fromPeer,
      epoch: region.epoch,
      startKey: region.startKey,
      endKey: region.endKey,
      isTombstone: true,
      mergeTarget: { id: merge.target.id, epoch: merge.target.epoch },
      message: {
        ...env.message,
        type: "MsgHeartbeat",
        to: env.fromPeer.id,
        from: env.toPeer.id,
        entries: [],
        snapshot: undefined,
      },
    }]);
  }

  async #maybeCreatePeer(env: RaftEnvelope): Promise<Peer | undefined> {
    if (!isInitialMessage(env.message)) return undefined;
    await this.#destroying.get(env.regionId);
    const tomb = this.tombstones.get(env.regionId);
    if (tomb && env.toPeer.id <= tomb.peerId) return undefined;
    const range = { startKey: env.startKey, endKey: env.endKey };
    const clash = this.meta.overlapping(range)[0];
    if (clash) {
      // A split we have not applied yet. Its new region's leader campaigns as soon as it has
      // applied the split, usually before we have: dropping the vote request would leave the
      // region leaderless for an election timeout, so it is held until the split creates the
      // peer (split.ts).
      if (isVoteRequest(env.message)) this.earlyVotes.hold(env);
      this.#noteOverlapDrop(env, clash);
      return undefined;
    }
    if (this.peers.has(env.regionId)) return this.peers.get(env.regionId);
    const region: Region = {
      id: env.regionId,
      startKey: new Uint8Array(),
      endKey: new Uint8Array(),
      epoch: { confVer: 0, version: 0 },
      peers: [],
    };
    // Raft state left by an earlier, destroyed peer of the region belongs to another peer ID.
    const storage = tomb
      ? new PeerStorage(region, { term: 0, vote: 0, commit: 0 }, {
        appliedIndex: 0,
        truncatedIndex: 0,
        truncatedTerm: 0,
      }, [])
      : await PeerStorage.load(this.engine, this.raftLog, region);
    if (this.peers.has(env.regionId)) return this.peers.get(env.regionId);
    const meta: PeerMeta = { id: env.toPeer.id, storeId: this.storeId, role: env.toPeer.role };
    const peer = new Peer(this.storeId, meta, storage, this.#peerConfig());
    this.tombstones.delete(env.regionId);
    this.#overlapDrops.clear(env.regionId);
    this.peers.set(env.regionId, peer);
    this.hibernation.added(peer);
    this.meta.setRegion(region, false);
    this.log.info(
      `region ${env.regionId}: created peer ${meta.id} on demand (from peer ${env.fromPeer.id})`,
    );
    return peer;
  }

  /**
   * Logs, rate-limited (see overlap_drops.ts), that a message that would create a peer was
   * dropped because its region's range overlaps local region `clash`.
   */
  #noteOverlapDrop(env: RaftEnvelope, clash: Region): void {
    const report = this.#overlapDrops.note(env.regionId, performance.now());
    if (!report) return;
    const local = this.peers.get(clash.id);
    this.log.warn(
      `region ${env.regionId}: no peer ${env.toPeer.id} created here for ${
        Math.round(report.forMs / 1000)
      } s (${report.dropped} messages dropped since the last report): its range overlaps ` +
        `local region ${clash.id} (epoch ${clash.epoch.confVer}/${clash.epoch.version}, ` +
        `${local && !local.destroyed ? `peer ${local.meta.id}` : "no local peer"})`,
    );
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

/**
 * Why a proposal forwarded by another store's peer must not enter the log, or `undefined`.
 * Followers forward only data writes for this region (admin commands and membership changes are
 * proposed by the leader itself), so anything else is a bug or a forgery; what passes here is
 * still checked again at apply.
 */
function checkForwardedProposal(env: RaftEnvelope): string | undefined {
  for (const e of env.message.entries) {
    if (e.type !== "Normal") return `a ${e.type} entry`;
    if (e.data.length === 0) return "an empty entry";
    let cmd: RaftCmd;
    try {
      cmd = decodeCmd(e.data);
    } catch (err) {
      return `an undecodable command: ${(err as Error).message}`;
    }
    if (cmd.admin) return `an admin command (${cmd.admin.type})`;
    if (cmd.header.regionId !== env.regionId) {
      return `a command for region ${cmd.header.regionId}`;
    }
    // A tag from the future would move the region's request clock ahead and make fresh writes
    // of other stores look expired (see applied_requests.ts).
    const ahead = (cmd.header.request?.issuedAt ?? 0) - Date.now();
    if (ahead > MAX_TAG_CLOCK_AHEAD_MS) return `a write issued ${ahead} ms in the future`;
  }
  return undefined;
}

/** Log entries `[lo, hi)` of a region that a CompactLog truncated, to delete from the engine. */
interface CompactedRange {
  readonly regionId: number;
  readonly lo: number;
  readonly hi: number;
}

/** Hard state a bootstrapped or split-created region starts with; keeps a newer term/vote. */
function initialHardState(existing?: { term: number; vote: number; commit: number }) {
  if (existing && existing.term > RAFT_INIT_LOG_TERM) {
    return { ...existing, commit: Math.max(existing.commit, RAFT_INIT_LOG_INDEX) };
  }
  return { term: RAFT_INIT_LOG_TERM, vote: 0, commit: RAFT_INIT_LOG_INDEX };
}

/**
 * Writes the state records of a region created by bootstrap or split: region and apply state
 * to Deno KV, hard state to the log (if that write is lost, PeerStorage.load starts from the
 * same values).
 */
function writeInitialState(
  wb: WriteBatch,
  lb: LogBatch,
  region: Region,
  hs?: { term: number; vote: number; commit: number },
): void {
  wb.putRegionState(region.id, { peerState: "Normal", region });
  wb.putApplyState(region.id, {
    appliedIndex: RAFT_INIT_LOG_INDEX,
    truncatedIndex: RAFT_INIT_LOG_INDEX,
    truncatedTerm: RAFT_INIT_LOG_TERM,
  });
  lb.putHardState(region.id, initialHardState(hs));
}
