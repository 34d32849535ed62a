import assert from "node:assert/strict";
import { Hono } from "hono";
import type { Socket } from "node:net";
import { type HttpServer, serveHttp } from "./http_server.ts";
import type { ServerEnv } from "./http_guard.ts";
import {
  RequestStreams,
  type ServeRequestsOptions,
  serveRequestStream,
  StreamBrokenError,
  StreamUnavailableError,
} from "./request_stream.ts";
import { dialUpgrade } from "./http_upgrade.ts";
import { frame } from "./frames.ts";

const PATH = "/stream";
const PROTOCOL = "test-stream/1";

/** A server whose `GET /stream` upgrades to a request stream served by `handle`. */
async function streamServer(
  handle: (req: Request) => Promise<Response>,
  more: Partial<ServeRequestsOptions> = {},
  sockets: Socket[] = [],
): Promise<HttpServer> {
  const app = new Hono();
  app.get(PATH, (c) => {
    (c.env as ServerEnv).upgrade!(PROTOCOL, (socket, head) => {
      sockets.push(socket);
      serveRequestStream(socket, head, {
        handle,
        allow: (_m, path) => path.startsWith("/kv"),
        maxInFlight: 100,
        idleMs: 60_000,
        onRefused: () => {},
        ...more,
      });
    });
    return c.body(null, 200);
  });
  return await serveHttp((req, env) => app.fetch(req, env), { hostname: "127.0.0.1", port: 0 });
}

function streams(): RequestStreams {
  return new RequestStreams({
    path: PATH,
    protocol: PROTOCOL,
    headers: () => ({}),
    connectTimeoutMs: 2_000,
  });
}

Deno.test("requests share one stream, are answered out of order, and keep method, path, headers, body and status", async () => {
  const server = await streamServer(async (req) => {
    const n = Number(new URL(req.url).pathname.split("/")[2]);
    // Later requests are answered first.
    await new Promise((r) => setTimeout(r, (20 - n) * 3));
    const body = req.method === "PUT" ? new Uint8Array(await req.arrayBuffer()) : null;
    return new Response(body ? body.toReversed() : null, {
      status: body ? 200 : 204,
      headers: { "x-echo": req.headers.get("x-tag") ?? "", "x-method": req.method },
    });
  });
  const s = streams();
  const address = `127.0.0.1:${server.port}`;
  try {
    const answers = await Promise.all(Array.from({ length: 20 }, async (_, n) => {
      const put = n % 2 === 0;
      const res = await s.request(
        address,
        new Request(`http://x/kv/${n}?q=1`, {
          method: put ? "PUT" : "GET",
          headers: { "x-tag": `t${n}` },
          body: put ? new Uint8Array([n, 1, 2]) : undefined,
        }),
        5_000,
        { "x-extra": "1" },
      );
      return {
        n,
        status: res.status,
        echo: res.headers.get("x-echo"),
        method: res.headers.get("x-method"),
        body: [...new Uint8Array(await res.arrayBuffer())],
      };
    }));
    for (const a of answers) {
      const put = a.n % 2 === 0;
      assert.equal(a.status, put ? 200 : 204);
      assert.equal(a.echo, `t${a.n}`);
      assert.equal(a.method, put ? "PUT" : "GET");
      assert.deepEqual(a.body, put ? [2, 1, a.n] : []);
    }
    assert.equal(s.opened, 1);
  } finally {
    s.close();
    await server.shutdown();
  }
});

Deno.test("a request whose stream breaks fails once with StreamBrokenError and is never sent again", async () => {
  let served = 0;
  const sockets: Socket[] = [];
  const server = await streamServer(
    async () => {
      served++;
      // The connection dies while the request is being served.
      for (const s of sockets) s.destroy();
      await new Promise((r) => setTimeout(r, 50));
      return new Response(null, { status: 204 });
    },
    {},
    sockets,
  );
  const s = streams();
  const address = `127.0.0.1:${server.port}`;
  try {
    await assert.rejects(
      s.request(address, new Request("http://x/kv/a", { method: "PUT", body: "v" }), 5_000),
      StreamBrokenError,
    );
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(served, 1, "the request reached the server once, and was not re-sent");
    // The next request opens a new stream.
    sockets.length = 0;
    const res = await s.request(address, new Request("http://x/kv/b"), 5_000).catch((e) => e);
    assert.ok(res instanceof StreamBrokenError, "the second one broke the same way");
    assert.equal(s.opened, 2);
  } finally {
    s.close();
    await server.shutdown();
  }
});

