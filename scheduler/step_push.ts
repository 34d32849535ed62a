/**
 * Operator steps pushed to leader stores as soon as they exist (PD sends them down its region
 * heartbeat stream): a store keeps one long poll open (`wait_operator_steps`), and a new
 * operator's first step is handed to it at once instead of waiting for the region's next
 * heartbeat, which a quiet region may not send for a minute. Later steps of an operator go back
 * with the heartbeat that shows the previous one done, as before.
 *
 * A step handed to a poll whose connection has gone is lost; the region's next heartbeat carries
 * it again (steps are idempotent and repeated until done), at the latest its periodic refresh.
 *
 * @module
 */
import type { RegionHeartbeatResult } from "../proto/pdpb.ts";

/** Longest a store's poll is held open. */
export const MAX_WAIT_MS = 30_000;
/** Most steps queued for one store (one per region; a newer step replaces an older one). */
export const MAX_QUEUED = 10_000;

interface Waiter {
  readonly resolve: (results: RegionHeartbeatResult[]) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** Steps waiting for their stores' polls. */
export class StepOutbox {
  /** Store → region → the step to hand over. */
  readonly #queued = new Map<number, Map<number, RegionHeartbeatResult>>();
  readonly #waiters = new Map<number, Waiter>();
  #closed = false;
  /** Steps handed to stores, for metrics. */
  pushed = 0;

  /** Queues `result` (a region's step) for `storeId`, answering its open poll if any. */
  push(storeId: number, result: RegionHeartbeatResult): void {
    if (this.#closed) return;
    let q = this.#queued.get(storeId);
    if (!q) this.#queued.set(storeId, q = new Map());
    q.delete(result.regionId); // keep insertion order = age
    q.set(result.regionId, result);
    if (q.size > MAX_QUEUED) q.delete(q.keys().next().value!);
    const w = this.#waiters.get(storeId);
    if (w) this.#answer(storeId, w);
  }

  /**
   * Resolves with the steps queued for `storeId`: at once if there are any, else when one is
   * pushed or after `waitMs` (with none). A newer poll of the same store ends an older one.
   */
  wait(storeId: number, waitMs: number): Promise<RegionHeartbeatResult[]> {
    const old = this.#waiters.get(storeId);
    if (old) {
      clearTimeout(old.timer);
      this.#waiters.delete(storeId);
      old.resolve([]);
    }
    if (this.#closed) return Promise.resolve([]);
    if (this.#queued.get(storeId)?.size) return Promise.resolve(this.#take(storeId));
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (this.#waiters.get(storeId)?.timer === timer) this.#waiters.delete(storeId);
        resolve([]);
      }, Math.min(waitMs, MAX_WAIT_MS));
      this.#waiters.set(storeId, { resolve, timer });
    });
  }

  /** Ends every open poll (the scheduler is stopping). */
  close(): void {
    this.#closed = true;
    for (const [id, w] of this.#waiters) {
      clearTimeout(w.timer);
      w.resolve([]);
      this.#waiters.delete(id);
    }
  }

  #answer(storeId: number, w: Waiter): void {
    clearTimeout(w.timer);
    this.#waiters.delete(storeId);
    w.resolve(this.#take(storeId));
  }

  #take(storeId: number): RegionHeartbeatResult[] {
    const q = this.#queued.get(storeId);
    this.#queued.delete(storeId);
    const out = q ? [...q.values()] : [];
    this.pushed += out.length;
    return out;
  }
}
