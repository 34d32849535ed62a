/**
 * HTTP requests between two servers multiplexed on one upgraded connection (see
 * `http_upgrade.ts`): many requests in flight at once, each a frame, each answered by a frame
 * with its ID. A store forwarding KV requests to a leader's store uses it instead of one `fetch`
 * per request, which costs each side several hundred microseconds of CPU.
 *
 * Frames (`frames.ts`) hold CBOR:
 * - request: `{ i: id, m: method, p: path with query, h: [[name, value], ...], b?: body }`;
 * - answer:  `{ i: id, s: status, h: [[name, value], ...], b?: body }`.
 *
 * The receiver runs each request through its fetch handler (guard included: each request
 * carries its own credential headers) and answers in any order. Unlike `fetch`, nothing is ever
 * sent twice: a request whose connection breaks before its answer fails with
 * {@link StreamBrokenError}, and its outcome is unknown to the caller.
 *
 * @module
 */
import type { Socket } from "node:net";
import {
  decodeCbor,
  encodeCbor,
  expectArray,
  expectBytes,
  expectObject,
  expectSafeInt,
  expectString,
  field,
} from "./codec.ts";
import { errorAnswer, MrkvError } from "./errors.ts";
import { frame, FrameReader } from "./frames.ts";
import { concatBytes } from "./http_body.ts";
import { type DialOptions, dialUpgrade, upgradeUnsupported, writeAll } from "./http_upgrade.ts";

/** Largest frame either side accepts: a 1 MiB value or scan page and its encoding. */
export const MAX_REQUEST_FRAME_BYTES = 8 * 1024 * 1024;
const MAX_HEADERS = 64;
/** Default bound on the request bytes one stream's requests hold while being served. */
const DEFAULT_MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024;

/** A request's connection broke before its answer came: it may or may not have been served. */
export class StreamBrokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StreamBrokenError";
  }
}

/** The request never left: no connection could be opened (or the stream was refused). */
export class StreamUnavailableError extends Error {
  constructor(message: string, readonly unsupported = false) {
    super(message);
    this.name = "StreamUnavailableError";
  }
}

/** What {@link serveRequestStream} needs. */
export interface ServeRequestsOptions {
  /** Serves one request (the server's fetch handler). */
  readonly handle: (req: Request) => Promise<Response>;
  /** Which requests the stream may carry; others are answered 400. */
  readonly allow: (method: string, path: string) => boolean;
  /** Requests served at once; more are answered 503 at once. */
  readonly maxInFlight: number;
  /** Request body bytes held by the requests being served; more are answered 503 at once. */
  readonly maxInFlightBytes?: number;
  /** A stream with nothing in flight and no frame for this long is closed. */
  readonly idleMs: number;
  /** Why a stream was closed for a bad frame. */
  readonly onRefused: (message: string) => void;
}

/** Serves one accepted request stream until it closes. */
export function serveRequestStream(
  socket: Socket,
  head: Uint8Array,
  opts: ServeRequestsOptions,
): void {
  const reader = new FrameReader(MAX_REQUEST_FRAME_BYTES);
  const maxBytes = opts.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES;
  let inFlight = 0;
  let inFlightBytes = 0;
  socket.setNoDelay(true);
  socket.setTimeout(opts.idleMs, () => {
    if (inFlight === 0) socket.destroy();
  });
  socket.on("error", () => socket.destroy());
  const answer = (
    id: number,
    res: { status: number; headers: [string, string][]; body?: Uint8Array },
  ) => {
    if (socket.destroyed) return;
    const msg: Record<string, unknown> = { i: id, s: res.status, h: res.headers };
    if (res.body && res.body.length > 0) msg.b = res.body;
    socket.write(frame(encodeCbor(msg)));
  };
  const serve = async (id: number, req: Request, bytes: number) => {
    inFlight++;
    inFlightBytes += bytes;
    try {
      const res = await opts.handle(req);
      const body = res.body ? new Uint8Array(await res.arrayBuffer()) : undefined;
      const headers: [string, string][] = [];
      res.headers.forEach((v, k) => headers.push([k, v]));
      answer(id, { status: res.status, headers, body });
    } catch (e) {
      answer(id, errorParts(new Error(`serving a streamed request: ${(e as Error).message}`)));
    } finally {
      inFlight--;
      inFlightBytes -= bytes;
    }
  };
  const onData = (chunk: Uint8Array) => {
    if (socket.destroyed) return;
    try {
      for (const f of reader.push(chunk)) {
        const { id, method, path, headers, body } = decodeRequest(f);
        if (!opts.allow(method, path)) {
          answer(
            id,
            errorParts(new MrkvError("BadRequest", `${method} ${path} cannot be streamed`)),
          );
        } else if (inFlight >= opts.maxInFlight || inFlightBytes + f.length > maxBytes) {
          const held = `${inFlight} streamed requests (${inFlightBytes} bytes) in flight`;
          answer(id, errorParts(new MrkvError("ServerIsBusy", held)));
        } else {
          void serve(
            id,
            new Request(`http://stream${path}`, { method, headers, body: body ?? null }),
            f.length,
          );
        }
      }
    } catch (e) {
      opts.onRefused((e as Error).message);
      socket.destroy();
    }
  };
  socket.on("data", onData);
  if (head.length > 0) onData(head);
}

