/**
 * HTTP/1.1 connection upgrades (`Connection: upgrade`, answered `101 Switching Protocols`):
 * how a long-lived byte stream between two servers starts as an ordinary request, so it goes
 * through the same listener, TLS, guard and route table as every other request, and is
 * authenticated once instead of per message.
 *
 * The server side ({@link answerUpgrade}) runs the upgrade request through the fetch handler
 * like any other. A route that wants the stream calls `env.upgrade` (see `ServerEnv`) and
 * answers 2xx; anything else (401, 404, ...) is sent as the answer and the connection is closed.
 * The client side ({@link dialUpgrade}) opens a connection, sends the request and returns the
 * connection once the server has switched.
 *
 * @module
 */
import type { Socket } from "node:net";
import type http from "node:http";
import type { PeerInfo, TlsFiles } from "./security.ts";
import type { ServerEnv, UpgradeUse } from "./http_guard.ts";
import { concatBytes } from "./http_body.ts";
import { malformedRequest, requestHead, splitHostPort } from "./http_incoming.ts";

/** A fetch handler, as the listener calls it. */
type Handler = (req: Request, env: ServerEnv) => Response | Promise<Response>;

/** Longest the handler may take to accept or refuse an upgrade. */
const ANSWER_TIMEOUT_MS = 10_000;

/**
 * Answers one upgrade request (node:http's `upgrade` event): the handler decides; an accepted
 * socket is handed to `track` (so shutdown can close it) and then to the route.
 */
