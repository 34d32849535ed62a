/**
 * The workload loop: `concurrency` workers, each issuing one request at a time, until the time
 * bound or the request-count bound is reached (whichever comes first). With a rate, request `n`
 * starts no earlier than `n / rate` seconds into the run (a worker waits for its slot), so
 * requests go out at even intervals however fast the server answers. Each operation is a write
 * with probability `writePct`/100, on a key drawn uniformly from the key space, sent to the next
 * endpoint in round-robin order. Latency is measured per request from just before fetch to the
 * end of the response body, and kept in separate histograms for reads and writes; failed
 * requests are counted by kind and do not enter the histograms.
 *
 * After a failed request a worker pauses {@link ERROR_BACKOFF_MS}, so a dead server makes the
 * tool report errors rather than spin a CPU core on refused connections.
 *
 * @module
 */
import { seededRandom } from "../../raft/mod.ts";
import { LatencyHistogram, type LatencySummary } from "./histogram.ts";
import type { RouteStats } from "./routes.ts";
import { keyFor, OpError, type Target } from "./targets.ts";

/** Pause of a worker after a failed request. */
export const ERROR_BACKOFF_MS = 10;
/** Attempts per key during prefill before it is counted as failed. */
export const PREFILL_ATTEMPTS = 3;
/** Prefill gives up (and says so) after this long. */
export const PREFILL_TIME_CAP_MS = 5 * 60_000;

/** What {@link runLoad} needs; a subset of the CLI's options plus the adapter. */
export interface RunOptions {
  readonly target: Target;
  readonly endpoints: readonly string[];
  readonly writePct: number;
  readonly concurrency: number;
  /** Requests started per second, in all (see the module comment); undefined: no pacing. */
  readonly rate?: number;
  readonly keys: number;
  readonly durationMs: number;
  readonly requests?: number;
  readonly prefill: boolean;
  readonly timeoutMs: number;
  readonly seed: number;
  /** When aborted, workers stop issuing new requests (in-flight ones finish). */
  readonly stop?: AbortSignal;
}

/** Failed requests of one kind, with one example message. */
export interface ErrorCount {
  readonly kind: string;
  count: number;
  readonly example: string;
}

/** The prefill phase's outcome. */
export interface PrefillResult {
  readonly keys: number;
  readonly written: number;
  readonly failed: number;
  readonly elapsedMs: number;
  readonly errors: readonly ErrorCount[];
}

/** The measured phase's outcome. */
export interface RunResult {
  /** Wall time from the first request to the last response. */
  readonly elapsedMs: number;
  /** Requests issued (successful or not). */
  readonly attempted: number;
  /** Successful operations (reads that found nothing included). */
  readonly ops: number;
  readonly opsPerSec: number;
  readonly writes: LatencySummary;
  readonly reads: LatencySummary;
  /** Reads and writes together. */
  readonly all: LatencySummary;
  /** Reads that succeeded but found no value. */
  readonly readMisses: number;
  readonly errorCount: number;
  /** By kind, most frequent first. */
  readonly errors: readonly ErrorCount[];
  readonly stoppedBy: "duration" | "requests" | "signal";
  readonly prefill?: PrefillResult;
  /** With routing (`--route leader`): requests of the measured phase routed or not, and the map. */
  readonly routes?: RouteStats;
}

export { seededRandom };

class ErrorTally {
  readonly #byKind = new Map<string, ErrorCount>();
  total = 0;

  add(e: unknown): void {
    const kind = e instanceof OpError ? e.kind : "client";
    const message = e instanceof Error ? e.message : String(e);
    const entry = this.#byKind.get(kind);
    if (entry) entry.count++;
    else this.#byKind.set(kind, { kind, count: 1, example: message });
    this.total++;
  }

