/**
 * The HTTP listener both servers use: `node:http`, or `node:https` requiring a client
 * certificate signed by the cluster CA. Not `Deno.serve`, which has neither header, request nor
 * idle timeouts (a peer could hold thousands of idle or slow connections open forever) and
 * cannot require client certificates.
 *
 * Requests become web `Request`s with a streamed body and go to a fetch handler (a Hono app);
 * the verified client certificate travels in the handler's `env` ({@link ServerEnv}).
 *
 * @module
 */
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { ServerEnv } from "./http_guard.ts";
import { concatBytes } from "./http_body.ts";
import { answerUpgrade } from "./http_upgrade.ts";
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
}

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
}

const SHUTDOWN_GRACE_MS = 5_000;

/** Starts listening; resolves once bound (rejects if the address cannot be bound). */
export function serveHttp(handler: FetchHandler, opts: ServeOptions): Promise<HttpServer> {
  const t = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  const scheme = opts.tls ? "https" : "http";
  // How often header and request timeouts are enforced (a trickle of bytes keeps a connection
  // from being idle, so only these catch a slow sender).
  const checkEveryMs = Math.max(50, Math.min(1_000, t.headersMs / 4));
  const listener = (req: http.IncomingMessage, res: http.ServerResponse) => {
    void respond(handler, scheme, req, res, opts.onError);
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
  server.timeout = t.idleMs;
  server.maxConnections = t.maxConnections;
  server.on("timeout", (socket: Socket) => socket.destroy());
  // Upgraded connections belong to their routes; shutdown still closes them.
  const upgraded = new Set<Socket>();
  let closing = false;
  server.on("upgrade", (req: http.IncomingMessage, socket: Socket, head: Uint8Array) => {
    const track = (s: Socket) => {
      if (closing) return void s.destroy();
      upgraded.add(s);
      s.once("close", () => upgraded.delete(s));
    };
    void answerUpgrade(handler, scheme, req, socket, head, peerInfo(socket), track, opts.onError);
  });
  server.on("clientError", (_err: Error, socket: Socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    socket.destroy();
  });
  const finished = new Promise<void>((resolve) => server.once("close", () => resolve()));
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
  onError: ((message: string) => void) | undefined,
): Promise<void> {
  let response: Response;
  let discard: (() => void) | undefined;
  try {
    // Pairs, not a Headers object: `new Request` copies them either way, and is a large part of
    // this adapter's cost per request.
    const headers: [string, string][] = [];
    const raw = req.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) headers.push([raw[i]!, raw[i + 1]!]);
    const method = req.method ?? "GET";
    let body: BodyInit | undefined;
    if (method !== "GET" && method !== "HEAD") {
      const declared = Number(req.headers["content-length"] ?? "-1");
      if (declared >= 0 && declared <= BUFFERED_BODY_BYTES) {
        // Small bodies (most requests) are collected first: cheaper than a web stream, and
        // bounded (the whole request must arrive within the request timeout).
        body = await smallBody(req);
      } else {
        const stream = bodyStream(req);
        discard = stream.discard;
        body = stream.stream;
      }
    }
    const request = new Request(`${scheme}://${req.headers.host ?? "mrkv"}${req.url ?? "/"}`, {
      method,
      headers,
      body,
      // Required by the fetch spec for a streamed request body.
      duplex: "half",
    } as RequestInit);
    response = await handler(request, {
      peer: peerInfo(req.socket),
      whenSent: (fn) => whenSent(res, fn),
    });
  } catch (e) {
    // A handler that throws has a bug (Hono maps every error itself); malformed URLs land here.
    onError?.(`request ${req.method} ${req.url?.slice(0, 200)}: ${(e as Error).message}`);
    response = new Response(
      JSON.stringify({ error: { code: "BadRequest", message: "malformed request" } }),
      { status: 400, headers: { "content-type": "application/json" } },
    );
  }
  // A request answered before its body was read (refused, too large): drop the rest unread,
  // so the connection finishes the request instead of stalling with the body paused.
  if (!req.complete) discard?.();
  try {
    const body = response.body ? new Uint8Array(await response.arrayBuffer()) : undefined;
    if (res.destroyed) return;
    const out: Record<string, string> = {};
    response.headers.forEach((v, k) => out[k] = v);
    if (body) out["content-length"] = String(body.length);
    res.writeHead(response.status, out);
    res.end(body);
  } catch (e) {
    onError?.(`writing a response: ${(e as Error).message}`);
    res.destroy();
  }
}

/** Bodies up to this size are read whole before the handler runs (see {@link smallBody}). */
const BUFFERED_BODY_BYTES = 64 * 1024;

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
    req.on("aborted", () => fail("the client closed the connection before the body ended"));
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
