/**
 * Target adapters: how one put or get is spoken to each kind of server.
 *
 * - `mrkv`: the KV API of docs/api.md — `PUT /kv/{key}` (body = value) → 204,
 *   `GET /kv/{key}` → 200 raw body or 404; with `route: "leader"`, each request goes to its key's
 *   leader once a store's route hint named it (`routes.ts`).
 * - `etcd`: etcd's v3 JSON gateway — `POST /v3/kv/put {"key","value"}` and
 *   `POST /v3/kv/range {"key"}`, keys and values base64. Range is linearizable by default
 *   (no `serializable` flag), matching mrkv's linearizable reads.
 *
 * Every failure is thrown as an {@link OpError} whose `kind` is a short, stable label the
 * report groups by ("timeout", "network", "503 NotLeader", …). Response bodies are always
 * consumed so the connection goes back to the pool.
 *
 * @module
 */
import { decodeRouteHint, ROUTE_HEADER } from "../../proto/route_hint.ts";
import { RouteCache, type RouteStats } from "./routes.ts";
import { isLoopbackUrl, type LoadOptions } from "./args.ts";

/** The servers the load tool can drive. */
export type TargetKind = "mrkv" | "etcd";

/** The target kinds, for flag validation and help. */
export const TARGET_KINDS: readonly TargetKind[] = ["mrkv", "etcd"];

/** One failed operation. `kind` groups errors in the report; `message` is one example. */
export class OpError extends Error {
  constructor(readonly kind: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "OpError";
  }
}

/** Speaks put and get to one kind of server. Endpoints are base URLs without a trailing slash. */
export interface Target {
  readonly kind: TargetKind;
  /** Writes the run's value under `key`; resolves once the server acknowledged it. */
  put(endpoint: string, key: string, signal: AbortSignal): Promise<void>;
  /** Reads `key`; resolves true when it exists, false when the server says it is absent. */
  get(endpoint: string, key: string, signal: AbortSignal): Promise<boolean>;
  /** What routing did so far; undefined without routing. */
  routeStats?(): RouteStats | undefined;
}

/**
 * Where requests go: `endpoints`, the endpoint the runner picked (round-robin); `leader`, for
 * mrkv, the store leading the key's region when a route hint named it (`tools/load/routes.ts`).
 */
export type RouteMode = "endpoints" | "leader";

/** The route modes, for flag validation and help. */
export const ROUTE_MODES: readonly RouteMode[] = ["endpoints", "leader"];

/** Options for {@link makeTarget}. */
export interface TargetOptions {
  readonly kind: TargetKind;
  /** The value every put writes. */
  readonly value: Uint8Array<ArrayBuffer>;
  /** Default `endpoints`; `leader` is for mrkv only. */
  readonly route?: RouteMode;
  /** With `route: "leader"`: whether a hint may send requests to this URL (default: any). */
  readonly acceptRoute?: (url: string) => boolean;
  /** Injected for tests; defaults to the global fetch. */
  readonly fetch?: typeof fetch;
}

/** Builds the adapter for `options.kind`. */
export function makeTarget(options: TargetOptions): Target {
  const doFetch = options.fetch ?? fetch;
  if (options.route === "leader" && options.kind !== "mrkv") {
    throw new RangeError(`routing to leaders is for mrkv, not ${options.kind}`);
  }
  return options.kind === "mrkv"
    ? new MrkvTarget(
      options.value,
      doFetch,
      options.route === "leader" ? new RouteCache(options.acceptRoute) : undefined,
    )
    : new EtcdTarget(options.value, doFetch);
}

/**
 * The target a run's options ask for: its kind, value and routing, with hints followed only to
 * this machine unless `--allow-remote` (as for endpoints).
 */
export function targetFor(options: LoadOptions, doFetch?: typeof fetch): Target {
  return makeTarget({
    kind: options.target,
    value: makeValue(options.valueSize),
    route: options.route,
    acceptRoute: options.allowRemote ? undefined : isLoopbackUrl,
    fetch: doFetch,
  });
}

