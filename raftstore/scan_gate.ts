/**
 * How many scan pages a store builds and sends at once. A page holds up to
 * `MAX_SCAN_PAGE_BYTES` of keys and values, and rendering it as JSON makes several copies of
 * that, so memory grows with the pages in flight, not with the pages asked for: 20 concurrent
 * maximum-size scans once took a store to 4.7 GB. With a gate, the pages past its width wait
 * their turn (briefly; then the request is answered `ServerIsBusy`, which clients retry), and the
 * pages that run finish sooner than when all compete for the engine and the CPU.
 *
 * A slot is held until the response has been written to the connection (or the connection is
 * gone), so a client that reads slowly holds one slot, not an unbounded share of memory.
 *
 * @module
 */
import { MrkvError } from "../proto/errors.ts";

/** A counting semaphore whose waiters give up after a while. */
export class ScanGate {
  #free: number;
  readonly #waiters: (() => void)[] = [];

  constructor(
    /** Pages built at once. */
    readonly width: number,
    /** Longest a page waits for a slot before `ServerIsBusy`. */
    readonly waitMs: number,
  ) {
    this.#free = width;
  }

  /** Pages being built or sent right now. */
  get busy(): number {
    return this.width - this.#free;
  }

  /** Takes a slot; returns its release (idempotent). Throws `ServerIsBusy` after `waitMs`. */
  async acquire(): Promise<() => void> {
    if (this.#free > 0) {
      this.#free--;
      return this.#release();
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(wake);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(
          new MrkvError(
            "ServerIsBusy",
            `${this.width} scan pages are being served; try again shortly`,
          ),
        );
      }, this.waitMs);
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#waiters.push(wake);
    });
    return this.#release();
  }

  #release(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      // The slot passes straight to the first waiter, if any.
      const next = this.#waiters.shift();
      if (next) next();
      else this.#free++;
    };
  }
}