/** The answer frame's parts for an error (the same as an ordinary request's, see errors.ts). */
function errorParts(err: unknown) {
  const { status, headers, body } = errorAnswer(err);
  return { status, headers, body: new TextEncoder().encode(body) };
}

function decodeRequest(bytes: Uint8Array) {
  const o = expectObject(decodeCbor(bytes, "streamed request"), "streamed request");
  const id = expectSafeInt(field(o, "i"), "i", 0);
  const method = expectString(field(o, "m"), "m", 16);
  if (!["GET", "PUT", "DELETE", "POST"].includes(method)) {
    throw new Error(`method ${JSON.stringify(method)} cannot be streamed`);
  }
  const path = expectString(field(o, "p"), "p", 16 * 1024);
  if (!path.startsWith("/")) throw new Error("a streamed request's path must start with /");
  const headers = expectArray(field(o, "h"), "h", pair, MAX_HEADERS);
  const b = field(o, "b");
  const body = b === undefined ? undefined : expectBytes(b, "b", MAX_REQUEST_FRAME_BYTES);
  if (body && (method === "GET")) throw new Error("a GET has no body");
  return { id, method, path, headers, body: body as Uint8Array<ArrayBuffer> | undefined };
}

function pair(v: unknown, name: string): [string, string] {
  const a = expectArray(v, name, (x, n) => expectString(x, n, 8 * 1024), 2);
  if (a.length !== 2) throw new Error(`${name} must be a [name, value] pair`);
  return [a[0]!, a[1]!];
}

/** A request waiting for its answer. */
interface Pending {
  readonly resolve: (res: Response) => void;
  readonly reject: (e: Error) => void;
  readonly sentAt: number;
}

/** One open stream to one server. */
class Connection {
  readonly pending = new Map<number, Pending>();
  #nextId = 0;
  #queue: Uint8Array[] = [];
  #writing = false;
  #closed: Error | undefined;
  /** When a byte last arrived (a stream that went silent with requests waiting is dead). */
  lastHeard = performance.now();
  lastUsed = performance.now();

  constructor(readonly conn: Deno.Conn, head: Uint8Array, readonly onClose: () => void) {
    void this.#read(head);
  }

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  send(req: { method: string; path: string; headers: [string, string][]; body?: Uint8Array }) {
    const id = this.#nextId++;
    const msg: Record<string, unknown> = { i: id, m: req.method, p: req.path, h: req.headers };
    if (req.body && req.body.length > 0) msg.b = req.body;
    const bytes = frame(encodeCbor(msg));
    this.lastUsed = performance.now();
    const answer = new Promise<Response>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, sentAt: this.lastUsed });
    });
    this.#queue.push(bytes);
    if (!this.#writing) void this.#flush();
    return { id, answer };
  }

  /** Stops waiting for request `id` (its caller gave up). */
  forget(id: number): void {
    this.pending.delete(id);
  }

  close(why: Error): void {
    if (this.#closed) return;
    this.#closed = why;
    try {
      this.conn.close();
    } catch { /* already closed */ }
    for (const p of this.pending.values()) p.reject(why);
    this.pending.clear();
    this.onClose();
  }

  async #flush(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const frames = this.#queue;
        this.#queue = [];
        const size = frames.reduce((n, f) => n + f.length, 0);
        await writeAll(this.conn, frames.length === 1 ? frames[0]! : concatBytes(frames, size));
      }
    } catch (e) {
      this.close(new StreamBrokenError(`stream write failed: ${(e as Error).message}`));
    } finally {
      this.#writing = false;
    }
  }

  async #read(head: Uint8Array): Promise<void> {
    const reader = new FrameReader(MAX_REQUEST_FRAME_BYTES);
    const buf = new Uint8Array(64 * 1024);
    let chunk: Uint8Array = head;
    try {
      for (;;) {
        if (chunk.length > 0) this.lastHeard = performance.now();
        for (const f of reader.push(chunk)) this.#answered(f);
        if (this.#closed) return;
        const n = await this.conn.read(buf);
        if (n === null) {
          return this.close(new StreamBrokenError("the server closed the stream"));
        }
        chunk = buf.subarray(0, n);
      }
    } catch (e) {
      this.close(new StreamBrokenError(`stream broke: ${(e as Error).message}`));
    }
  }

  #answered(bytes: Uint8Array): void {
    const o = expectObject(decodeCbor(bytes, "streamed answer"), "streamed answer");
    const id = expectSafeInt(field(o, "i"), "i", 0);
    const status = expectSafeInt(field(o, "s"), "s", 200, 599);
    const headers = expectArray(field(o, "h"), "h", pair, MAX_HEADERS);
    const b = field(o, "b");
    const body = b === undefined ? null : expectBytes(b, "b", MAX_REQUEST_FRAME_BYTES);
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    const noBody = status === 204 || status === 304;
    p.resolve(
      new Response(noBody ? null : body as Uint8Array<ArrayBuffer> | null, { status, headers }),
    );
  }
}