/** The key for slot `index` of the key space: fixed width so keys sort like their indexes. */
export function keyFor(index: number): string {
  return `key${index.toString().padStart(10, "0")}`;
}

/** The value a run writes: `size` printable bytes, so it is also readable in a debugger. */
export function makeValue(size: number): Uint8Array<ArrayBuffer> {
  const value = new Uint8Array(size);
  for (let i = 0; i < size; i++) value[i] = 97 + (i % 26); // a..z
  return value;
}

class MrkvTarget implements Target {
  readonly kind = "mrkv";
  constructor(
    private readonly value: Uint8Array<ArrayBuffer>,
    private readonly doFetch: typeof fetch,
    /** Set: route each request to its key's leader when known (`--route leader`). */
    readonly routes?: RouteCache,
  ) {}

  routeStats(): RouteStats | undefined {
    return this.routes?.stats();
  }

  async put(endpoint: string, key: string, signal: AbortSignal): Promise<void> {
    const res = await this.#send(endpoint, key, "PUT", signal);
    // docs/api.md says 204; a 200 is tolerated so that a benchmark measures, not lints.
    if (res.status !== 204 && res.status !== 200) throw await mrkvError(res);
    await drain(res, signal);
  }

  async get(endpoint: string, key: string, signal: AbortSignal): Promise<boolean> {
    const res = await this.#send(endpoint, key, "GET", signal);
    if (res.status === 200) {
      await drain(res, signal);
      return true;
    }
    // A 404 is a miss only when it is KeyNotFound; RegionNotFound etc. are errors.
    const error = await mrkvError(res);
    if (res.status === 404 && (error.kind === "404" || error.kind === "404 KeyNotFound")) {
      return false;
    }
    throw error;
  }

  /**
   * Sends one request: to the key's leader when a route names it, else to `endpoint` (asking
   * for a route when routing); learns from the answer's hint; forgets a route whose store did
   * not answer, or answered that it cannot serve.
   */
  async #send(
    endpoint: string,
    key: string,
    method: "PUT" | "GET",
    signal: AbortSignal,
  ): Promise<Response> {
    const path = `/kv/${encodeURIComponent(key)}`;
    const headers: Record<string, string> = method === "PUT"
      ? { "content-type": "application/octet-stream" }
      : {};
    const init = { method, headers, ...(method === "PUT" && { body: this.value }), signal };
    const routes = this.routes;
    if (!routes) return await send(this.doFetch, endpoint + path, init);
    const routed = routes.lookup(encoder.encode(key));
    if (routed) {
      routes.routed++;
    } else {
      routes.unrouted++;
      headers[ROUTE_HEADER] = "1";
    }
    let res: Response;
    try {
      res = await send(this.doFetch, (routed ?? endpoint) + path, init);
    } catch (e) {
      // A store that does not answer (down, or cut off and stuck) is no route.
      const kind = (e as OpError).kind;
      if (routed && (kind === "network" || kind === "timeout")) routes.forget(routed);
      throw e;
    }
    // Nor is one that answers it cannot serve (503: no leader it can reach, busy, stopping) or
    // no longer has the region (a write's 404, a 409).
    if (
      routed &&
      (res.status >= 500 || res.status === 409 || (res.status === 404 && method !== "GET"))
    ) {
      routes.forget(routed);
    }
    const hint = res.headers.get(ROUTE_HEADER);
    if (hint) {
      const decoded = decodeRouteHint(hint);
      if (decoded) routes.learn(decoded);
      else routes.ignored++;
    }
    return res;
  }
}

const encoder = new TextEncoder();

class EtcdTarget implements Target {
  readonly kind = "etcd";
  readonly #valueB64: string;
  constructor(value: Uint8Array, private readonly doFetch: typeof fetch) {
    this.#valueB64 = base64(value);
  }

  async put(endpoint: string, key: string, signal: AbortSignal): Promise<void> {
    const body = `{"key":"${base64(key)}","value":"${this.#valueB64}"}`;
    await this.#call(`${endpoint}/v3/kv/put`, body, signal);
  }

