/**
 * A store's metrics. {@link StoreMetrics} holds the histograms the hot paths observe (KV
 * requests, proposal to apply, engine writes, Raft sends); {@link registerStoreMetrics} declares
 * everything read at scrape time from figures the store already keeps. `GET /metrics` renders
 * {@link StoreMetrics.registry}. Add a metric by declaring it here, once.
 *
 * @module
 */
import { type Histogram, type Labels, registerProcessMetrics, Registry } from "../telemetry/mod.ts";
import type { KvService } from "./kv_service.ts";
import type { Store } from "./store.ts";

/** The histograms a store observes on its hot paths. */
export class StoreMetrics {
  readonly registry = new Registry();
  /** KV API requests by `op` (get, put, delete, scan), HTTP `code` and whether forwarded. */
  readonly kvRequest: Histogram = this.registry.histogram({
    name: "mrkv_kv_request_duration_seconds",
    help: "KV API requests, from arrival to response, in seconds.",
    labels: ["op", "code", "forwarded"],
  });
  /** Writes proposed by a leader, from proposal until applied (or failed). */
  readonly proposeApply: Histogram = this.registry.histogram({
    name: "mrkv_propose_apply_duration_seconds",
    help: "Writes proposed on a leader, from proposal until applied, in seconds.",
  });
  /** The Ready loop's batched engine writes. */
  readonly engineWrite: Histogram = this.registry.histogram({
    name: "mrkv_engine_write_duration_seconds",
    help: "The writes a Ready pass waits for (its Raft log batch; its Deno KV batch unless that " +
      "lands behind the log), in seconds.",
  });
  /** Raft batches and snapshot streams sent to one store, by `result` (ok or error). */
  readonly raftSend: Histogram = this.registry.histogram({
    name: "mrkv_raft_send_duration_seconds",
    help: "Raft message batches sent to another store, until answered or acknowledged, in seconds.",
    labels: ["result"],
  });

  /** Times `work` into `h` (also when it throws). */
  async time<T>(h: Histogram, work: Promise<T>, labels: Labels = {}): Promise<T> {
    const stop = h.startTimer(labels);
    try {
      return await work;
    } finally {
      stop();
    }
  }
}

/** Figures the node knows about the data directory and what the store reports for it. */
export interface StoreCapacity {
  readonly capacity: number;
  readonly available: number;
  readonly usedSize: number;
}

/** What the scrape-time metrics read. */
export interface StoreMetricSources {
  readonly store: Store;
  readonly kv: KvService;
  readonly capacity: () => StoreCapacity;
  /** Heartbeats sent so far (region reports). */
  readonly heartbeatsSent?: () => number;
  /** Load-based splits started so far. */
  readonly loadSplits?: () => number;
  /** Raft streams this store has opened to other stores so far. */
  readonly raftStreamsOpened?: () => number;
  /** Streams this store has opened to forward KV requests so far. */
  readonly forwardStreamsOpened?: () => number;
}

