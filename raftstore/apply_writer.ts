/**
 * The Ready loop's writes of applied data to Deno KV, in pass order and grouped.
 *
 * A pass's applied data need not be durable before the next pass starts: its entries were on a
 * quorum's disks before they were applied, and their clients were answered then (see
 * store.ts, "Data writes whose entries earlier passes persisted"). What must hold is that the
 * writes land in the order of the passes that made them (an apply state never goes back), that
 * nothing reads a region's engine state as of an applied index before the write carrying it has
 * landed (scans wait for the applied index, which moves when it lands; reads of one key see
 * pending data, below), and that what waits for
 * a write — snapshots, destructions, admin commands — waits for every write queued before it.
 *
 * So the writer keeps one queue. While a write is in flight, the batches queued behind it are
 * appended into one (`WriteBatch.append`, each mutation in its phase): many passes, one Deno KV
 * commit, one `fsync`. Each batch's `landed` callback runs once its write is done, in queue
 * order, before anything queued later is told.
 *
 * Until a batch lands, the user keys it writes are kept here too (`enqueue(..., visible)`), so a
 * read of one key can see applied data before it is in the engine — as TiKV's reads see a
 * memtable before RocksDB syncs it. A key's entry goes once the write that carries its latest
 * value has landed, so a read that finds no entry finds the value in the engine: what is not
 * pending has landed.
 */

import type { KvEngine } from "../storage/engine.ts";
import type { WriteBatch } from "../storage/write_batch.ts";

/** Called once a queued batch is durable (or the write failed: then `error` is set). */
export type Landed = (error?: Error) => void;

export class ApplyWriter {
  #queued: WriteBatch | undefined;
  /** User keys of visible batches not yet landed: the latest value and its batch's number. */
  readonly #pending = new Map<string, { value: Uint8Array | null; seq: number }>();
  #waiting: Landed[] = [];
  #running: Promise<void> | undefined;
  /** The error that stopped the writer: every later write fails with it. */
  #failed: Error | undefined;
  /** Writes made and batches they carried (for /metrics and tests). */
  writes = 0;
  batches = 0;
  /** Reads answered from {@link pending}. */
  pendingReads = 0;

  constructor(readonly engine: KvEngine) {}

  /**
   * Queues `wb` after everything queued before it; `landed` runs once it is durable. `wb` is
   * the writer's from now on (later batches may be appended to it). If `visible`, the user keys
   * it writes can be read with {@link pending} until it lands.
   */
  enqueue(wb: WriteBatch, landed: Landed, visible = false): void {
    if (this.#failed) {
      const e = this.#failed;
      queueMicrotask(() => landed(e));
      return;
    }
    const seq = ++this.batches;
    if (visible) {
      for (const [key, value] of wb.dataWrites()) this.#pending.set(key.toHex(), { value, seq });
    }
    if (this.#queued) this.#queued.append(wb);
    else this.#queued = wb;
    this.#waiting.push(landed);
    this.#running ??= this.#run();
  }

  /** Queues `wb` and resolves once it has landed (rejects if the write failed). */
  write(wb: WriteBatch): Promise<void> {
    return new Promise((resolve, reject) => this.enqueue(wb, (e) => e ? reject(e) : resolve()));
  }

  /** Resolves once everything queued so far has landed or failed. */
  async landed(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Whether a write is in flight or queued. */
  get busy(): boolean {
    return this.#running !== undefined;
  }

  /** Mutations queued behind the write in flight. */
  get queuedMutations(): number {
    return this.#queued?.size ?? 0;
  }

  /**
   * The value a visible batch not yet landed writes at user key `key` (`null`: it deletes the
   * key), or `undefined` if none does: then the engine has the key's latest applied value.
   */
  pending(key: Uint8Array): Uint8Array | null | undefined {
    if (this.#pending.size === 0) return undefined;
    const entry = this.#pending.get(key.toHex());
    if (entry) this.pendingReads++;
    return entry?.value;
  }

  async #run(): Promise<void> {
    while (this.#queued) {
      const wb = this.#queued;
      const waiting = this.#waiting;
      const upTo = this.batches;
      this.#queued = undefined;
      this.#waiting = [];
      let error: Error | undefined;
      try {
        this.writes++;
        await this.engine.write(wb);
      } catch (e) {
        error = this.#failed = e as Error;
      }
      // Before anyone is told: a read that then finds no pending value must find it landed.
      if (!error && this.#pending.size > 0) {
        for (const [key, { seq }] of this.#pending) if (seq <= upTo) this.#pending.delete(key);
      }
      for (const landed of waiting) landed(error);
      if (error) {
        // Nothing queued after a failed write may land: it could be ahead of what failed.
        const rest = this.#waiting;
        this.#queued = undefined;
        this.#waiting = [];
        for (const landed of rest) landed(error);
      }
    }
    this.#running = undefined;
  }
}