/** What {@link RequestStreams} needs. */
export interface RequestStreamsOptions {
  readonly path: string;
  readonly protocol: string;
  /** Headers of the upgrade request (credentials). */
  readonly headers: () => Record<string, string>;
  readonly tls?: DialOptions["tls"];
  /** Longest a connect and upgrade may take. */
  readonly connectTimeoutMs: number;
}

/** How long a server that refused streams (an older version) is not asked again. */
const UNSUPPORTED_FOR_MS = 60_000;
/** A stream unused this long is replaced by a new one (or closed when another is opened). */
const IDLE_MS = 30_000;

/** The sending side: one stream per server address, opened when first needed. */
export class RequestStreams {
  readonly #conns = new Map<string, Connection>();
  readonly #opening = new Map<string, Promise<Connection>>();
  readonly #unsupported = new Map<string, number>();
  #closed = false;
  opened = 0;

  constructor(readonly options: RequestStreamsOptions) {}

  /** Whether `address` is known to refuse streams (send it ordinary requests). */
  unsupported(address: string): boolean {
    const until = this.#unsupported.get(address);
    if (until === undefined) return false;
    if (performance.now() < until) return true;
    this.#unsupported.delete(address);
    return false;
  }

  /**
   * Sends `req` to `address` and resolves with its answer. Rejects with
   * {@link StreamUnavailableError} if it was never sent, {@link StreamBrokenError} if the
   * connection broke or `timeoutMs` passed before the answer, or `req.signal`'s reason.
   */
  async request(
    address: string,
    req: Request,
    timeoutMs: number,
    extraHeaders: Readonly<Record<string, string>> = {},
  ): Promise<Response> {
    const conn = await this.#connection(address);
    const url = new URL(req.url);
    const headers: [string, string][] = [];
    req.headers.forEach((v, k) => {
      if (!Object.hasOwn(extraHeaders, k)) headers.push([k, v]);
    });
    for (const [k, v] of Object.entries(extraHeaders)) headers.push([k, v]);
    const body = req.method === "GET" || req.method === "HEAD"
      ? undefined
      : new Uint8Array(await req.arrayBuffer());
    const { id, answer } = conn.send({
      method: req.method,
      path: url.pathname + url.search,
      headers,
      body,
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const giveUp = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Nothing heard on the whole stream since this request left: the server is gone.
        const sentAt = conn.pending.get(id)?.sentAt ?? 0;
        if (conn.lastHeard < sentAt) {
          conn.close(new StreamBrokenError(`no answer from ${address} in ${timeoutMs} ms`));
        }
        reject(new StreamBrokenError(`no answer from ${address} in ${timeoutMs} ms`));
      }, timeoutMs);
      onAbort = () => reject(req.signal.reason ?? new Error("aborted"));
      req.signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return await Promise.race([answer, giveUp]);
    } finally {
      clearTimeout(timer);
      req.signal.removeEventListener("abort", onAbort!);
      conn.forget(id);
    }
  }

  close(): void {
    this.#closed = true;
    for (const c of this.#conns.values()) c.close(new StreamBrokenError("closing"));
    this.#conns.clear();
  }

  async #connection(address: string): Promise<Connection> {
    if (this.#closed) throw new StreamUnavailableError("closed");
    const open = this.#conns.get(address);
    if (open && !open.closed) {
      // The server closes a stream idle for twice this: never send on one it may be closing.
      if (open.pending.size > 0 || performance.now() - open.lastUsed < IDLE_MS) return open;
      open.close(new StreamBrokenError("idle"));
    }
    let opening = this.#opening.get(address);
    if (!opening) {
      opening = this.#open(address).finally(() => this.#opening.delete(address));
      this.#opening.set(address, opening);
    }
    return await opening;
  }

  async #open(address: string): Promise<Connection> {
    this.#closeIdle();
    let dialed;
    try {
      dialed = await dialUpgrade({
        address,
        path: this.options.path,
        protocol: this.options.protocol,
        headers: this.options.headers(),
        tls: this.options.tls,
        timeoutMs: this.options.connectTimeoutMs,
      });
    } catch (e) {
      const unsupported = upgradeUnsupported(e);
      if (unsupported) this.#unsupported.set(address, performance.now() + UNSUPPORTED_FOR_MS);
      throw new StreamUnavailableError(
        `cannot open a stream to ${address}: ${(e as Error).message}`,
        unsupported,
      );
    }
    if (this.#closed) {
      dialed.conn.close();
      throw new StreamUnavailableError("closed");
    }
    const conn: Connection = new Connection(dialed.conn, dialed.head, () => {
      if (this.#conns.get(address) === conn) this.#conns.delete(address);
    });
    this.#conns.set(address, conn);
    this.opened++;
    return conn;
  }

  #closeIdle(): void {
    const now = performance.now();
    for (const c of this.#conns.values()) {
      if (c.pending.size === 0 && now - c.lastUsed > IDLE_MS) {
        c.close(new StreamBrokenError("idle"));
      }
    }
  }
}
