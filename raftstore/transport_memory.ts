/**
 * An in-process {@link Transport} for cluster tests: stores register a receiver with a shared
 * {@link MemoryNetwork}, and every envelope passes through the network's filters, which can drop
 * it (randomly, by partition, by isolation) or delay it (which also reorders). Delivery is always
 * asynchronous, like a real network. Randomness comes from a seeded generator so a failing test
 * can be replayed.
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
  readonly rand: () => number;
  /** Envelopes delivered and dropped, for assertions that a fault really happened. */
  delivered = 0;
  dropped = 0;

  constructor(seed = 1) {
    this.rand = seededRandom(seed);
  }

  /** A transport for `storeId` whose inbound batches go to `receiver`. */
  connect(storeId: number, receiver: RaftReceiver): Transport {
    this.#receivers.set(storeId, receiver);
    let closed = false;
    return {
      send: (to, envelopes) => {
        if (!closed) this.#route(storeId, to, envelopes);
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
  }

  /** Drops each envelope with probability `rate`. */
  dropRate(rate: number): void {
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
    this.addFilter((from, to) =>
      (sa.has(from) && sb.has(to)) || (sb.has(from) && sa.has(to)) ? "drop" : undefined
    );
  }

  /** Cuts a store off from every other. */
  isolate(storeId: number): void {
    this.addFilter((from, to) => (from === storeId || to === storeId ? "drop" : undefined));
  }

  #route(from: number, to: number, envelopes: readonly RaftEnvelope[]): void {
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
        setTimeout(() => this.#deliver(to, { fromStoreId: from, envelopes: [env] }), delay);
      } else now.push(env);
    }
    if (now.length > 0) {
      queueMicrotask(() => this.#deliver(to, { fromStoreId: from, envelopes: now }));
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