/** Declares the gauges and counters a store reads at scrape time, and `process_*`. */
export function registerStoreMetrics(m: StoreMetrics, src: StoreMetricSources): void {
  const r = m.registry;
  const { store, kv } = src;
  const peers = () => [...store.peers.values()];
  r.gauge({
    name: "mrkv_store_regions",
    help: "Region peers on this store.",
    collect: () => store.peers.size,
  });
  r.gauge({
    name: "mrkv_store_leaders",
    help: "Regions this store leads.",
    collect: () => peers().filter((p) => p.isLeader()).length,
  });
  r.gauge({
    name: "mrkv_store_capacity_bytes",
    help: "Size of the filesystem holding the data directory, in bytes.",
    collect: () => src.capacity().capacity,
  });
  r.gauge({
    name: "mrkv_store_available_bytes",
    help: "Free space on the filesystem holding the data directory, in bytes.",
    collect: () => src.capacity().available,
  });
  r.gauge({
    name: "mrkv_store_used_bytes",
    help: "Approximate size of this store's regions, in bytes.",
    collect: () => src.capacity().usedSize,
  });
  r.gauge({
    name: "mrkv_store_pending_requests",
    help: "Proposals and reads waiting on this store's peers.",
    collect: () => peers().reduce((n, p) => n + p.pendingCount(), 0),
  });
  const counter = (name: string, help: string, collect: () => number) =>
    r.counter({ name, help, collect });
  const s = store.stats;
  const h = store.hibernation;
  r.gauge({
    name: "mrkv_regions_asleep",
    help: "Region peers asleep (hibernating).",
    collect: () => h.asleep,
  });
  counter("mrkv_region_wakes_total", "Sleeping region peers woken.", () => h.stats.wakes);
  counter(
    "mrkv_region_sleeps_total",
    "Regions this store's leaders let sleep.",
    () => h.stats.leaderSleeps,
  );
  counter(
    "mrkv_liveness_pings_total",
    "Store liveness pings sent (empty Raft batches).",
    () => h.liveness.pings,
  );
  counter("mrkv_ready_passes_total", "Ready loop passes.", () => s.readyPasses);
  counter("mrkv_entries_persisted_total", "Raft entries written.", () => s.entriesPersisted);
  counter("mrkv_entries_applied_total", "Raft entries applied.", () => s.entriesApplied);
  counter(
    "mrkv_apply_writes_total",
    "Deno KV commits of applied data (each carries the batches of one or more Ready passes).",
    () => store.applyWrites.writes,
  );
  counter(
    "mrkv_apply_batches_total",
    "Ready passes' batches of applied data written.",
    () => store.applyWrites.batches,
  );
  counter(
    "mrkv_apply_pending_reads_total",
    "Reads of one key answered from applied data not yet landed in Deno KV.",
    () => store.applyWrites.pendingReads,
  );
  counter("mrkv_raft_messages_sent_total", "Raft messages sent.", () => s.messagesSent);
  counter("mrkv_snapshots_sent_total", "Snapshots sent.", () => s.snapshotsSent);
  counter("mrkv_snapshots_applied_total", "Snapshots installed.", () => s.snapshotsApplied);
  counter(
    "mrkv_kv_forwarded_total",
    "KV requests forwarded to a leader on another store.",
    () => kv.forwarded,
  );
  counter(
    "mrkv_kv_follower_reads_total",
    "Reads served by a follower of their region here, with a read index from its leader.",
    () => kv.followerReads,
  );
  counter(
    "mrkv_kv_via_raft_total",
    "Writes proposed on a local follower and forwarded by Raft.",
    () => kv.viaRaft,
  );
  counter("mrkv_kv_retries_total", "KV request retries after region errors.", () => kv.retries);
  counter(
    "mrkv_apply_duplicate_writes_total",
    "Client writes skipped at apply: copies of a write already applied (retries, redeliveries).",
    () => s.duplicateWrites,
  );
  counter(
    "mrkv_apply_expired_writes_total",
    "Client writes refused at apply: issued more than the dedup window before the newest.",
    () => s.expiredWrites,
  );
  // The Raft log engine: batches per flush show how well group commit works; seconds per
  // flush, what the disk costs a write.
  const log = () => store.raftLog.stats;
  counter(
    "mrkv_raft_log_fsyncs_total",
    "Raft log engine fdatasyncs (one per group of writes).",
    () => log().syncs,
  );
  counter(
    "mrkv_raft_log_writes_total",
    "Raft log engine flushes: a group commit writes many batches at once, a sync alone none.",
    () => log().writes,
  );
  counter(
    "mrkv_raft_log_batches_total",
    "Batches written to the Raft log engine (one per Ready pass, compaction or removal).",
    () => log().batches,
  );
  counter(
    "mrkv_raft_log_write_seconds_total",
    "Time spent in Raft log engine flushes, fdatasync included, in seconds.",
    () => log().writeMs / 1000,
  );
  counter(
    "mrkv_raft_log_written_bytes_total",
    "Bytes of frames written to the Raft log engine (garbage collection's copies not counted).",
    () => log().bytes,
  );
  counter(
    "mrkv_raft_log_gc_files_total",
    "Raft log files deleted by garbage collection (after copying their live records or not).",
    () => log().gc.deletedFiles + log().gc.rewrittenFiles,
  );
  const files = () => {
    const f = store.raftLog.files();
    return [...f.append, ...f.rewrite];
  };
  r.gauge({
    name: "mrkv_raft_log_files",
    help: "Raft log engine files (append and rewrite queues).",
    collect: () => files().length,
  });
  r.gauge({
    name: "mrkv_raft_log_bytes",
    help: "Bytes in the Raft log engine's files.",
    collect: () => files().reduce((n, f) => n + f.bytes, 0),
  });
  if (src.heartbeatsSent) {
    counter(
      "mrkv_region_heartbeats_sent_total",
      "Region heartbeats sent to the scheduler.",
      src.heartbeatsSent,
    );
  }
  if (src.loadSplits) {
    counter(
      "mrkv_load_splits_total",
      "Splits this store's leaders started because a region stayed hot (load_split.ts).",
      src.loadSplits,
    );
  }
  if (src.raftStreamsOpened) {
    counter(
      "mrkv_raft_streams_opened_total",
      "Raft streams (one connection to another store for all its batches) opened so far.",
      src.raftStreamsOpened,
    );
  }
  if (src.forwardStreamsOpened) {
    counter(
      "mrkv_forward_streams_opened_total",
      "Streams opened to forward KV requests to other stores (many requests each) so far.",
      src.forwardStreamsOpened,
    );
  }
  registerProcessMetrics(r, "store");
}
