import assert from "node:assert/strict";
import { Hono } from "hono";
import { serveHttp } from "./http_server.ts";
import { BodyReadError, readBodyLimited } from "./http_body.ts";
import { errorResponse } from "./errors.ts";
import { trickle, untilClosed } from "./_slow_client.ts";

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

Deno.test("large bodies are streamed: whole ones arrive, broken ones are answered 400 and logged", async () => {
  await withServer(async (port, logged) => {
    // Larger than what the listener reads whole before the handler runs.
    const big = new Uint8Array(200_000).fill(7);
    const res = await fetch(`http://127.0.0.1:${port}/count`, { method: "POST", body: big });
    assert.equal(await res.text(), "200000");
    await sendBrokenBody(port, logged, "/count", 200_000, big.subarray(0, 70_000));
  });
});
