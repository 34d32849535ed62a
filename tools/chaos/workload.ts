/**
 * The workload: `clients` clients, client i bound to store i mod N, each running one operation
 * at a time on a random key, writing unique values (`c<client>-<seq>`) or reading, and the
 * final checks once faults are over. Every operation lands in the history.
 *
 * @module
 */
import { seededRandom } from "../../raft/mod.ts";
import type { HistoryRecorder, OpKind } from "./history.ts";
import type { OpResult, RegisterClient } from "./register.ts";

/** What the clients need. */
export interface WorkloadOptions {
  readonly clients: number;
  readonly keys: readonly string[];
  /** Store names, and where each is reached. */
  readonly stores: readonly string[];
  readonly endpoint: (store: string) => string;
  /** Share of operations that are reads, 0..1. */
  readonly readFraction: number;
  readonly client: RegisterClient;
  readonly recorder: HistoryRecorder;
  readonly seed: number;
  readonly now: () => number;
}

/** `count` key names that sort like their indexes: k00..k19. */
export function keyNames(count: number): string[] {
  const width = String(Math.max(0, count - 1)).length;
  return Array.from({ length: count }, (_, i) => `k${String(i).padStart(Math.max(2, width), "0")}`);
}

/** After an answer that was not ok, a client waits this long (refused connections are instant). */
const BACKOFF_MS = 50;

/** Runs one operation and records it. */
export async function recordOp(
  opts: Pick<WorkloadOptions, "client" | "recorder" | "now" | "endpoint">,
  client: number,
  store: string,
  key: string,
  kind: OpKind,
  value: string | null,
  signal: AbortSignal,
): Promise<OpResult> {
  const id = opts.recorder.nextId();
  const invoke = opts.now();
  const url = opts.endpoint(store);
  const res = kind === "write"
    ? await opts.client.write(url, key, value!, signal)
    : await opts.client.read(url, key, signal);
  const end = opts.now();
  opts.recorder.add({
    id,
    client,
    store: Number(store.slice(1)),
    key,
    kind,
    value: kind === "write" ? value : res.value,
    invoke,
    end,
    outcome: res.outcome,
    ...(res.error !== undefined ? { error: res.error } : {}),
  });
  return res;
}

/** Runs the clients until `signal` aborts. */
export async function runClients(opts: WorkloadOptions, signal: AbortSignal): Promise<void> {
  await Promise.all(Array.from({ length: opts.clients }, async (_, c) => {
    const rand = seededRandom(opts.seed * 1_000_003 + c + 1);
    const store = opts.stores[c % opts.stores.length]!;
    let seq = 0;
    while (!signal.aborted) {
      const key = opts.keys[Math.floor(rand() * opts.keys.length)]!;
      const write = rand() >= opts.readFraction;
      const res = await recordOp(
        opts,
        c,
        store,
        key,
        write ? "write" : "read",
        write ? `c${c}-${seq++}` : null,
        signal,
      );
      if (res.outcome !== "ok" && !signal.aborted) {
        await new Promise((r) => setTimeout(r, BACKOFF_MS));
      }
    }
  }));
}

/** What the final check found for one store. */
export interface FinalCheck {
  readonly store: string;
  /** Ms from the start of the check until this store served a write and every key's read. */
  readonly recoveredMs: number | null;
  readonly lastError?: string;
}

/**
 * With faults over, each store must serve one write and a read of every key within
 * `timeoutMs`. The reads end the history, so a write lost at the very end is caught too.
 * Final operations use client numbers from `firstClient` on (one per store).
 */
export async function finalChecks(
  opts: WorkloadOptions,
  firstClient: number,
  timeoutMs: number,
): Promise<FinalCheck[]> {
  const start = opts.now();
  return await Promise.all(opts.stores.map(async (store, i): Promise<FinalCheck> => {
    const client = firstClient + i;
    const deadline = AbortSignal.timeout(timeoutMs);
    let lastError: string | undefined;
    let seq = 0;
    const until = async (kind: OpKind, key: string): Promise<boolean> => {
      while (!deadline.aborted) {
        const value = kind === "write" ? `c${client}-${seq++}` : null;
        const res = await recordOp(opts, client, store, key, kind, value, deadline);
        if (res.outcome === "ok") return true;
        lastError = `${kind} ${key}: ${res.outcome} (${res.error ?? "?"})`;
        await new Promise((r) => setTimeout(r, 200));
      }
      return false;
    };
    let ok = await until("write", opts.keys[i % opts.keys.length]!);
    for (const key of opts.keys) ok = ok && await until("read", key);
    return ok
      ? { store, recoveredMs: Math.round(opts.now() - start) }
      : { store, recoveredMs: null, ...(lastError ? { lastError } : {}) };
  }));
}
