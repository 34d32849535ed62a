/**
 * The HTTP listener both servers use: `node:http`, or `node:https` requiring a client
 * certificate signed by the cluster CA. Not `Deno.serve`, which has neither header, request nor
 * idle timeouts (a peer could hold thousands of idle or slow connections open forever) and
 * cannot require client certificates.
 *
 * Requests become web `Request`s with a streamed body and go to a fetch handler (a Hono app);
 * the verified client certificate travels in the handler's `env` ({@link ServerEnv}). A server
 * may also take its hottest requests itself ({@link DirectRoute}): those skip the web `Request`,
 * the `Response` and the router, which cost about as much CPU as the rest of the listener.
 *
 * @module
 */
import http from "node:http";
import https from "node:https";
import { Buffer } from "node:buffer";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { ServerEnv } from "./http_guard.ts";
import { concatBytes } from "./http_body.ts";
import { answerUpgrade } from "./http_upgrade.ts";
import { headerPairs, malformedRequest, requestHead } from "./http_incoming.ts";
import type { PeerInfo, TlsFiles } from "./security.ts";

/** Connection limits; every one closes a connection that holds resources without progress. */
export interface ServerTimeouts {
  /** Longest a client may take to send a request's headers. */
  readonly headersMs: number;
  /** Longest a client may take to send a whole request (headers and body). */
  readonly requestMs: number;
  /** Longest an idle keep-alive connection is kept between requests. */
  readonly keepAliveMs: number;
  /** A connection with no traffic either way for this long is closed. */
  readonly idleMs: number;
  /** Most connections open at once; more are refused. */
  readonly maxConnections: number;
}

/** Defaults: generous for 1 MiB values and snapshot chunks on a slow link, short for idling. */
export const DEFAULT_TIMEOUTS: ServerTimeouts = {
  headersMs: 10_000,
  requestMs: 30_000,
  keepAliveMs: 30_000,
  idleMs: 60_000,
  maxConnections: 2_000,
};

/** Options for {@link serveHttp}. */
export interface ServeOptions {
  readonly hostname: string;
  readonly port: number;
  readonly tls?: TlsFiles;
  readonly timeouts?: Partial<ServerTimeouts>;
  /** Unexpected failures of the listener (logged by the caller). */
  readonly onError?: (message: string) => void;
  /** Requests answered without the fetch handler (see {@link DirectRoute}). */
  readonly direct?: DirectRoute;
}

/** What a {@link DirectRoute} sees of a request before its body is read. */
export interface DirectHead {
  readonly method: string;
  /** The request target as sent (path and query). */
  readonly url: string;
  /** node's header object: names in lower case. */
  readonly headers: http.IncomingHttpHeaders;
  /** The headers as the fetch handler's `Request` would have them (built on each call). */
  webHeaders(): Headers;
  /** The verified client certificate (TLS). */
  readonly peer: PeerInfo | undefined;
}

/** A direct route's answer; a string body is sent as UTF-8. */
export interface DirectAnswer {
  readonly status: number;
  readonly headers: Iterable<readonly [string, string]>;
  readonly body?: Uint8Array | string;
}

/**
 * A server's own handling of some requests, without a web `Request` or `Response`: given a
 * request's head, the function that answers it from its whole body (it must not throw), or
 * undefined to leave the request to the fetch handler. The listener asks only about requests
 * without a body or with a declared `content-length` of at most 64 KiB, and reads that body
 * first; anything else (a streamed body, an upgrade) always goes to the fetch handler.
 */
export type DirectRoute = (
  head: DirectHead,
) => ((body: Uint8Array) => Promise<DirectAnswer>) | undefined;

/** A fetch handler with the listener's env (a Hono app's `fetch`). */
export type FetchHandler = (req: Request, env: ServerEnv) => Response | Promise<Response>;

/** A listening server. */
export interface HttpServer {
  readonly hostname: string;
  readonly port: number;
  /** Stops accepting, lets requests in flight finish (up to a grace period), then closes. */
  shutdown(): Promise<void>;
  /** Resolves once the server has closed. */
  readonly finished: Promise<void>;
  /** Requests the direct route has answered (see {@link DirectRoute}). */
  readonly directAnswers: number;
}

