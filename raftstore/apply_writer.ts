/**
 * The Ready loop's writes of applied data to Deno KV, in pass order and grouped.
 *
 * A pass's applied data need not be durable before the next pass starts: its entries were on a
 * quorum's disks before they were applied, and their clients were answered then (see
 * store.ts, "Data writes whose entries earlier passes persisted"). What must hold is that the
 * writes land in the order of the passes that made them (an apply state never goes back), that
 * nothing reads a region's engine state as of an applied index before the write carrying it has
 * landed (reads wait for the applied index, which moves when it lands), and that what waits for
 * a write — snapshots, destructions, admin commands — waits for every write queued before it.
 *
 * So the writer keeps one queue. While a write is in flight, the batches queued behind it are
 * appended into one (`WriteBatch.append`, each mutation in its phase): many passes, one Deno KV
 * commit, one `fsync`. Each batch's `landed` callback runs once its write is done, in queue
 * order, before anything queued later is told.
 */

import type { KvEngine } from "../storage/engine.ts";
import type { WriteBatch } from "../storage/write_batch.ts";

/** Called once a queued batch is durable (or the write failed: then `error` is set). */
export type Landed = (error?: Error) => void;

export class ApplyWriter {
  #queued: WriteBatch | undefined;
  #waiting: Landed[] = [];
  #running: Promise<void> | undefined;
  /** The error that stopped the writer: every later write fails with it. */
  #failed: Error | undefined;
  /** Writes made and batches they carried (for /metrics and tests). */
  writes = 0;
  batches = 0;

  constructor(readonly engine: KvEngine) {}

  /**
   * Queues `wb` after everything queued before it; `landed` runs once it is durable. `wb` is
   * the writer's from now on (later batches may be appended to it).
   */
  enqueue(wb: WriteBatch, landed: Landed): void {
    if (this.#failed) {
      const e = this.#failed;
      queueMicrotask(() => landed(e));
      return;
    }
    this.batches++;
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

  async #run(): Promise<void> {
    while (this.#queued) {
      const wb = this.#queued;
      const waiting = this.#waiting;
      this.#queued = undefined;
      this.#waiting = [];
      let error: Error | undefined;
      try {
        this.writes++;
        await this.engine.write(wb);
      } catch (e) {
        error = this.#failed = e as Error;
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
