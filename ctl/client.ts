/**
 * The ctl's HTTP client. Every request, to the scheduler's admin API or to a store's KV API,
 * goes through {@link CtlClient.request}: the one place a credential is attached when the
 * cluster requires one. Failures become {@link CtlError}s that carry the server's error code
 * and a hint saying what to do.
 *
 * @module
 */
import { describeFetchError } from "../proto/fetch_error.ts";

/** How requests are sent (tests route store addresses to in-process apps). */
export type Fetch = (url: string, init: RequestInit) => Promise<Response>;

/** A failure with the wire error code (or `Unreachable`/`BadResponse`) and a hint. */
export class CtlError extends Error {
  constructor(readonly code: string, message: string, readonly hint = "") {
    super(message);
    this.name = "CtlError";
  }
}

/** Codes that mean "the thing asked for does not exist". */
export const NOT_FOUND_CODES: ReadonlySet<string> = new Set([
  "KeyNotFound",
  "RegionNotFound",
  "StoreNotFound",
  "NotFound",
]);

/** Options for {@link CtlClient}. */
export interface CtlClientOptions {
  /** The scheduler's base URL, e.g. `http://127.0.0.1:2379`. */
  readonly scheduler: string;
  /** A store's base URL for KV commands; default: the first Up store the scheduler lists. */
  readonly store?: string;
  readonly fetch?: Fetch;
  readonly timeoutMs?: number;
  /** Headers every request carries (the credential). */
  readonly headers?: Record<string, string>;
  /** The TLS client, in TLS mode. */
  readonly httpClient?: Deno.HttpClient;
}

/** Talks to the scheduler and the stores. */
export class CtlClient {
  readonly scheduler: string;
  readonly #fetch: Fetch;
  readonly #timeoutMs: number;
  readonly #headers: Record<string, string>;
  readonly #httpClient: Deno.HttpClient | undefined;
  #store: string | undefined;

  constructor(opts: CtlClientOptions) {
    this.scheduler = opts.scheduler.replace(/\/+$/, "");
    this.#store = opts.store?.replace(/\/+$/, "");
    this.#fetch = opts.fetch ?? ((url, init) => fetch(url, init));
    this.#timeoutMs = opts.timeoutMs ?? 15_000;
    this.#headers = opts.headers ?? {};
    this.#httpClient = opts.httpClient;
  }

  /** Sends one request; every request of the ctl goes through here. */
  async request(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    for (const [k, v] of Object.entries(this.#headers)) headers.set(k, v);
    try {
      return await this.#fetch(url, {
        ...init,
        headers,
        signal: init.signal ?? AbortSignal.timeout(this.#timeoutMs),
        ...(this.#httpClient && { client: this.#httpClient }),
      } as RequestInit);
    } catch (e) {
      const server = url.startsWith(this.scheduler) ? "the scheduler" : "the store";
      throw new CtlError(
        "Unreachable",
        describeFetchError(e, url, this.#timeoutMs),
        server === "the scheduler"
          ? "is the scheduler running? Give its URL with --scheduler URL or MRKV_SCHEDULER"
          : "is the store running? Give another with --store URL",
      );
    }
  }

  /** Calls the admin API (`path` after `/pd/api/v1`); returns the parsed JSON. */
  async admin<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const url = `${this.scheduler}/pd/api/v1${path}`;
    const res = await this.request(url, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return await jsonOrError<T>(res, url);
  }

  /** A store's base URL: the one given, else the first Up store the scheduler knows. */
  async storeUrl(): Promise<string> {
    if (this.#store) return this.#store;
    const { stores } = await this.admin<{ stores: StoreEntry[] }>("GET", "/stores");
    const up = stores.find((s) => s.store.state_name === "Up");
    if (!up) {
      throw new CtlError(
        "NoStore",
        "no store is Up",
        "start a store, or give one with --store URL",
      );
    }
    this.#store = `${new URL(this.scheduler).protocol}//${up.store.address}`;
    return this.#store;
  }

  /** Calls a store's KV API; returns the raw response if it succeeded. */
  async kv(method: string, pathAndQuery: string, body?: Uint8Array): Promise<Response> {
    const url = `${await this.storeUrl()}${pathAndQuery}`;
    const res = await this.request(url, {
      method,
      body: body as Uint8Array<ArrayBuffer> | undefined,
    });
    if (!res.ok) await jsonOrError(res, url);
    return res;
  }
}

/** The parts of a store entry the client reads. */
interface StoreEntry {
  readonly store: { readonly id: number; readonly address: string; readonly state_name: string };
}

/** Hints for error codes, saying what a person can do about them. */
const HINTS: Record<string, string> = {
  NotLeader: "the region's leader is changing; retry in a second",
  NoLeader: "the region has no leader right now (a quorum of its stores may be down); retry",
  Timeout:
    "the outcome is unknown: the request may or may not have been applied; check before retrying",
  ServerIsBusy: "the server is busy or starting; retry in a second",
  StoreNotFound: "list the stores with: mrkv ctl store list",
  RegionNotFound: "list the regions with: mrkv ctl region list",
  MethodNotAllowed: "this ctl and the server may be different versions",
  Unauthenticated:
    "the cluster needs a credential: --cluster-secret-file FILE (the playground's is ./data/cluster.secret) or --token-file FILE",
  PermissionDenied: "this credential may not do that: the admin API needs the admin credential",
};

/** Parses a JSON success, or throws the server's error as a {@link CtlError}. */
async function jsonOrError<T>(res: Response, url: string): Promise<T> {
  const text = await res.text();
  let body: unknown;
  try {
    body = text === "" ? null : JSON.parse(text);
  } catch {
    throw new CtlError(
      "BadResponse",
      `${url} answered ${res.status} with non-JSON: ${text.slice(0, 200)}`,
    );
  }
  if (res.ok) return body as T;
  const err = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const code = typeof err?.code === "string" ? err.code : `HTTP${res.status}`;
  const message = typeof err?.message === "string" ? err.message : text.slice(0, 200);
  throw new CtlError(code, message, HINTS[code] ?? "");
}
