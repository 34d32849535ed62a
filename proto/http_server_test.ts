import assert from "node:assert/strict";
import { Hono } from "hono";
import { serveHttp } from "./http_server.ts";
import { BodyReadError, readBodyLimited } from "./http_body.ts";
import { errorResponse } from "./errors.ts";
import { trickle, untilClosed } from "./_slow_client.ts";
import { dialUpgrade } from "./http_upgrade.ts";

const enc = new TextEncoder();

type Closed = { text: string; ms: number };

async function withServer(
  fn: (port: number, logged: string[]) => Promise<void>,
): Promise<void> {
  const logged: string[] = [];
  const app = new Hono();
  app.onError((e) => {
    if (e instanceof BodyReadError) logged.push(e.message);
    return errorResponse(e);
  });
  app.post(
    "/echo",
    async (c) => c.body((await readBodyLimited(c.req.raw, 1024)) as Uint8Array<ArrayBuffer>),
  );
  app.post(
    "/count",
    async (c) => c.text(String((await readBodyLimited(c.req.raw, 1 << 20)).length)),
  );
  const server = await serveHttp((req, env) => app.fetch(req, env), {
    hostname: "127.0.0.1",
    port: 0,
    timeouts: { headersMs: 400, requestMs: 800, keepAliveMs: 300, idleMs: 600 },
  });
  try {
    await fn(server.port, logged);
  } finally {
    await server.shutdown();
  }
}

/**
 * Sends `sent`, fewer bytes than the `declared` Content-Length, then half-closes: the server must
 * answer 400 (if the client can still read it) and log the broken body once.
 */
