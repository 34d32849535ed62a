/**
 * Network faults for in-process clusters that talk real HTTP on 127.0.0.1: every request a store
 * sends (Raft batches, forwarded KV requests, scheduler RPC) goes through {@link LinkFaults.fetch},
 * which knows which endpoint it is sent from and which one it goes to.
 *
 * A cut link behaves like a partition made with `iptables -j DROP`: the request is not refused,
 * it hangs. Its sender's timeout or abort ends the sender's wait, but the request itself stays
 * *parked*, as TCP data already written stays in flight, and is delivered when the test releases
 * it — by default when the link heals. Tests that need a particular delivery order heal with
 * `{ release: false }` and release parked requests one by one.
 *
 * @module
 */

/** Who sends or receives: a store (by ID) or the scheduler. */
export type Endpoint = number | "scheduler";

/** A request that hit a cut link and waits to be delivered. */
export interface ParkedRequest {
  readonly from: Endpoint;
  readonly to: Endpoint;
  readonly method: string;
  readonly url: string;
  /** When it was parked (Date.now()). */
  readonly at: number;
  /** Whether the sender stopped waiting for it (it is still delivered when released). */
  readonly abandoned: boolean;
  /** The request body, for tests that look at what is in flight. */
  readonly body: Uint8Array | undefined;
}

interface Parked extends ParkedRequest {
  abandoned: boolean;
  deliver(): void;
}

/** Cut links and parked requests of one test cluster. */
export class LinkFaults {
  #cuts: [Set<Endpoint>, Set<Endpoint>][] = [];
  #parked: Parked[] = [];
  /** Host:port → endpoint, filled as stores start. */
  readonly #endpoints = new Map<string, Endpoint>();
  /** Requests delivered after being parked, for assertions that a fault really happened. */
  releasedCount = 0;
  /** Deliveries of released requests still in progress. */
  readonly #delivering = new Set<Promise<unknown>>();

  /** Names the endpoint listening on `hostPort`. */
  register(hostPort: string, endpoint: Endpoint): void {
    this.#endpoints.set(hostPort, endpoint);
  }

  /** Cuts every link between the two groups (both directions). */
  cut(a: readonly Endpoint[], b: readonly Endpoint[]): void {
    this.#cuts.push([new Set(a), new Set(b)]);
  }

  /** Whether requests from `from` to `to` are cut now. */
  isCut(from: Endpoint, to: Endpoint): boolean {
    return this.#cuts.some(([a, b]) => (a.has(from) && b.has(to)) || (b.has(from) && a.has(to)));
  }

  /** Removes every cut; parked requests are delivered unless `release` is false. */
  heal({ release = true }: { release?: boolean } = {}): void {
    this.#cuts = [];
    if (release) this.releaseAll();
  }

  /** Requests waiting on cut links, oldest first. */
  parked(): readonly ParkedRequest[] {
    return [...this.#parked];
  }

  /** Delivers one parked request now. */
  release(req: ParkedRequest): void {
    const i = this.#parked.indexOf(req as Parked);
    if (i < 0) throw new Error(`${req.method} ${req.url} is not parked`);
    const [p] = this.#parked.splice(i, 1);
    this.releasedCount++;
    p!.deliver();
  }

  /** Delivers every parked request, oldest first. */
  releaseAll(): void {
    for (const p of [...this.#parked]) this.release(p);
  }

  /** Resolves once every released request has been answered (or has failed). */
  async settled(): Promise<void> {
    while (this.#delivering.size > 0) await Promise.allSettled([...this.#delivering]);
  }

  /** A `fetch` for requests sent by `from`. */
  fetchFrom(from: Endpoint): typeof fetch {
    return (input: RequestInfo | URL, init?: RequestInit) => this.#fetch(from, input, init);
  }

  async #fetch(from: Endpoint, input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const req = new Request(input, init);
    const to = this.#endpoints.get(new URL(req.url).host);
    if (to === undefined || !this.isCut(from, to)) return await fetch(req);
    // Read the body now: the request is "on the wire" and will be delivered as sent.
    const body = req.body ? new Uint8Array(await req.arrayBuffer()) : undefined;
    const signal = init?.signal ?? undefined;
    signal?.throwIfAborted();
    return await new Promise<Response>((resolve, reject) => {
      const parked: Parked = {
        from,
        to,
        method: req.method,
        url: req.url,
        at: Date.now(),
        abandoned: false,
        body,
        deliver: () => {
          // Delivered whether or not the sender still waits; the sender gets the answer only
          // if it does.
          const delivery = fetch(req.url, { method: req.method, headers: req.headers, body }).then(
            async (res) => {
              if (parked.abandoned) await res.body?.cancel();
              else resolve(res);
            },
            (e) => {
              if (!parked.abandoned) reject(e);
            },
          );
          this.#delivering.add(delivery);
          delivery.finally(() => this.#delivering.delete(delivery));
        },
      };
      signal?.addEventListener("abort", () => {
        parked.abandoned = true;
        reject(signal.reason ?? new DOMException("aborted", "AbortError"));
      }, { once: true });
      this.#parked.push(parked);
    });
  }
}