const SHUTDOWN_GRACE_MS = 5_000;

/** Starts listening; resolves once bound (rejects if the address cannot be bound). */
export function serveHttp(handler: FetchHandler, opts: ServeOptions): Promise<HttpServer> {
  const t = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  const scheme = opts.tls ? "https" : "http";
  // How often header and request timeouts are enforced (a trickle of bytes keeps a connection
  // from being idle, so only these catch a slow sender).
  const checkEveryMs = Math.max(50, Math.min(1_000, t.headersMs / 4));
  const connections = new Connections(t.idleMs);
  let directAnswers = 0;
  const listener = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const conn = connections.of(req.socket);
    const direct = opts.direct && directRoute(opts.direct, req, conn);
    if (direct) {
      directAnswers++;
      void answerDirect(direct, req, res, conn, opts.onError);
    } else void respond(handler, scheme, req, res, conn, opts.onError);
  };
  const server: http.Server = opts.tls
    ? https.createServer({
      connectionsCheckingInterval: checkEveryMs,
      key: opts.tls.key,
      cert: opts.tls.cert,
      ca: opts.tls.ca,
      requestCert: true,
      rejectUnauthorized: true,
      // A connection that never finishes its handshake gets no longer than one for its headers.
      handshakeTimeout: t.headersMs,
    }, listener)
    : http.createServer({ connectionsCheckingInterval: checkEveryMs }, listener);
  server.headersTimeout = t.headersMs;
  server.requestTimeout = t.requestMs;
  server.keepAliveTimeout = t.keepAliveMs;
  // Not `server.timeout`: a socket timeout is re-armed on every request and response (two new
  // timers per request in Deno's node:http, and it forgoes the reuse of the keep-alive timer
  // there); the idle limit is enforced by a sweep instead (see Connections).
  server.timeout = 0;
  server.maxConnections = t.maxConnections;
  server.on(opts.tls ? "secureConnection" : "connection", (socket: Socket) => {
    connections.add(socket);
  });
  // Upgraded connections belong to their routes; shutdown still closes them.
  const upgraded = new Set<Socket>();
  let closing = false;
  server.on("upgrade", (req: http.IncomingMessage, socket: Socket, head: Uint8Array) => {
    // The route sets its own limits on a stream, which may rightly be quiet for long.
    const peer = connections.forget(socket);
    const track = (s: Socket) => {
      if (closing) return void s.destroy();
      upgraded.add(s);
      s.once("close", () => upgraded.delete(s));
    };
    void answerUpgrade(handler, scheme, req, socket, head, peer, track, opts.onError);
  });
  server.on("clientError", (_err: Error, socket: Socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    socket.destroy();
  });
  const finished = new Promise<void>((resolve) =>
    server.once("close", () => {
      connections.stop();
      resolve();
    })
  );
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.hostname, () => {
      server.off("error", reject);
      server.on("error", (e: Error) => opts.onError?.(`listener: ${e.message}`));
      const a = server.address();
      const port = typeof a === "object" && a ? a.port : opts.port;
      let stopping: Promise<void> | undefined;
      resolve({
        hostname: opts.hostname,
        port,
        finished,
        get directAnswers() {
          return directAnswers;
        },
        shutdown: () => {
          stopping ??= (async () => {
            server.close();
            server.closeIdleConnections();
            // Streams have no request to finish: they end now.
            closing = true;
            for (const s of upgraded) s.destroy();
            let timer: ReturnType<typeof setTimeout> | undefined;
            await Promise.race([
              finished,
              new Promise((r) => timer = setTimeout(r, SHUTDOWN_GRACE_MS)),
            ]);
            clearTimeout(timer);
            server.closeAllConnections();
            await finished;
          })();
          return stopping;
        },
      });
    });
  });
}

/** Thrown into a request body stream when the client's body ended early or broke. */
export class BodyTruncatedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BodyTruncatedError";
  }
}