async function sendBrokenBody(
  port: number,
  logged: string[],
  path: string,
  declared: number,
  sent: Uint8Array,
): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    enc.encode(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${declared}\r\n\r\n`),
  );
  await conn.write(sent);
  await conn.closeWrite();
  const { text } = await untilClosed(conn, 5_000);
  conn.close();
  // The client may or may not still be able to read the answer; the server must not fail.
  if (text !== "") assert.match(text, /^HTTP\/1.1 400/, text);
  for (let i = 0; i < 50 && logged.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(logged.length, 1, "the broken body is logged once");
  assert.match(logged[0]!, new RegExp(`broke off after ${sent.length} bytes`));
}

Deno.test("the listener closes idle, trickling and slow-body connections on its timeouts", async () => {
  await withServer(async (port) => {
    const open = () => Deno.connect({ hostname: "127.0.0.1", port });
    const idle = await open();
    const trickler = await open();
    const slowBody = await open();
    const keepAlive = await open();
    // Headers a byte at a time, each gap shorter than the idle timeout.
    const trickling = trickle(trickler, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: 1");
    await slowBody.write(
      enc.encode("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab"),
    );
    await keepAlive.write(
      enc.encode("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"),
    );
    const [a, b, c, d] = (await Promise.all(
      [idle, trickler, slowBody, keepAlive].map((conn) => untilClosed(conn, 5_000)),
    )) as [Closed, Closed, Closed, Closed];
    await trickling;
    for (const conn of [idle, trickler, slowBody, keepAlive]) conn.close();
    assert.ok(!a.text.includes("still open"), `idle connection closed (${a.ms} ms)`);
    assert.ok(!b.text.includes("still open"), `trickling headers closed (${b.ms} ms)`);
    assert.ok(b.ms < 2_500, `trickling headers closed by the header timeout, took ${b.ms} ms`);
    assert.ok(!c.text.includes("still open"), `slow body closed (${c.ms} ms)`);
    assert.match(d.text, /^HTTP\/1.1 200/, "the keep-alive request was answered");
    assert.ok(!d.text.includes("still open"), `idle keep-alive closed (${d.ms} ms)`);
  });
});

Deno.test("a body shorter than its Content-Length, then a half-close, is answered 400 and logged", async () => {
  await withServer(async (port, logged) => {
    await sendBrokenBody(port, logged, "/echo", 100, enc.encode("abc"));
  });
});

Deno.test("whenSent runs once the response has been written, not when the handler returns", async () => {
  let sentAt = 0;
  let returnedAt = 0;
  const server = await serveHttp((_req, env) => {
    env.whenSent?.(() => sentAt = performance.now());
    returnedAt = performance.now();
    return new Response("x".repeat(8 * 1024 * 1024));
  }, { hostname: "127.0.0.1", port: 0 });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await conn.write(enc.encode("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    // Read slowly at first: 8 MiB cannot all sit in the socket buffers.
    const buf = new Uint8Array(64 * 1024);
    await conn.read(buf);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sentAt, 0, "not sent while the client has not read it");
    assert.ok(returnedAt > 0);
    while ((await conn.read(buf).catch(() => null)) !== null) { /* drain */ }
    conn.close();
    for (let i = 0; i < 100 && sentAt === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(sentAt > 0, "whenSent ran once the response was written");
  } finally {
    await server.shutdown();
  }
});

Deno.test("a small body is taken whole whether it comes with the headers or after them", async () => {
  await withServer(async (port) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const head = (n: number) => `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${n}\r\n\r\n`;
    // With the headers; partly with them and the rest in late parts; empty. One connection.
    await conn.write(enc.encode(head(4) + "with"));
    const buf = new Uint8Array(4096);
    // One whole answer, however the reads split it.
    const answer = async () => {
      let text = "";
      for (;;) {
        text += new TextDecoder().decode(buf.subarray(0, (await conn.read(buf))!));
        const end = text.indexOf("\r\n\r\n");
        const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? -1);
        if (end >= 0 && length >= 0 && text.length >= end + 4 + length) return text;
      }
    };
    assert.match(await answer(), /\r\n\r\nwith$/);
    await conn.write(enc.encode(head(10) + "la"));
    await new Promise((r) => setTimeout(r, 50));
    await conn.write(enc.encode("te"));
    await new Promise((r) => setTimeout(r, 50));
    await conn.write(enc.encode(" body"));
    await new Promise((r) => setTimeout(r, 50));
    await conn.write(enc.encode("!"));
    assert.match(await answer(), /\r\n\r\nlate body!$/);
    await conn.write(enc.encode(head(0)));
    assert.match(await answer(), /content-length: 0\r\n/i);
    conn.close();
  });
});

Deno.test("large bodies are streamed: whole ones arrive, broken ones are answered 400 and logged", async () => {
  await withServer(async (port, logged) => {
    // Larger than what the listener reads whole before the handler runs.
    const big = new Uint8Array(200_000).fill(7);
    const res = await fetch(`http://127.0.0.1:${port}/count`, { method: "POST", body: big });
    assert.equal(await res.text(), "200000");
    // Just under it: read whole first, however the segments fall.
    const most = await fetch(`http://127.0.0.1:${port}/count`, {
      method: "POST",
      body: big.subarray(0, 60_000),
    });
    assert.equal(await most.text(), "60000");
    await sendBrokenBody(port, logged, "/count", 200_000, big.subarray(0, 70_000));
  });
});

/** `n` bytes covering every byte value, so that any re-encoding on the way shows. */
function pattern(n: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(n).map((_, i) => (i * 7 + 3) & 255);
}

