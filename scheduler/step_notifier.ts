/**
 * Tells a store at once that a region it leads has a new operator (the `wait_steps` long poll).
 *
 * Steps travel in region heartbeat answers, so a new operator's first step would wait for the
 * leader's next periodic heartbeat (`scheduler-heartbeat-ms`, 1 s by default). PD pushes it down
 * its heartbeat stream instead; over plain HTTP each store keeps one `wait_steps` request open,
 * answered as soon as one of its regions gets an operator (or empty after a timeout). The store
 * then reports those regions at once and gets their steps in the heartbeat answer, so all step
 * logic stays in one place.
 *
 * @module
 */

/** Longest a `wait_steps` request may be held. */
export const MAX_WAIT_MS = 30_000;
/**
 * Most regions remembered for a store between its calls. A store that never calls (an older
 * version, or one that is gone) would otherwise make the set grow without end; forgetting costs
 * nothing but latency, since steps also come with every periodic heartbeat.
 */
export const MAX_PENDING_PER_STORE = 10_000;

interface Waiter {
  readonly resolve: (regionIds: number[]) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** Regions with a new operator, per leader store, and the stores waiting to hear of them. */
export class StepNotifier {
  readonly #pending = new Map<number, Set<number>>();
  readonly #waiters = new Map<number, Waiter>();
  #closed = false;

  /** Region `regionId`, led from `storeId`, has a new operator. */
  notify(storeId: number, regionId: number): void {
    let set = this.#pending.get(storeId);
    if (!set || set.size >= MAX_PENDING_PER_STORE) this.#pending.set(storeId, set = new Set());
    set.add(regionId);
    const w = this.#waiters.get(storeId);
    if (w) this.#answer(storeId, w);
  }

  /**
   * Resolves with the regions of `storeId` that got an operator since its last call: at once
   * if there are some, else when one does or after `timeoutMs` (then empty). A newer call for
   * the same store answers the older one (empty).
   */
  wait(storeId: number, timeoutMs: number): Promise<number[]> {
    if (this.#closed) return Promise.resolve([]);
    const older = this.#waiters.get(storeId);
    if (older) {
      clearTimeout(older.timer);
      this.#waiters.delete(storeId);
      older.resolve([]);
    }
    return new Promise((resolve) => {
      const waiter: Waiter = {
        resolve,
        timer: setTimeout(() => {
          if (this.#waiters.get(storeId) === waiter) this.#waiters.delete(storeId);
          resolve([]);
        }, Math.min(timeoutMs, MAX_WAIT_MS)),
      };
      this.#waiters.set(storeId, waiter);
      if (this.#pending.get(storeId)?.size) this.#answer(storeId, waiter);
    });
  }

  /** Answers every waiting store (empty) and refuses to hold new ones: the server is stopping. */
  close(): void {
    this.#closed = true;
    for (const [storeId, w] of this.#waiters) {
      clearTimeout(w.timer);
      this.#waiters.delete(storeId);
      w.resolve([]);
    }
  }

  #answer(storeId: number, w: Waiter): void {
    clearTimeout(w.timer);
    this.#waiters.delete(storeId);
    const ids = [...(this.#pending.get(storeId) ?? [])];
    this.#pending.delete(storeId);
    w.resolve(ids);
  }
}
