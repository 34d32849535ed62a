/**
 * How one register operation (read or write a key) is spoken to a target and what its answer
 * means, as an {@link OpResult}. mrkv's answers go through the outcome table (`outcome.ts`);
 * etcd's v3 JSON gateway is the known-good comparison.
 *
 * @module
 */
import type { Outcome } from "./history.ts";
import { errorCode, type Http, NoAnswer } from "./http.ts";
import { classifyAnswer, NO_ANSWER } from "./outcome.ts";

/** What one operation came to. */
export interface OpResult {
  readonly outcome: Outcome;
  /** A read's value when ok (null: absent); null otherwise. */
  readonly value: string | null;
  /** For fail/unknown: the code or what went wrong. */
  readonly error?: string;
}

/** Reads and writes one key on one server. */
export interface RegisterClient {
  write(endpoint: string, key: string, value: string, signal: AbortSignal): Promise<OpResult>;
  read(endpoint: string, key: string, signal: AbortSignal): Promise<OpResult>;
}

/** The client-side deadline of one operation. */
export const OP_TIMEOUT_MS = 2_000;

function noAnswer(e: unknown): OpResult {
  if (e instanceof NoAnswer) return { outcome: NO_ANSWER, value: null, error: e.reason };
  throw e;
}

/** mrkv's KV API: `PUT /kv/{key}` (204) and `GET /kv/{key}` (200 raw value, 404 KeyNotFound). */
export class MrkvRegister implements RegisterClient {
  constructor(readonly http: Http, readonly timeoutMs = OP_TIMEOUT_MS) {}

  async write(endpoint: string, key: string, value: string, signal: AbortSignal) {
    try {
      const res = await this.http.send("PUT", `${endpoint}/kv/${encodeURIComponent(key)}`, {
        body: new TextEncoder().encode(value),
        timeoutMs: this.timeoutMs,
        signal,
      });
      return this.#result("write", res.status, res.body);
    } catch (e) {
      return noAnswer(e);
    }
  }

  async read(endpoint: string, key: string, signal: AbortSignal) {
    try {
      const res = await this.http.send("GET", `${endpoint}/kv/${encodeURIComponent(key)}`, {
        timeoutMs: this.timeoutMs,
        signal,
      });
      return this.#result("read", res.status, res.body);
    } catch (e) {
      return noAnswer(e);
    }
  }

  #result(kind: "read" | "write", status: number, body: Uint8Array): OpResult {
    const code = status === 200 || status === 204 ? undefined : errorCode(body);
    const outcome = classifyAnswer(kind, status, code);
    const value = kind === "read" && outcome === "ok" && status === 200
      ? new TextDecoder().decode(body)
      : null;
    return outcome === "ok"
      ? { outcome, value }
      : { outcome, value: null, error: code ? `${status} ${code}` : `HTTP ${status}` };
  }
}

/**
 * etcd's v3 JSON gateway (keys and values base64; range is linearizable by default). Every error
 * is `unknown`: the gateway's errors do not promise that a write was not applied.
 */
export class EtcdRegister implements RegisterClient {
  constructor(readonly http: Http, readonly timeoutMs = OP_TIMEOUT_MS) {}

  async write(endpoint: string, key: string, value: string, signal: AbortSignal) {
    const body = { key: btoa(key), value: btoa(value) };
    try {
      const res = await this.http.send("POST", `${endpoint}/v3/kv/put`, {
        json: body,
        timeoutMs: this.timeoutMs,
        signal,
      });
      const reply = parse(res.body);
      return res.status === 200 && reply && !("error" in reply)
        ? { outcome: "ok" as const, value: null }
        : { outcome: "unknown" as const, value: null, error: etcdError(res.status, reply) };
    } catch (e) {
      return noAnswer(e);
    }
  }

  async read(endpoint: string, key: string, signal: AbortSignal) {
    try {
      const res = await this.http.send("POST", `${endpoint}/v3/kv/range`, {
        json: { key: btoa(key) },
        timeoutMs: this.timeoutMs,
        signal,
      });
      const reply = parse(res.body);
      if (res.status !== 200 || !reply || "error" in reply) {
        return { outcome: "unknown" as const, value: null, error: etcdError(res.status, reply) };
      }
      const kvs = (reply as { kvs?: { value?: string }[] }).kvs;
      const raw = Array.isArray(kvs) && kvs.length > 0 ? kvs[0]?.value : undefined;
      // The gateway leaves out empty fields: no kvs is an absent key, no value an empty one.
      const value = raw === undefined ? (kvs?.length ? "" : null) : atob(raw);
      return { outcome: "ok" as const, value };
    } catch (e) {
      return noAnswer(e);
    }
  }
}

function parse(body: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(new TextDecoder().decode(body));
    return typeof v === "object" && v !== null ? v : undefined;
  } catch {
    return undefined;
  }
}

function etcdError(status: number, reply: Record<string, unknown> | undefined): string {
  const msg = typeof reply?.message === "string"
    ? reply.message
    : typeof reply?.error === "string"
    ? reply.error
    : "";
  return `HTTP ${status}${msg ? ` ${msg.slice(0, 80)}` : ""}`;
}
