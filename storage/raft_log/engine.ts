/**
 * `RaftLogEngine`: the store's Raft log — every region's entries and hard state — in one
 * append-only, segmented log shared by all regions (after TiKV's raft-engine).
 *
 * **Writes.** A {@link LogBatch} holds items for any number of regions and is written as one
 * checksummed frame: all of it survives a crash or none of it does. Batches handed to
 * {@link RaftLogEngine.write} while a write is in flight are written together, as consecutive
 * frames in one file write followed by one `fdatasync` (group commit). A write resolves once
 * its frame is durable (with `sync: false`, once it is written: it becomes durable with the
 * next synced write, and a crash keeps a prefix of the frames in write order).
 *
 * **Reads.** The index (`memtable.ts`) knows each region's first and last index, its hard
 * state, and where each entry's bytes are; entries are read from the files.
 *
 * **Recovery** (`recover.ts`) replays the files, cuts a torn tail and rebuilds the index.
 * **Garbage collection** (`gc.ts`) deletes or rewrites old files in the background, one bounded
 * step at a time, while writes go on.
 *
 * **Failure.** A failed write (or garbage collection step) leaves the engine refusing writes,
 * as a crash would: reopen it to recover.
 *
 * @module
 */
import { setTimeout as delay } from "node:timers/promises";
import { CorruptionError, type HardState } from "../records.ts";
import type { Loc } from "./memtable.ts";
import {
  checkItem,
  FILE_HEADER_BYTES,
  frameSize,
  type Item,
  ITEM_CLEAN,
  ITEM_COMPACT,
  ITEM_ENTRIES,
  ITEM_HARD_STATE,
  ITEM_TRUNCATE,
} from "./format.ts";
import { type LogFs, NodeFs } from "./fs.ts";
import { Collector, type GcPolicy, type GcStats, type GcStep } from "./gc.ts";
import { MemFs } from "./mem_fs.ts";
import { applyItem, parseFileName, Pipe } from "./pipe.ts";
import { recover, type RecoveryReport } from "./recover.ts";

/** Items to write together (see the module comment). Build one, then `engine.write(batch)`. */
export class LogBatch {
  readonly items: Item[] = [];

  get isEmpty(): boolean {
    return this.items.length === 0;
  }

  /** Whether the batch compacts any region (tests pick writes by what they do). */
  get compacts(): boolean {
    return this.items.some((i) => i.kind === ITEM_COMPACT);
  }

  /**
   * Entries `firstIndex, firstIndex + 1, ...` of a region; replaces any at or after it. An
   * append past `last + 1` leaves a hole: clean the region first (after a snapshot).
   */
  append(regionId: number, firstIndex: number, entries: readonly Uint8Array[]): this {
    if (entries.length === 0) return this;
    return this.#push({ kind: ITEM_ENTRIES, regionId, firstIndex, entries });
  }

  /** A region's hard state. */
  putHardState(regionId: number, hs: HardState): this {
    return this.#push({
      kind: ITEM_HARD_STATE,
      regionId,
      hs: { term: hs.term, vote: hs.vote, commit: hs.commit },
    });
  }

  /** Drops a region's entries at or after `index`. */
  truncate(regionId: number, index: number): this {
    return this.#push({ kind: ITEM_TRUNCATE, regionId, index });
  }

  /** Drops a region's entries at or below `index`. */
  compact(regionId: number, index: number): this {
    return this.#push({ kind: ITEM_COMPACT, regionId, index });
  }

  /** Drops everything of a region: entries and hard state. */
  clean(regionId: number): this {
    return this.#push({ kind: ITEM_CLEAN, regionId });
  }

  #push(item: Item): this {
    checkItem(item);
    this.items.push(item);
    return this;
  }
}

/** Passed to the write hooks. */
export interface WriteInfo {
  readonly batches: readonly LogBatch[];
  readonly bytes: number;
  readonly sync: boolean;
}

/** Options of {@link RaftLogEngine.open}. */
export interface RaftLogOptions extends Partial<GcPolicy> {
  /** Collect garbage in the background after writes (default true). */
  readonly autoGc?: boolean;
  /** Called before each group write; a throw fails it before anything lands (crash tests). */
  readonly beforeWrite?: (info: WriteInfo) => void | Promise<void>;
  /** Where recovery and collection report what they did. */
  readonly log?: (message: string) => void;
}

/** Default policy: 8 MiB files, collect past 128 MiB or below 30 % live. */
export const DEFAULT_GC_POLICY: GcPolicy = {
  segmentBytes: 8 * 1024 * 1024,
  purgeThresholdBytes: 128 * 1024 * 1024,
  rewriteRatio: 0.3,
  squeezeMinBytes: 16 * 1024 * 1024,
  copyBatchBytes: 1024 * 1024,
};

/** The engine refuses writes after a failure; reopen it. */
export class RaftLogBrokenError extends Error {
  constructor(cause: unknown) {
    super("raft log engine refuses writes: an earlier write failed; reopen it", { cause });
    this.name = "RaftLogBrokenError";
  }
}