export async function answerUpgrade(
  handler: Handler,
  scheme: string,
  req: http.IncomingMessage,
  socket: Socket,
  head: Uint8Array,
  peer: PeerInfo | undefined,
  track: (socket: Socket) => void,
  onError: ((message: string) => void) | undefined,
): Promise<void> {
  // The listener's timeouts no longer apply to a socket node:http has let go of.
  socket.setTimeout(ANSWER_TIMEOUT_MS, () => socket.destroy());
  socket.on("error", () => socket.destroy());
  let accepted: { protocol: string; use: UpgradeUse } | undefined;
  let response: Response;
  try {
    const { url, headers } = requestHead(scheme, req);
    const request = new Request(url, { method: req.method ?? "GET", headers });
    response = await handler(request, {
      peer,
      upgrade: (protocol, use) => accepted = { protocol: protocol.toLowerCase(), use },
    });
  } catch (e) {
    onError?.(`upgrade ${req.method} ${req.url?.slice(0, 200)}: ${(e as Error).message}`);
    response = malformedRequest();
  }
  if (socket.destroyed) return;
  const asked = String(req.headers.upgrade ?? "").toLowerCase();
  if (accepted && response.ok && asked === accepted.protocol) {
    socket.setTimeout(0);
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: ${accepted.protocol}\r\n\r\n`,
    );
    track(socket);
    accepted.use(socket, head);
    return;
  }
  // Refused: the answer, then close (the client gets the status and the error body).
  try {
    const body = new Uint8Array(await response.arrayBuffer());
    const status = accepted && response.ok ? 400 : response.status;
    const type = response.headers.get("content-type") ?? "application/octet-stream";
    socket.end(
      concat(
        new TextEncoder().encode(
          `HTTP/1.1 ${status} ${status === 400 ? "Bad Request" : "Refused"}\r\n` +
            `content-type: ${type}\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`,
        ),
        body,
      ),
    );
  } catch {
    socket.destroy();
  }
}

/**
 * The server closed the connection without answering the upgrade request: what a server that
 * takes no upgrades at all does (an earlier mrkv's listener, a plain `node:http` server).
 */
export class UpgradeUnansweredError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UpgradeUnansweredError";
  }
}

/**
 * Whether `e` says the server does not know the upgrade route, so ordinary requests it is: no
 * answer, 404, 405 or 426, or 403 (an earlier mrkv classes a route it does not know as an
 * admin route, which a node credential may not call).
 */
export function upgradeUnsupported(e: unknown): boolean {
  return e instanceof UpgradeUnansweredError ||
    (e instanceof UpgradeRefusedError && [403, 404, 405, 426].includes(e.status));
}

/** The server answered an upgrade request with something other than 101. */
export class UpgradeRefusedError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "UpgradeRefusedError";
  }
}

/** What {@link dialUpgrade} needs. */
export interface DialOptions {
  /** HOST:PORT (an IPv6 host in brackets). */
  readonly address: string;
  readonly path: string;
  /** The protocol asked for in the `upgrade` header. */
  readonly protocol: string;
  /** Extra request headers (credentials, IDs), lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  /** Connect with TLS, verifying the server against `ca` and presenting `cert`. */
  readonly tls?: TlsFiles;
  /** Longest the connect and the server's answer may take together. */
  readonly timeoutMs: number;
}

/** Most bytes of an answer's head (status line and headers) read before giving up. */
const MAX_ANSWER_HEAD = 16 * 1024;

/**
 * Opens a connection to `address` and asks to switch it to `protocol`. Resolves with the
 * connection and any bytes the server sent after its `101` head; rejects with
 * {@link UpgradeRefusedError} for any other answer, or an error if the server cannot be
 * reached or does not answer in time.
 */
export async function dialUpgrade(
  opts: DialOptions,
): Promise<{ conn: Deno.Conn; head: Uint8Array }> {
  const { hostname, port } = dialTarget(opts.address);
  let conn: Deno.Conn | undefined;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn?.close();
    } catch { /* already closed */ }
  }, opts.timeoutMs);
  try {
    const connecting = opts.tls
      ? Deno.connectTls({
        hostname,
        port,
        caCerts: [opts.tls.ca],
        cert: opts.tls.cert,
        key: opts.tls.key,
      })
      : Deno.connect({ hostname, port });
    conn = await connecting;
    if (timedOut) throw new Error("timed out"); // closed and reworded below
    if (!opts.tls) (conn as Deno.TcpConn).setNoDelay(true);
    let request = `GET ${opts.path} HTTP/1.1\r\nhost: ${opts.address}\r\n` +
      `connection: upgrade\r\nupgrade: ${opts.protocol}\r\n`;
    for (const [k, v] of Object.entries(opts.headers)) request += `${k}: ${v}\r\n`;
    await writeAll(conn, new TextEncoder().encode(request + "\r\n"));
    const answer = await readHead(conn);
    if (answer.status !== 101) {
      throw new UpgradeRefusedError(
        answer.status,
        `${opts.address}${opts.path} answered ${answer.status}: ${answer.body.slice(0, 300)}`,
      );
    }
    return { conn, head: answer.rest };
  } catch (e) {
    try {
      conn?.close();
    } catch { /* already closed */ }
    if (timedOut && !(e instanceof UpgradeRefusedError || e instanceof UpgradeUnansweredError)) {
      throw new Error(`no answer from ${opts.address} in ${opts.timeoutMs} ms`);
    }
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** Writes all of `bytes` (a connection may take part of a write). */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** Reads an answer's head; for a refusal also its body (up to its length or the close). */
async function readHead(
  conn: Deno.Conn,
): Promise<{ status: number; rest: Uint8Array; body: string }> {
  let got: Uint8Array = new Uint8Array(0);
  const buf = new Uint8Array(4096);
  for (;;) {
    const end = indexOfHeadEnd(got);
    if (end >= 0) {
      const head = new TextDecoder().decode(got.subarray(0, end));
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (!m) throw new Error("not an HTTP answer");
      const status = Number(m[1]);
      let rest: Uint8Array = got.subarray(end + 4);
      if (status === 101) return { status, rest, body: "" };
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? "0");
      while (rest.length < Math.min(length, MAX_ANSWER_HEAD)) {
        const n = await conn.read(buf);
        if (n === null) break;
        rest = concat(rest, buf.subarray(0, n));
      }
      return { status, rest, body: new TextDecoder().decode(rest) };
    }
    if (got.length > MAX_ANSWER_HEAD) throw new Error("answer head too large");
    const n = await conn.read(buf);
    if (n === null) {
      if (got.length === 0) throw new UpgradeUnansweredError("the server closed without an answer");
      throw new Error("connection closed in the middle of an answer");
    }
    got = concat(got, buf.subarray(0, n));
  }
}

function indexOfHeadEnd(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  return concatBytes([a, b], a.length + b.length);
}

/** Where to connect: a host and a port to dial (1..65535). */
function dialTarget(addr: string): { hostname: string; port: number } {
  const target = splitHostPort(addr);
  if (
    !target.hostname || !Number.isInteger(target.port) || target.port <= 0 || target.port > 65535
  ) {
    throw new Error(`not a HOST:PORT address: ${addr}`);
  }
  return target;
}
