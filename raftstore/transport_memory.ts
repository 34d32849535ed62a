/**
 * An in-process {@link Transport} for cluster tests: stores register a receiver with a shared
 * {@link MemoryNetwork}, and every envelope passes through the network's filters, which can drop
 * it (randomly, by partition, by isolation) or delay it (which also reorders). Delivery is always
 * asynchronous, like a real network. Randomness comes from a seeded generator so a failing test
 * can be replayed. A send with no envelopes (a liveness ping) is an empty batch; the partitions,
 * isolations and drop rates below apply to it as to any envelope.
 *
 * @module
 */
import { seededRandom } from "../raft/mod.ts";
import type { RaftBatch, RaftEnvelope, RaftReceiver, Transport } from "./transport.ts";

/** Decides an envelope's fate: `"drop"`, a delay in milliseconds, or `undefined` to pass. */
export type NetworkFilter = (
  from: number,
  to: number,
  env: RaftEnvelope,
) => "drop" | number | undefined;

/** The shared in-memory network of one test cluster. */
export class MemoryNetwork {
  readonly #receivers = new Map<number, RaftReceiver>();
  #filters: NetworkFilter[] = [];
  /** Links the built-in faults cut, and their drop rates: what an empty batch goes through. */
  #cuts: ((from: number, to: number) => boolean)[] = [];
  #dropRates: number[] = [];
  readonly rand: () => number;
  /** Envelopes delivered and dropped, for assertions that a fault really happened. */
  delivered = 0;
  dropped = 0;

  constructor(seed = 1) {
    this.rand = seededRandom(seed);
  }

  /**
   * A transport for `storeId` whose inbound batches go to `receiver`; its batches carry
   * `incarnation` (see liveness.ts).
   */
  connect(storeId: number, receiver: RaftReceiver, incarnation?: number): Transport {
    this.#receivers.set(storeId, receiver);
    let closed = false;
    return {
      send: (to, envelopes) => {
        if (!closed) this.#route(storeId, to, envelopes, incarnation);
      },
      close: () => {
        closed = true;
        if (this.#receivers.get(storeId) === receiver) this.#receivers.delete(storeId);
      },
    };
  }

  addFilter(filter: NetworkFilter): void {
    this.#filters.push(filter);
  }

  clearFilters(): void {
    this.#filters = [];
    this.#cuts = [];
    this.#dropRates = [];
  }

  /** Drops each envelope with probability `rate`. */
  dropRate(rate: number): void {
    this.#dropRates.push(rate);
    this.addFilter(() => (this.rand() < rate ? "drop" : undefined));
  }

  /** Delays each envelope by a random 0..maxMs, which reorders them. */
  randomDelay(maxMs: number): void {
    this.addFilter(() => Math.floor(this.rand() * maxMs));
  }

  /** Cuts every link between the two groups of stores. */
  partition(a: readonly number[], b: readonly number[]): void {
    const sa = new Set(a);
    const sb = new Set(b);
    const cut = (from: number, to: number) =>
      (sa.has(from) && sb.has(to)) || (sb.has(from) && sa.has(to));
    this.#cuts.push(cut);
    this.addFilter((from, to) => cut(from, to) ? "drop" : undefined);
  }

  /** Cuts a store off from every other. */
  isolate(storeId: number): void {
    const cut = (from: number, to: number) => from === storeId || to === storeId;
    this.#cuts.push(cut);
    this.addFilter((from, to) => (cut(from, to) ? "drop" : undefined));
  }

  #route(
    from: number,
    to: number,
    envelopes: readonly RaftEnvelope[],
    incarnation: number | undefined,
  ): void {
    if (envelopes.length === 0) {
      const lost = this.#cuts.some((cut) => cut(from, to)) ||
        this.#dropRates.some((rate) => this.rand() < rate);
      if (!lost) {
        queueMicrotask(() => this.#deliver(to, { fromStoreId: from, incarnation, envelopes: [] }));
      }
      return;
    }
    const now: RaftEnvelope[] = [];
    for (const env of envelopes) {
      let delay = 0;
      let drop = false;
      for (const f of this.#filters) {
        const verdict = f(from, to, env);
        if (verdict === "drop") drop = true;
        else if (typeof verdict === "number") delay = Math.max(delay, verdict);
      }
      if (drop) {
        this.dropped++;
        continue;
      }
      if (delay > 0) {
        setTimeout(
          () => this.#deliver(to, { fromStoreId: from, incarnation, envelopes: [env] }),
          delay,
        );
      } else now.push(env);
    }
    if (now.length > 0) {
      queueMicrotask(() => this.#deliver(to, { fromStoreId: from, incarnation, envelopes: now }));
    }
  }

  #deliver(to: number, batch: RaftBatch): void {
    const receiver = this.#receivers.get(to);
    if (!receiver) {
      this.dropped += batch.envelopes.length;
      return;
    }
    this.delivered += batch.envelopes.length;
    receiver(batch);
  }
}