interface Pending {
  readonly batch: LogBatch;
  readonly sync: boolean;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

/** Counters for metrics and tests. */
export interface RaftLogStats {
  /** Group writes (file writes) and the batches they carried. */
  writes: number;
  batches: number;
  syncs: number;
  bytes: number;
  writeMs: number;
  gc: GcStats;
}

/** The store's Raft log. See the module comment. */
export class RaftLogEngine {
  /** What recovery did when the engine was opened. */
  readonly recovery: RecoveryReport;
  /** See {@link RaftLogOptions.beforeWrite}. */
  beforeWrite: RaftLogOptions["beforeWrite"];
  readonly #pipe: Pipe;
  readonly #gc: Collector;
  readonly #policy: GcPolicy;
  readonly #autoGc: boolean;
  readonly #log: (message: string) => void;
  #pending: Pending[] = [];
  #flushing: Promise<void> | undefined;
  #gcRunning: Promise<void> | undefined;
  #unsynced = false;
  #broken: unknown = undefined;
  #closed = false;
  readonly #stats: Omit<RaftLogStats, "gc"> = {
    writes: 0,
    batches: 0,
    syncs: 0,
    bytes: 0,
    writeMs: 0,
  };

  private constructor(pipe: Pipe, recovery: RecoveryReport, options: RaftLogOptions) {
    this.#pipe = pipe;
    this.recovery = recovery;
    this.#policy = { ...DEFAULT_GC_POLICY, ...stripUndefined(options) };
    this.#gc = new Collector(pipe, this.#policy, () => this.#enqueue(new LogBatch(), true));
    this.#autoGc = options.autoGc ?? true;
    this.beforeWrite = options.beforeWrite;
    this.#log = options.log ?? (() => {});
  }

  /** Opens (creating if needed) the log in directory `dir`, recovering it. */
  static async open(dir: string, options: RaftLogOptions = {}): Promise<RaftLogEngine> {
    return await RaftLogEngine.openFs(new NodeFs(dir), options);
  }

  /**
   * Whether directory `dir` holds a log (any log file), without creating anything: a log that
   * was opened once always keeps its active file.
   */
  static async existsAt(dir: string): Promise<boolean> {
    try {
      return (await new NodeFs(dir).list()).some((name) => parseFileName(name) !== undefined);
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return false;
      throw e;
    }
  }

  /** A log in memory (lost when the process ends). */
  static async openInMemory(options: RaftLogOptions = {}): Promise<RaftLogEngine> {
    return await RaftLogEngine.openFs(new MemFs(), options);
  }