async function respond(
  handler: FetchHandler,
  scheme: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  conn: Connection | undefined,
  onError: ((message: string) => void) | undefined,
): Promise<void> {
  const method = req.method ?? "GET";
  let response: Response;
  let discard: (() => void) | undefined;
  try {
    const { url, headers } = requestHead(scheme, req);
    let body: BodyInit | undefined;
    if (method !== "GET" && method !== "HEAD") {
      const declared = Number(req.headers["content-length"] ?? "-1");
      if (declared >= 0 && declared <= BUFFERED_BODY_BYTES) {
        // Small bodies (most requests) are collected first: cheaper than a web stream, and
        // bounded (the whole request must arrive within the request timeout).
        body = await readSmallBody(req, declared);
      } else {
        const stream = bodyStream(req);
        discard = stream.discard;
        body = stream.stream;
      }
    }
    const request = new Request(url, {
      method,
      headers,
      body,
      // Required by the fetch spec for a streamed request body.
      duplex: "half",
    } as RequestInit);
    response = await handler(request, {
      peer: conn?.peer,
      whenSent: (fn) => whenSent(res, fn),
    });
  } catch (e) {
    // A handler that throws has a bug (Hono maps every error itself); malformed URLs land here.
    onError?.(`request ${req.method} ${req.url?.slice(0, 200)}: ${(e as Error).message}`);
    response = malformedRequest();
  }
  // A request answered before its body was read (refused, too large): drop the rest unread,
  // so the connection finishes the request instead of stalling with the body paused.
  if (!req.complete) discard?.();
  try {
    await send(res, method, response);
  } catch (e) {
    onError?.(`writing a response: ${(e as Error).message}`);
    res.destroy();
  }
  if (conn) conn.requests++;
}

/** The direct route's answerer for `req`, if the route takes it and its body qualifies. */
function directRoute(
  route: DirectRoute,
  req: http.IncomingMessage,
  conn: Connection | undefined,
): ((body: Uint8Array) => Promise<DirectAnswer>) | undefined {
  const h = req.headers;
  if (h["transfer-encoding"] !== undefined) return undefined;
  const length = h["content-length"];
  if (length !== undefined && !(Number(length) <= BUFFERED_BODY_BYTES)) return undefined;
  return route({
    method: req.method ?? "GET",
    url: req.url ?? "/",
    headers: h,
    webHeaders: () => new Headers(headerPairs(req)),
    peer: conn?.peer,
  });
}

async function answerDirect(
  answer: (body: Uint8Array) => Promise<DirectAnswer>,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  conn: Connection | undefined,
  onError: ((message: string) => void) | undefined,
): Promise<void> {
  const method = req.method ?? "GET";
  try {
    const declared = Number(req.headers["content-length"] ?? "0");
    let body: Uint8Array = EMPTY;
    if (declared > 0) {
      const got = await readSmallBody(req, declared);
      // A body that broke off: the client is gone or broken, and hears nothing.
      if (!(got instanceof Uint8Array)) return void res.destroy();
      body = got;
    }
    const a = await answer(body);
    if (res.destroyed) return;
    const bytes = typeof a.body === "string" ? new TextEncoder().encode(a.body) : a.body ?? EMPTY;
    writeAnswer(res, method, a.status, a.headers, bytes);
  } catch (e) {
    onError?.(`answering ${method} ${req.url?.slice(0, 200)}: ${(e as Error).message}`);
    res.destroy();
  } finally {
    if (conn) conn.requests++;
  }
}

const EMPTY = new Uint8Array();

/**
 * Writes `response` through node's `ServerResponse`, which keeps HTTP/1.1 right (keep-alive or
 * `connection: close`, HEAD, pipelining, the Date header). The body is read whole; its length
 * becomes `content-length`.
 */
async function send(res: http.ServerResponse, method: string, response: Response): Promise<void> {
  const status = response.status;
  if (method === "HEAD" || status === 204 || status === 304) {
    // No body on the wire. `response.body` is cheap only when it is null (usual here).
    let length: number | undefined;
    if (response.body && method === "HEAD" && status !== 204) {
      // The length of what a GET would have sent, as a HEAD answer should say.
      length = (await response.arrayBuffer()).byteLength;
    } else {
      await response.body?.cancel();
    }
    if (res.destroyed) return;
    res.writeHead(status, pairList(response.headers, length));
    res.end();
    return;
  }
  // Not `response.body` first: for the usual bytes body that getter builds a web stream, and
  // `arrayBuffer()` then reads it back chunk by chunk. A null body reads as empty.
  const body = new Uint8Array(await response.arrayBuffer());
  if (res.destroyed) return;
  writeAnswer(res, method, status, response.headers, body);
}