  list(): ErrorCount[] {
    return [...this.#byKind.values()].sort((a, b) => b.count - a.count);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs the optional prefill and then the measured phase. */
export async function runLoad(options: RunOptions): Promise<RunResult> {
  if (options.endpoints.length === 0) throw new RangeError("runLoad: no endpoints");
  const prefill = options.prefill ? await runPrefill(options) : undefined;
  const before = options.target.routeStats?.();
  const result: RunResult = await measure(options);
  const after = options.target.routeStats?.();
  const routes = before && after
    ? { ...after, routed: after.routed - before.routed, unrouted: after.unrouted - before.unrouted }
    : undefined;
  return { ...result, ...(prefill && { prefill }), ...(routes && { routes }) };
}

/** Writes every key once, spreading keys over endpoints and workers. */
export async function runPrefill(options: RunOptions): Promise<PrefillResult> {
  const { target, endpoints, keys, timeoutMs } = options;
  const errors = new ErrorTally();
  const start = performance.now();
  const deadline = start + PREFILL_TIME_CAP_MS;
  let nextKey = 0;
  let written = 0;
  let failed = 0;
  const worker = async () => {
    while (nextKey < keys && performance.now() < deadline && !options.stop?.aborted) {
      const index = nextKey++;
      const endpoint = endpoints[index % endpoints.length]!;
      for (let attempt = 1;; attempt++) {
        try {
          await target.put(endpoint, keyFor(index), AbortSignal.timeout(timeoutMs));
          written++;
          break;
        } catch (e) {
          errors.add(e);
          if (attempt >= PREFILL_ATTEMPTS) {
            failed++;
            break;
          }
          await sleep(ERROR_BACKOFF_MS);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, keys) }, worker));
  return {
    keys,
    written,
    failed: failed + (keys - nextKey), // keys never tried (time cap or stop) count as failed
    elapsedMs: performance.now() - start,
    errors: errors.list(),
  };
}

async function measure(options: RunOptions): Promise<RunResult> {
  const { target, endpoints, writePct, keys, requests, timeoutMs } = options;
  const random = seededRandom(options.seed);
  const writes = new LatencyHistogram();
  const reads = new LatencyHistogram();
  const errors = new ErrorTally();
  let attempted = 0;
  let readMisses = 0;
  let stoppedBy: RunResult["stoppedBy"] = "duration";

  const start = performance.now();
  const deadline = start + options.durationMs;
  const worker = async () => {
    while (true) {
      if (options.stop?.aborted) {
        stoppedBy = "signal";
        return;
      }
      if (requests !== undefined && attempted >= requests) {
        stoppedBy = "requests";
        return;
      }
      if (performance.now() >= deadline) return;
      const slotAt = options.rate === undefined ? 0 : start + (attempted * 1000) / options.rate;
      if (slotAt >= deadline) return;
      // Every choice is made synchronously here, so a seed fixes the sequence of operations.
      const n = attempted++;
      const isWrite = random() * 100 < writePct;
      const key = keyFor(Math.floor(random() * keys));
      const endpoint = endpoints[n % endpoints.length]!;
      if (slotAt > performance.now()) {
        await sleep(slotAt - performance.now());
        if (options.stop?.aborted) {
          attempted--; // never sent
          stoppedBy = "signal";
          return;
        }
      }
      const signal = AbortSignal.timeout(timeoutMs);
      const t0 = performance.now();
      try {
        if (isWrite) {
          await target.put(endpoint, key, signal);
          writes.recordMs(performance.now() - t0);
        } else {
          const found = await target.get(endpoint, key, signal);
          reads.recordMs(performance.now() - t0);
          if (!found) readMisses++;
        }
      } catch (e) {
        errors.add(e);
        await sleep(ERROR_BACKOFF_MS);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  const elapsedMs = performance.now() - start;
  const ops = writes.count + reads.count;
  const all = new LatencyHistogram();
  all.merge(writes);
  all.merge(reads);
  return {
    elapsedMs,
    attempted,
    ops,
    opsPerSec: elapsedMs > 0 ? ops / (elapsedMs / 1000) : 0,
    writes: writes.summary(),
    reads: reads.summary(),
    all: all.summary(),
    readMisses,
    errorCount: errors.total,
    errors: errors.list(),
    stoppedBy,
  };
}
