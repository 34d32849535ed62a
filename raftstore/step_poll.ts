/**
 * The store's end of pushed operator steps (scheduler/step_push.ts): one long poll to the
 * scheduler, always open, whose answers are carried out like steps that came back with a
 * heartbeat. An admin's transfer-leader or split thus starts within a network round trip of being
 * made, even on a region that sleeps and sends no heartbeat.
 *
 * @module
 */
import type { RegionHeartbeatResult } from "../proto/pdpb.ts";
import type { PdClient } from "../proto/pd_client.ts";

/** How long each poll waits for a step. */
export const POLL_WAIT_MS = 20_000;
/** Pause after a failed poll (scheduler down or restarting), doubling up to the maximum. */
const MIN_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 5_000;

/** Keeps a long poll for pushed operator steps open. */
export class StepPoller {
  readonly #abort = new AbortController();
  #running: Promise<void> | undefined;
  /** Steps received, for metrics and tests. */
  received = 0;

  constructor(
    readonly storeId: number,
    readonly client: PdClient,
    /** Carries out one step (never throws). */
    readonly execute: (result: RegionHeartbeatResult) => Promise<void>,
    readonly onError: (e: Error) => void = () => {},
  ) {}

  start(): void {
    this.#running ??= this.#loop();
  }

  /** Ends the open poll and stops. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#running;
  }

  async #loop(): Promise<void> {
    const signal = this.#abort.signal;
    const client = this.client.withTimeout(POLL_WAIT_MS + 5_000);
    let backoff = 0;
    while (!signal.aborted) {
      try {
        const { results } = await client.waitOperatorSteps(this.storeId, POLL_WAIT_MS, signal);
        backoff = 0;
        for (const r of results) {
          if (!r.step) continue;
          this.received++;
          void this.execute(r);
        }
      } catch (e) {
        if (signal.aborted) return;
        backoff = Math.min(MAX_BACKOFF_MS, Math.max(MIN_BACKOFF_MS, backoff * 2));
        this.onError(e as Error);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, backoff);
          signal.addEventListener("abort", () => {
            clearTimeout(t);
            resolve();
          }, { once: true });
        });
      }
    }
  }
}