  async get(endpoint: string, key: string, signal: AbortSignal): Promise<boolean> {
    const reply = await this.#call(`${endpoint}/v3/kv/range`, `{"key":"${base64(key)}"}`, signal);
    const kvs = (reply as { kvs?: unknown }).kvs;
    if (kvs === undefined) return false; // the gateway omits empty fields
    if (!Array.isArray(kvs)) throw new OpError("bad response", "etcd range: kvs is not a list");
    return kvs.length > 0;
  }

  async #call(url: string, body: string, signal: AbortSignal): Promise<object> {
    const res = await send(this.doFetch, url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal,
    });
    const text = await readText(res, signal);
    let reply: unknown;
    try {
      reply = JSON.parse(text);
    } catch {
      reply = undefined;
    }
    if (res.status === 200 && typeof reply === "object" && reply !== null && !("error" in reply)) {
      return reply;
    }
    if (res.status === 200 && reply === undefined) {
      throw new OpError("bad response", `${url}: not JSON: ${text.slice(0, 200)}`);
    }
    // grpc-gateway errors look like {"error": "...", "code": 14, "message": "..."}.
    const r = (typeof reply === "object" && reply !== null ? reply : {}) as {
      code?: unknown;
      message?: unknown;
      error?: unknown;
    };
    const grpc = typeof r.code === "number" ? ` grpc ${r.code}` : "";
    const message = typeof r.message === "string"
      ? r.message
      : typeof r.error === "string"
      ? r.error
      : text.slice(0, 200);
    throw new OpError(`${res.status}${grpc}`, `${url}: ${message}`);
  }
}

/** fetch, with exceptions turned into OpErrors ("timeout" or "network"). */
async function send(doFetch: typeof fetch, url: string, init: RequestInit): Promise<Response> {
  try {
    return await doFetch(url, init);
  } catch (e) {
    throw transportError(url, e);
  }
}

async function drain(res: Response, signal: AbortSignal): Promise<void> {
  try {
    await res.arrayBuffer();
  } catch (e) {
    throw transportError(res.url, e, signal);
  }
}

async function readText(res: Response, signal: AbortSignal): Promise<string> {
  try {
    return await res.text();
  } catch (e) {
    throw transportError(res.url, e, signal);
  }
}

function transportError(url: string, e: unknown, signal?: AbortSignal): OpError {
  const err = e as Error;
  if (err?.name === "TimeoutError" || signal?.reason?.name === "TimeoutError") {
    return new OpError("timeout", `${url}: no answer in time`, { cause: e });
  }
  if (err?.name === "AbortError") return new OpError("aborted", `${url}: aborted`, { cause: e });
  // Deno's fetch says only "fetch failed"; the reason (refused, reset, …) is in its cause.
  const cause = (err?.cause as Error | undefined)?.message;
  const message = `${err?.message ?? String(e)}${cause ? ` (${cause})` : ""}`;
  return new OpError("network", `${url}: ${message}`, { cause: e });
}

/** Reads an mrkv error reply (`{"error":{"code","message"}}`) into an OpError. */
async function mrkvError(res: Response): Promise<OpError> {
  let text = "";
  try {
    text = await res.text();
  } catch { /* body already consumed or broken: the status alone will do */ }
  let code: unknown;
  let message: unknown;
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    code = body.error?.code;
    message = body.error?.message;
  } catch { /* not JSON */ }
  const kind = typeof code === "string" ? `${res.status} ${code}` : `${res.status}`;
  return new OpError(
    kind,
    `${res.url}: ${typeof message === "string" ? message : text.slice(0, 200)}`,
  );
}

function base64(data: string | Uint8Array): string {
  if (typeof data === "string") return btoa(data); // keys are ASCII by construction
  let binary = "";
  for (let i = 0; i < data.length; i += 0x8000) {
    binary += String.fromCharCode(...data.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