Deno.test("a silent server times a request out and its stream is replaced", async () => {
  let calls = 0;
  const server = await streamServer(async (req) => {
    calls++;
    if (new URL(req.url).pathname === "/kv/hang") await new Promise(() => {});
    return new Response("ok");
  });
  const s = streams();
  const address = `127.0.0.1:${server.port}`;
  try {
    const started = performance.now();
    await assert.rejects(
      s.request(address, new Request("http://x/kv/hang"), 300),
      (e) => e instanceof StreamBrokenError && /no answer/.test(e.message),
    );
    assert.ok(performance.now() - started < 2_000);
    // Nothing at all came back on that stream: it is treated as dead.
    const res = await s.request(address, new Request("http://x/kv/fine"), 2_000);
    assert.equal(await res.text(), "ok");
    assert.equal(s.opened, 2);
    assert.equal(calls, 2);
  } finally {
    s.close();
    await server.shutdown();
  }
});

Deno.test("a server without the stream route is marked unsupported; a refusal is 'unavailable', never sent", async () => {
  const app = new Hono();
  app.get("/denied", (c) => c.json({ error: { code: "Unauthenticated" } }, 401));
  const server = await serveHttp((req, env) => app.fetch(req, env), {
    hostname: "127.0.0.1",
    port: 0,
  });
  const address = `127.0.0.1:${server.port}`;
  const s = streams();
  const denied = new RequestStreams({
    path: "/denied",
    protocol: PROTOCOL,
    headers: () => ({}),
    connectTimeoutMs: 2_000,
  });
  try {
    await assert.rejects(
      s.request(address, new Request("http://x/kv/a"), 1_000),
      (e) => e instanceof StreamUnavailableError && e.unsupported,
    );
    assert.equal(s.unsupported(address), true);
    await assert.rejects(
      denied.request(address, new Request("http://x/kv/a"), 1_000),
      (e) => e instanceof StreamUnavailableError && !e.unsupported && /401/.test(e.message),
    );
    assert.equal(denied.unsupported(address), false);
    await assert.rejects(
      s.request("127.0.0.1:9", new Request("http://x/kv/a"), 1_000),
      (e) => e instanceof StreamUnavailableError && !e.unsupported,
    );
  } finally {
    s.close();
    denied.close();
    await server.shutdown();
  }
});

Deno.test("the receiver answers disallowed paths 400 and too many at once 503, and closes on a bad frame", async () => {
  let release: () => void = () => {};
  const held = new Promise<void>((r) => release = r);
  const refused: string[] = [];
  const server = await streamServer(async () => {
    await held;
    return new Response(null, { status: 204 });
  }, { maxInFlight: 2, onRefused: (m) => refused.push(m) });
  const s = streams();
  const address = `127.0.0.1:${server.port}`;
  try {
    const bad = await s.request(address, new Request("http://x/admin/wipe"), 2_000);
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error.message, /cannot be streamed/);
    const first = [1, 2].map((n) => s.request(address, new Request(`http://x/kv/${n}`), 2_000));
    await new Promise((r) => setTimeout(r, 50));
    const busy = await s.request(address, new Request("http://x/kv/3"), 2_000);
    assert.equal(busy.status, 503);
    assert.equal((await busy.json()).error.code, "ServerIsBusy");
    release();
    for (const r of await Promise.all(first)) assert.equal(r.status, 204);

    const { conn } = await dialUpgrade({
      address,
      path: PATH,
      protocol: PROTOCOL,
      headers: {},
      timeoutMs: 2_000,
    });
    await conn.write(frame(new TextEncoder().encode("not cbor")));
    const closed = await conn.read(new Uint8Array(16));
    assert.equal(closed, null, "the receiver closed the stream");
    conn.close();
    assert.equal(refused.length, 1);
    assert.match(refused[0]!, /not valid CBOR/);
  } finally {
    s.close();
    await server.shutdown();
  }
});

Deno.test("the receiver bounds the request bytes it holds at once", async () => {
  let release: () => void = () => {};
  const held = new Promise<void>((r) => release = r);
  const server = await streamServer(async () => {
    await held;
    return new Response(null, { status: 204 });
  }, { maxInFlightBytes: 1_000 });
  const s = streams();
  const address = `127.0.0.1:${server.port}`;
  const put = (n: number) =>
    s.request(
      address,
      new Request(`http://x/kv/${n}`, { method: "PUT", body: new Uint8Array(600) }),
      2_000,
    );
  try {
    const first = put(1);
    await new Promise((r) => setTimeout(r, 50));
    const second = await put(2);
    assert.equal(second.status, 503);
    assert.match((await second.json()).error.message, /bytes\) in flight/);
    release();
    assert.equal((await first).status, 204);
    assert.equal((await put(3)).status, 204, "served again once the first is done");
  } finally {
    s.close();
    await server.shutdown();
  }
});
