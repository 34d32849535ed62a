/**
 * Every HTTP request the chaos tool sends (KV operations, the scheduler's admin API, store
 * status) is built and sent here, so cross-cutting changes such as a credential header are made
 * in one place: pass `headers` to {@link Http}.
 *
 * A request either yields a fully read answer or throws {@link NoAnswer}; the body is always
 * consumed so the connection returns to the pool.
 *
 * @module
 */

/** No answer was received: a network error, a timeout or the run stopping. */
export class NoAnswer extends Error {
  constructor(
    readonly reason: "network" | "timeout" | "aborted",
    message: string,
    cause?: unknown,
  ) {
    super(message, { cause });
    this.name = "NoAnswer";
  }
}

/** A fully read HTTP answer. */
export interface Answer {
  readonly status: number;
  readonly body: Uint8Array;
}

/** What to send. */
export interface SendOptions {
  readonly body?: string | Uint8Array<ArrayBuffer>;
  /** A JSON body (sets the content type); ignored when `body` is given. */
  readonly json?: unknown;
  /** Give up after this long (the whole exchange, body included). */
  readonly timeoutMs: number;
  /** Stops the request early (e.g. the run ends). */
  readonly signal?: AbortSignal;
}

/** Sends requests with the headers every request must carry. */
export class Http {
  constructor(readonly headers: Readonly<Record<string, string>> = {}) {}

  /** Sends `method url`; resolves with the whole answer or throws {@link NoAnswer}. */
  async send(method: string, url: string, opts: SendOptions): Promise<Answer> {
    const timeout = AbortSignal.timeout(opts.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
    const headers = new Headers(this.headers);
    let body: string | Uint8Array<ArrayBuffer> | undefined = opts.body;
    if (body === undefined && opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers.set("content-type", "application/json");
    } else if (body !== undefined) {
      headers.set("content-type", "application/octet-stream");
    }
    try {
      const res = await fetch(url, { method, headers, body, signal });
      return { status: res.status, body: new Uint8Array(await res.arrayBuffer()) };
    } catch (e) {
      if (timeout.aborted) throw new NoAnswer("timeout", `${method} ${url}: no answer in time`, e);
      if (opts.signal?.aborted) throw new NoAnswer("aborted", `${method} ${url}: stopped`, e);
      // Deno's fetch says "error sending request"; the reason (refused, reset...) is its cause.
      const err = e as Error;
      const cause = (err?.cause as Error | undefined)?.message;
      throw new NoAnswer(
        "network",
        `${method} ${url}: ${err?.message ?? String(e)}${cause ? ` (${cause})` : ""}`,
        e,
      );
    }
  }

  /** Sends and parses a JSON answer; throws unless the status is 2xx. */
  async json<T>(method: string, url: string, opts: SendOptions): Promise<T> {
    const res = await this.send(method, url, opts);
    const text = new TextDecoder().decode(res.body);
    if (res.status < 200 || res.status > 299) {
      throw new Error(`${method} ${url}: HTTP ${res.status}: ${text.slice(0, 300)}`);
    }
    return JSON.parse(text) as T;
  }
}

/** The `code` of an mrkv error answer (`{"error":{"code":...}}`), if the body has that shape. */
export function errorCode(body: Uint8Array): string | undefined {
  try {
    const parsed = JSON.parse(new TextDecoder().decode(body)) as { error?: { code?: unknown } };
    const code = parsed?.error?.code;
    return typeof code === "string" ? code : undefined;
  } catch {
    return undefined;
  }
}