  /** Opens the log on any {@link LogFs} (tests pass a {@link MemFs} to simulate crashes). */
  static async openFs(fs: LogFs, options: RaftLogOptions = {}): Promise<RaftLogEngine> {
    await fs.init();
    const pipe = new Pipe(fs);
    try {
      const report = await recover(pipe);
      if (pipe.files.append.length === 0) pipe.add(await pipe.create("append"));
      const engine = new RaftLogEngine(pipe, report, options);
      for (const t of report.truncated) {
        engine.#log(
          `raft log: cut ${t.bytes} bytes at ${t.at} of ${t.file} (${t.why}): a write the ` +
            `process did not finish`,
        );
      }
      engine.#maybeGc();
      return engine;
    } catch (e) {
      await pipe.close();
      throw e;
    }
  }

  /** A new, empty batch. */
  batch(): LogBatch {
    return new LogBatch();
  }

  /**
   * Writes `batch` (see the module comment). With `sync` (the default) it resolves once the
   * batch is durable.
   */
  write(batch: LogBatch, { sync = true }: { sync?: boolean } = {}): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("raft log engine is closed"));
    return this.#enqueue(batch, sync);
  }

  #enqueue(batch: LogBatch, sync: boolean): Promise<void> {
    if (this.#broken !== undefined) return Promise.reject(new RaftLogBrokenError(this.#broken));
    if (batch.isEmpty && !sync) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#pending.push({ batch, sync, resolve, reject });
      this.#flushing ??= this.#flushLoop();
    });
  }

  /** Makes every write so far durable. */
  async sync(): Promise<void> {
    await this.write(new LogBatch(), { sync: true });
  }

  async #flushLoop(): Promise<void> {
    while (this.#pending.length > 0) {
      const group = this.#pending.splice(0);
      try {
        if (this.#broken !== undefined) throw new RaftLogBrokenError(this.#broken);
        await this.#flush(group);
        for (const p of group) p.resolve();
      } catch (e) {
        this.#broken ??= e;
        for (const p of group) p.reject(e);
      }
    }
    this.#flushing = undefined;
    this.#maybeGc();
  }

  async #flush(group: readonly Pending[]): Promise<void> {
    const started = performance.now();
    const written = group.filter((p) => !p.batch.isEmpty).map((p) => p.batch);
    const batches = written.map((b) => b.items);
    const sync = group.some((p) => p.sync);
    const bytes = batches.reduce((n, b) => n + frameSize(b), 0);
    await this.beforeWrite?.({ batches: written, bytes, sync });
    const pipe = this.#pipe;
    let file = pipe.active("append")!;
    if (
      bytes > 0 && file.size + bytes > this.#policy.segmentBytes && file.size > FILE_HEADER_BYTES
    ) {
      file = await pipe.rotate("append");
      this.#unsynced = false;
    }
    const offsets = bytes > 0 ? await pipe.writeFrames(file, batches) : [];
    if (bytes > 0) this.#unsynced = true;
    if (sync && this.#unsynced) {
      await file.handle.datasync();
      this.#unsynced = false;
      this.#stats.syncs++;
    }
    for (const [b, items] of batches.entries()) {
      for (const [k, item] of items.entries()) {
        const at = offsets[b]![k];
        applyItem(
          pipe.mem,
          item,
          file.id,
          item.kind === ITEM_ENTRIES
            ? item.entries.map((e, n) => ({ file: file.id, offset: at![n]!, length: e.length }))
            : [],
        );
      }
    }
    this.#stats.writes++;
    this.#stats.batches += batches.length;
    this.#stats.bytes += bytes;
    this.#stats.writeMs += performance.now() - started;
  }

  // ---- reads ----

  /** Ids of every region with entries or a hard state, ascending. */
  regionIds(): number[] {
    return this.#pipe.mem.regionIds();
  }

  /** First and last index of a region's entries, or `undefined` if it has none. */
  bounds(regionId: number): { first: number; last: number } | undefined {
    return this.#pipe.mem.bounds(regionId);
  }

  /** A region's hard state, if it has one. */
  hardState(regionId: number): HardState | undefined {
    return this.#pipe.mem.hardState(regionId);
  }

  /**
   * A region's entries in `[lo, hi)` that it has, in order, from `max(lo, first)`. A hole (an
   * append past the last index without a clean first) is an error.
   */
  async entries(regionId: number, lo: number, hi: number): Promise<Uint8Array[]> {
    const { first, locs } = this.#pipe.mem.locs(regionId, lo, hi);
    const hole = locs.indexOf(undefined);
    if (hole >= 0) {
      throw new CorruptionError(
        `raft log of region ${regionId} has no entry ${first + hole} between entries it has`,
      );
    }
    return await this.#pipe.read(locs as Loc[]);
  }

  // ---- garbage collection ----

  /** Does one collection step now, if one is due; returns what it did. */
  async collect(): Promise<GcStep | undefined> {
    await this.gcIdle();
    const run = this.#gc.step();
    this.#gcRunning = run.then(() => {}, () => {});
    try {
      return await run;
    } catch (e) {
      this.#broken ??= e;
      throw e;
    } finally {
      this.#gcRunning = undefined;
    }
  }

  /** Resolves once background collection has stopped. */
  async gcIdle(): Promise<void> {
    while (this.#gcRunning) await this.#gcRunning;
  }

  #maybeGc(): void {
    if (!this.#autoGc || this.#gcRunning || this.#closed || this.#broken !== undefined) return;
    if (this.#gc.next() === undefined) return;
    this.#gcRunning = this.#gcLoop().finally(() => {
      this.#gcRunning = undefined;
    });
  }

  /** One step at a time, yielding between them so writes and requests keep flowing. */
  async #gcLoop(): Promise<void> {
    try {
      do {
        await delay(0);
        if (this.#closed || this.#broken !== undefined) return;
        await this.#gc.step();
      } while (this.#gc.next() !== undefined);
    } catch (e) {
      this.#broken ??= e;
      this.#log(`raft log: garbage collection failed, refusing writes: ${(e as Error).message}`);
    }
  }

  // ---- state ----

  get stats(): RaftLogStats {
    return { ...this.#stats, gc: { ...this.#gc.stats } };
  }

  /** Files of each queue and their bytes (total and live), for metrics and tests. */
  files(): { append: FileInfo[]; rewrite: FileInfo[] } {
    const info = (q: "append" | "rewrite") =>
      this.#pipe.files[q].map((f) => ({
        name: f.name,
        bytes: f.size,
        live: this.#pipe.mem.liveBytes(f.id),
      }));
    return { append: info("append"), rewrite: info("rewrite") };
  }

  /** Why the engine refuses writes, if it does. */
  get broken(): unknown {
    return this.#broken;
  }

  /** Waits for writes and collection in flight, then closes the files. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#flushing) await this.#flushing;
    await this.gcIdle();
    await this.#pipe.close();
  }
}

/** One file's size and live bytes. */
export interface FileInfo {
  readonly name: string;
  readonly bytes: number;
  readonly live: number;
}

function stripUndefined(o: RaftLogOptions): Partial<GcPolicy> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(DEFAULT_GC_POLICY) as (keyof GcPolicy)[]) {
    const v = o[k];
    if (v !== undefined) out[k] = v;
  }
  return out as Partial<GcPolicy>;
}
