import assert from "node:assert/strict";
import { Hono } from "hono";
import { serveHttp } from "./http_server.ts";
import { BodyReadError, readBodyLimited } from "./http_body.ts";
import { errorResponse } from "./errors.ts";

const enc = new TextEncoder();

type Closed = { text: string; ms: number };

/** Reads from `conn` until it closes; returns what arrived and how long it took (or "open"). */
async function untilClosed(conn: Deno.Conn, waitMs: number): Promise<{ text: string; ms: number }> {
  const t0 = Date.now();
  const buf = new Uint8Array(4096);
  let text = "";
  for (;;) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      conn.read(buf).catch(() => null),
      new Promise<"open">((r) => timer = setTimeout(() => r("open"), waitMs - (Date.now() - t0))),
    ]);
    clearTimeout(timer);
    if (n === "open") return { text: text + "<still open>", ms: Date.now() - t0 };
    if (n === null) return { text, ms: Date.now() - t0 };
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
}

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

Deno.test("the listener closes idle, trickling and slow-body connections on its timeouts", async () => {
  await withServer(async (port) => {
    const open = () => Deno.connect({ hostname: "127.0.0.1", port });
    const idle = await open();
    const trickle = await open();
    const slowBody = await open();
    const keepAlive = await open();
    // Headers a byte at a time, each gap shorter than the idle timeout.
    const trickling = (async () => {
      for (const ch of "GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: 1") {
        try {
          await trickle.write(enc.encode(ch));
        } catch {
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await slowBody.write(
      enc.encode("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab"),
    );
    await keepAlive.write(
      enc.encode("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"),
    );
    const [a, b, c, d] = (await Promise.all(
      [idle, trickle, slowBody, keepAlive].map((conn) => untilClosed(conn, 5_000)),
    )) as [Closed, Closed, Closed, Closed];
    await trickling;
    for (const conn of [idle, trickle, slowBody, keepAlive]) conn.close();
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
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(
      enc.encode("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"),
    );
    await conn.closeWrite();
    const { text } = await untilClosed(conn, 5_000);
    conn.close();
    // The client may or may not still be able to read the answer; the server must not fail.
    if (text !== "") assert.match(text, /^HTTP\/1.1 400/, text);
    for (let i = 0; i < 50 && logged.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(logged.length, 1, "the broken body is logged once");
    assert.match(logged[0]!, /broke off after 3 bytes/);
  });
});