/** Writes a whole answer (without its body for HEAD, 204 and 304), with its `content-length`. */
function writeAnswer(
  res: http.ServerResponse,
  method: string,
  status: number,
  headers: Iterable<readonly [string, string]>,
  body: Uint8Array,
): void {
  if (method === "HEAD" || status === 204 || status === 304) {
    res.writeHead(status, pairList(headers));
    res.end();
    return;
  }
  if (body.length <= STRING_BODY_BYTES && !(res.socket as TLSSocket | null)?.encrypted) {
    // Headers set one by one and the body given as a latin1 string (one char per byte, so the
    // bytes on the wire are the body's exactly): Deno's node:http then writes status line,
    // headers and body as one string straight to the socket, without the stream machinery a
    // byte body goes through (cork, buffer list, writev). It adds content-length itself.
    // Plain TCP only: Deno's TLS socket writes such a string as UTF-8, so bytes from 0x80 up
    // would arrive as two bytes each.
    res.statusCode = status;
    for (const [name, value] of headers) {
      if (name !== "content-length") res.setHeader(name, value);
    }
    res.end(latin1(body), "latin1");
    return;
  }
  res.writeHead(status, pairList(headers, body.length));
  res.end(body);
}

/** Headers as a flat name, value list; with `length`, that is their content-length. */
function pairList(headers: Iterable<readonly [string, string]>, length?: number): string[] {
  const head: string[] = [];
  for (const [name, value] of headers) {
    if (length === undefined || name !== "content-length") head.push(name, value);
  }
  if (length !== undefined) head.push("content-length", String(length));
  return head;
}

/** Bodies up to this size are written as one string (see {@link send}). */
const STRING_BODY_BYTES = 16 * 1024;

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

/** Bodies up to this size are read whole before the handler runs (see {@link smallBody}). */
const BUFFERED_BODY_BYTES = 64 * 1024;

/**
 * A body of at most {@link BUFFERED_BODY_BYTES} (`declared`), read whole (see {@link smallBody}).
 * Usually it came with the headers, and node's parser, which announced the request before
 * reading on, has buffered all of it by the next microtask: then it is taken at once.
 */
async function readSmallBody(
  req: http.IncomingMessage,
  declared: number,
): Promise<Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array>> {
  await null;
  return arrivedBody(req, declared) ?? await smallBody(req);
}

/** The whole body of `req` if it has already arrived (all `declared` bytes), else undefined. */
function arrivedBody(
  req: http.IncomingMessage,
  declared: number,
): Uint8Array<ArrayBuffer> | undefined {
  if (!req.complete || req.readableLength !== declared) return undefined;
  const chunk: Uint8Array | null = req.read();
  // A copy: the chunk may share memory with what the socket reads next.
  return chunk ? new Uint8Array(chunk) : new Uint8Array();
}

/**
 * A body of at most {@link BUFFERED_BODY_BYTES} (as declared), read whole. If it breaks off,
 * the handler gets a stream that yields what arrived and then fails, as a streamed body would.
 */
function smallBody(
  req: http.IncomingMessage,
): Promise<Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array>> {
  return new Promise((resolve) => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    let settled = false;
    req.on("data", (chunk: Uint8Array) => {
      chunks.push(chunk);
      size += chunk.length;
    });
    req.on("end", () => {
      if (settled) return;
      settled = true;
      resolve(concatBytes(chunks, size));
    });
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      let gave = size === 0;
      resolve(
        new ReadableStream<Uint8Array>({
          pull(ctrl) {
            if (gave) return ctrl.error(new BodyTruncatedError(why));
            gave = true;
            ctrl.enqueue(concatBytes(chunks, size));
          },
        }),
      );
    };
    req.on("error", (e: Error) => fail(`the request body broke: ${e.message}`));
    req.on("close", () => {
      if (!req.complete) fail("the connection closed before the body ended");
    });
  });
}