Deno.test("bodies arrive byte for byte with their content-length, small and large", async () => {
  const server = await serveHttp((req) => {
    const n = Number(new URL(req.url).searchParams.get("n"));
    return new Response(n < 0 ? null : pattern(n), { headers: { "x-n": String(n) } });
  }, { hostname: "127.0.0.1", port: 0 });
  try {
    for (const n of [-1, 0, 1, 255, 16 * 1024, 16 * 1024 + 1, 300_000]) {
      const res = await fetch(`http://127.0.0.1:${server.port}/?n=${n}`);
      const got = await res.bytes();
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-n"), String(n), "the handler's headers pass through");
      assert.equal(res.headers.get("content-length"), String(Math.max(0, n)));
      assert.deepEqual(got, pattern(Math.max(0, n)), `${n} bytes`);
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("answers queued behind a pipelined one arrive byte for byte too", async () => {
  const server = await serveHttp((req) => {
    const n = Number(new URL(req.url).searchParams.get("n"));
    return new Response(pattern(n));
  }, { hostname: "127.0.0.1", port: 0 });
  try {
    const sizes = [200_000, 300, 5, 300];
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const last = sizes.length - 1;
    await conn.write(enc.encode(
      sizes.map((n, i) =>
        `GET /?n=${n} HTTP/1.1\r\nHost: x\r\n${i === last ? "Connection: close\r\n" : ""}\r\n`
      ).join(""),
    ));
    // One char per byte, so that offsets and lengths stay those of the bytes.
    let wire = "";
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      for (let i = 0; i < n; i++) wire += String.fromCharCode(buf[i]!);
    }
    conn.close();
    let at = 0;
    for (const n of sizes) {
      const end = wire.indexOf("\r\n\r\n", at);
      assert.match(wire.slice(at, end), new RegExp(`content-length: ${n}\\b`, "i"));
      const body = Uint8Array.from(wire.slice(end + 4, end + 4 + n), (c) => c.charCodeAt(0));
      assert.deepEqual(body, pattern(n), `the ${n}-byte answer`);
      at = end + 4 + n;
    }
    assert.equal(at, wire.length, "nothing after the last answer");
  } finally {
    await server.shutdown();
  }
});

interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/**
 * Writes `requests` back to back on one connection, reads until the server closes it, and
 * splits what came back into responses, framed as a client must: no body after HEAD, 204 and
 * 304, else exactly content-length bytes (a chunked or unframed answer fails the test).
 */
async function pipelined(port: number, requests: string[], heads: boolean[]) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(enc.encode(requests.join("")));
  const { text } = await untilClosed(conn, 5_000);
  conn.close();
  const out: RawResponse[] = [];
  let at = 0;
  while (at < text.length) {
    const end = text.indexOf("\r\n\r\n", at);
    assert.ok(end > 0, `a whole head at ${at}: ${JSON.stringify(text.slice(at))}`);
    const [statusLine, ...lines] = text.slice(at, end).split("\r\n");
    const headers = new Map(lines.map((l) => {
      const i = l.indexOf(":");
      return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()] as [string, string];
    }));
    const status = Number(statusLine!.split(" ")[1]);
    assert.equal(headers.get("transfer-encoding"), undefined, "no chunked answers");
    at = end + 4;
    let length = 0;
    if (!heads[out.length] && status !== 204 && status !== 304) {
      assert.ok(headers.has("content-length"), `${statusLine} has a content-length`);
      length = Number(headers.get("content-length"));
    }
    out.push({ status, headers, body: text.slice(at, at + length) });
    at += length;
  }
  return out;
}

Deno.test("HEAD, 204 and 304 carry no body, and keep-alive and connection: close hold", async () => {
  const app = new Hono();
  app.get("/text", (c) => c.text("hello"));
  app.get("/none", (c) => c.body(null, 204));
  app.get("/same", (c) => c.body(null, 304, { etag: '"v1"' }));
  app.get("/empty", () => new Response(null));
  app.get("/bye", (c) => c.text("bye", 200, { connection: "close" }));
  // Hono answers HEAD without a body itself; a bare handler leaves that to the listener.
  const server = await serveHttp(
    (req, env) => req.url.endsWith("/bare") ? new Response("abc") : app.fetch(req, env),
    { hostname: "127.0.0.1", port: 0 },
  );
  try {
    const get = (path: string, extra = "") => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;
    // Pipelined on one connection: a wrong frame anywhere shifts every later answer.
    const seen = await pipelined(
      server.port,
      [
        get("/text"),
        `HEAD /text HTTP/1.1\r\nHost: x\r\n\r\n`,
        get("/none"),
        get("/same"),
        get("/empty"),
        `HEAD /bare HTTP/1.1\r\nHost: x\r\n\r\n`,
        get("/text", "Connection: close\r\n"),
      ],
      [false, true, false, false, false, true, false],
    );
    assert.deepEqual(seen.map((r) => [r.status, r.body]), [
      [200, "hello"],
      [200, ""],
      [204, ""],
      [304, ""],
      [200, ""],
      [200, ""],
      [200, "hello"],
    ]);
    assert.equal(seen[5]!.headers.get("content-length"), "3", "HEAD: the length a GET would get");
    assert.equal(seen[0]!.headers.get("connection"), "keep-alive");
    assert.equal(seen[1]!.headers.get("content-length"), undefined, "HEAD: no length invented");
    assert.equal(seen[2]!.headers.get("content-length"), undefined, "204: no content-length");
    assert.equal(seen[3]!.headers.get("etag"), '"v1"');
    assert.equal(seen[4]!.headers.get("content-length"), "0", "a null body is an empty one");
    assert.equal(seen[6]!.headers.get("connection"), "close");

    // A handler's own `connection: close` closes the connection after its answer.
    const bye = await pipelined(server.port, [get("/bye"), get("/text")], [false, false]);
    assert.deepEqual(bye.map((r) => [r.status, r.body]), [[200, "bye"]]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("whenSent runs when the client goes away in the middle of a large response", async () => {
  let sent = 0;
  const server = await serveHttp((_req, env) => {
    env.whenSent?.(() => sent++);
    return new Response("x".repeat(8 * 1024 * 1024));
  }, { hostname: "127.0.0.1", port: 0 });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await conn.write(enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    await conn.read(new Uint8Array(64 * 1024));
    assert.equal(sent, 0, "not sent while the client has read only the start");
    conn.close();
    for (let i = 0; i < 250 && sent === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(sent, 1, "whenSent ran once, when the connection closed");
  } finally {
    await server.shutdown();
  }
});

Deno.test("the idle limit closes a connection without traffic, even mid-request, and spares a slow but steady one", async () => {
  const app = new Hono();
  app.get("/slow", async (c) => {
    await new Promise((r) => setTimeout(r, 4_000));
    return c.text("late");
  });
  app.post("/count", async (c) => c.text(String((await readBodyLimited(c.req.raw, 1024)).length)));
  // The idle limit is the shortest, so that nothing else closes these connections first.
  const server = await serveHttp((req, env) => app.fetch(req, env), {
    hostname: "127.0.0.1",
    port: 0,
    timeouts: { headersMs: 10_000, requestMs: 10_000, keepAliveMs: 10_000, idleMs: 300 },
  });
  try {
    // A handler that takes longer than the idle limit, with nothing on the wire meanwhile.
    const waiting = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await waiting.write(enc.encode("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
    // A body sent a byte at a time, each gap shorter than the limit, for longer than the limit.
    const steady = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await steady.write(
      enc.encode("POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n"),
    );
    const trickling = trickle(steady, "abcdefgh", 100);
    const [idle, busy] = await Promise.all([
      untilClosed(waiting, 3_500),
      (async () => {
        await trickling;
        const buf = new Uint8Array(1024);
        const n = await steady.read(buf);
        return new TextDecoder().decode(buf.subarray(0, n ?? 0));
      })(),
    ]);
    waiting.close();
    steady.close();
    assert.equal(idle.text, "", "closed without an answer");
    assert.ok(idle.ms >= 250, `not before the idle limit (${idle.ms} ms)`);
    assert.match(busy, /^HTTP\/1.1 200[^]*\r\n\r\n8$/, "the steady body was taken whole");
  } finally {
    await server.shutdown();
  }
});

Deno.test("an upgraded connection is its route's: the listener's idle limit does not close it", async () => {
  const server = await serveHttp((_req, env) => {
    // An echo stream.
    env.upgrade?.("echo/1", (socket, head) => {
      if (head.length > 0) socket.write(head);
      socket.on("data", (d: Uint8Array) => socket.write(d));
    });
    return new Response(null, { status: 200 });
  }, {
    hostname: "127.0.0.1",
    port: 0,
    timeouts: { headersMs: 10_000, requestMs: 10_000, keepAliveMs: 10_000, idleMs: 200 },
  });
  try {
    const { conn } = await dialUpgrade({
      address: `127.0.0.1:${server.port}`,
      path: "/echo",
      protocol: "echo/1",
      headers: {},
      timeoutMs: 5_000,
    });
    // Quiet for several idle limits, then still an echo.
    await new Promise((r) => setTimeout(r, 1_000));
    await conn.write(enc.encode("ping"));
    const buf = new Uint8Array(16);
    const n = await conn.read(buf);
    conn.close();
    assert.equal(new TextDecoder().decode(buf.subarray(0, n ?? 0)), "ping");
  } finally {
    await server.shutdown();
  }
});