/**
 * The request body as a web stream, paused while the reader is behind (backpressure), and a
 * way to throw away whatever the reader did not take.
 */
function bodyStream(
  req: http.IncomingMessage,
): { stream: ReadableStream<Uint8Array>; discard: () => void } {
  let done = false;
  const discard = () => {
    done = true;
    req.resume();
  };
  const stream = new ReadableStream<Uint8Array>({
    start(ctrl) {
      req.on("data", (chunk: Uint8Array) => {
        if (done) return;
        ctrl.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((ctrl.desiredSize ?? 0) <= 0) req.pause();
      });
      req.on("end", () => {
        if (done) return;
        done = true;
        ctrl.close();
      });
      const fail = (why: string) => {
        if (done) return;
        done = true;
        ctrl.error(new BodyTruncatedError(why));
      };
      req.on("aborted", () => fail("the client closed the connection before the body ended"));
      req.on("error", (e: Error) => fail(`the request body broke: ${e.message}`));
      req.on("close", () => {
        if (!req.complete) fail("the connection closed before the body ended");
      });
    },
    pull() {
      req.resume();
    },
    cancel: discard,
  }, { highWaterMark: 4 });
  return { stream, discard };
}

function whenSent(res: http.ServerResponse, fn: () => void): void {
  if (res.writableFinished || res.destroyed) return fn();
  let called = false;
  const once = () => {
    if (called) return;
    called = true;
    fn();
  };
  res.once("finish", once);
  res.once("close", once);
}

/** What the listener keeps per open connection. */
interface Connection {
  /** The verified client certificate (TLS), read once per connection. */
  readonly peer: PeerInfo | undefined;
  /** Requests answered so far: progress, as are bytes either way. */
  requests: number;
  /** Requests answered and bytes either way at the last sweep. */
  seen: number;
  /** When `seen` last changed (performance.now()). */
  since: number;
}

/**
 * Open connections, and the idle limit over them: a sweep every quarter of the limit (at most
 * every second) closes those with no bytes either way and no request answered for `idleMs`. A
 * connection so closed has been idle for between `idleMs` and `idleMs` plus the sweep interval.
 */
class Connections {
  readonly #open = new Map<Socket, Connection>();
  readonly #idleMs: number;
  readonly #everyMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(idleMs: number) {
    this.#idleMs = idleMs;
    this.#everyMs = Math.max(10, Math.min(1_000, idleMs / 4));
  }

  add(socket: Socket): void {
    this.#open.set(socket, {
      peer: peerInfo(socket),
      requests: 0,
      seen: -1,
      since: performance.now(),
    });
    socket.once("close", () => {
      this.#open.delete(socket);
      if (this.#open.size === 0) this.stop();
    });
    this.#timer ??= setInterval(() => this.#sweep(), this.#everyMs);
  }

  of(socket: Socket): Connection | undefined {
    return this.#open.get(socket);
  }

  /** Stops watching `socket` (handed over to an upgrade route); returns its peer. */
  forget(socket: Socket): PeerInfo | undefined {
    const c = this.#open.get(socket);
    this.#open.delete(socket);
    return c ? c.peer : peerInfo(socket);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #sweep(): void {
    const now = performance.now();
    for (const [socket, c] of this.#open) {
      const seen = c.requests + socket.bytesRead + socket.bytesWritten;
      if (seen !== c.seen) {
        c.seen = seen;
        c.since = now;
      } else if (now - c.since >= this.#idleMs) {
        socket.destroy();
      }
    }
  }
}

function peerInfo(socket: Socket): PeerInfo | undefined {
  const tls = socket as TLSSocket;
  if (typeof tls.getPeerCertificate !== "function" || !tls.authorized) return undefined;
  const cert = tls.getPeerCertificate();
  if (!cert || !cert.subject) return undefined;
  const cn = cert.subject.CN;
  return {
    certificateCn: Array.isArray(cn) ? cn[0] : cn,
    certificateFingerprint: cert.fingerprint256,
  };
}
