/**
 * The listener's direct routes (`http_server.ts`, `DirectRoute`): which requests they are asked
 * about, what they are given, and that their answers go out byte for byte, over plain HTTP and
 * TLS, without the fetch handler.
 */
import assert from "node:assert/strict";
import { type DirectRoute, type HttpServer, serveHttp } from "./http_server.ts";
import type { TlsFiles } from "./security.ts";
import { untilClosed } from "./_slow_client.ts";
import { TestPki } from "../tests/test_pki.ts";

const enc = new TextEncoder();
/** Every byte value, twice: a body that a text encoding would change. */
const ALL_BYTES = Uint8Array.from({ length: 512 }, (_, i) => i % 256);

interface Seen {
  /** Requests the fetch handler got: "METHOD path". */
  handler: string[];
  /** Heads the direct route was asked about. */
  asked: string[];
  logged: string[];
}

/**
 * A listener whose direct route takes `/d/...`: `PUT` echoes the body back (with its length in
 * a header), `DELETE` answers 204, `GET /d/throw` throws. The fetch handler answers "app".
 */
async function withServer(
  fn: (server: HttpServer, seen: Seen) => Promise<void>,
  tls?: TlsFiles,
): Promise<void> {
  const seen: Seen = { handler: [], asked: [], logged: [] };
  const direct: DirectRoute = (head) => {
    seen.asked.push(`${head.method} ${head.url}`);
    if (!head.url.startsWith("/d/")) return undefined;
    return (body) => {
      if (head.url === "/d/throw") throw new Error("a broken direct route");
      if (head.method === "DELETE") return Promise.resolve({ status: 204, headers: [] });
      return Promise.resolve({
        status: 200,
        headers: [["x-length", String(body.length)], ["x-peer", head.peer?.certificateCn ?? "-"]],
        body,
      });
    };
  };
  const server = await serveHttp(
    async (req) => {
      seen.handler.push(`${req.method} ${new URL(req.url).pathname}`);
      await req.arrayBuffer();
      return new Response("app");
    },
    {
      hostname: "127.0.0.1",
      port: 0,
      tls,
      direct,
      onError: (m) => seen.logged.push(m),
    },
  );
  try {
    await fn(server, seen);
  } finally {
    await server.shutdown();
  }
}

Deno.test("a direct route answers byte for byte without the fetch handler, keep-alive included", async () => {
  await withServer(async (server, seen) => {
    const url = `http://127.0.0.1:${server.port}`;
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${url}/d/echo?x=1`, { method: "PUT", body: ALL_BYTES });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-length"), "512");
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), ALL_BYTES);
    }
    const del = await fetch(`${url}/d/x`, { method: "DELETE" });
    assert.equal(del.status, 204);
    assert.equal(await del.text(), "");
    // Not the route's: the fetch handler answers.
    assert.equal(await (await fetch(`${url}/other`, { method: "PUT", body: "x" })).text(), "app");
    assert.deepEqual(seen.handler, ["PUT /other"]);
    assert.deepEqual(seen.asked, [
      "PUT /d/echo?x=1",
      "PUT /d/echo?x=1",
      "PUT /d/echo?x=1",
      "DELETE /d/x",
      "PUT /other",
    ]);
    assert.equal(server.directAnswers, 4);
  });
});

Deno.test("a direct route sees only small declared bodies, whole, wherever they arrive", async () => {
  await withServer(async (server, seen) => {
    const port = server.port;
    // Over 64 KiB, or streamed without a length: the fetch handler, and the route is not asked.
    const big = new Uint8Array(64 * 1024 + 1);
    const url = `http://127.0.0.1:${port}`;
    assert.equal(await (await fetch(`${url}/d/big`, { method: "PUT", body: big })).text(), "app");
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(enc.encode("abc"));
        c.close();
      },
    });
    const chunked = await fetch(`${url}/d/chunked`, { method: "PUT", body: stream });
    assert.equal(await chunked.text(), "app");
    assert.deepEqual(seen.handler, ["PUT /d/big", "PUT /d/chunked"]);
    assert.deepEqual(seen.asked, []);

    // A body sent well after its headers is still given whole.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(
      enc.encode(
        "PUT /d/late HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 6\r\n\r\nabc",
      ),
    );
    await new Promise((r) => setTimeout(r, 100));
    await conn.write(enc.encode("def"));
    const { text } = await untilClosed(conn, 5_000);
    conn.close();
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.match(text, /x-length: 6/i);
    assert.ok(text.endsWith("\r\n\r\nabcdef"), text);
  });
});

Deno.test("a direct request whose body breaks off, or whose route throws, closes its connection and nothing else", async () => {
  await withServer(async (server, seen) => {
    const port = server.port;
    const broken = await Deno.connect({ hostname: "127.0.0.1", port });
    await broken.write(
      enc.encode("PUT /d/short HTTP/1.1\r\nhost: x\r\ncontent-length: 50\r\n\r\nab"),
    );
    await broken.closeWrite();
    const cut = await untilClosed(broken, 5_000);
    broken.close();
    assert.equal(cut.text, "", "no answer to a request that never arrived whole");

    const thrown = await fetch(`http://127.0.0.1:${port}/d/throw`).then(
      (r) => `answered ${r.status}`,
      (e: Error) => `failed: ${e.name}`,
    );
    assert.match(thrown, /^failed/);
    assert.ok(seen.logged.some((m) => m.includes("a broken direct route")), seen.logged.join("; "));
    // The listener goes on.
    const res = await fetch(`http://127.0.0.1:${port}/d/after`, { method: "PUT", body: "ok" });
    assert.equal(await res.text(), "ok");
    assert.deepEqual(seen.handler, []);
  });
});

Deno.test("over TLS a direct answer arrives byte for byte, and the route sees the client certificate", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-direct-tls-" });
  try {
    const pki = await TestPki.create(dir);
    const ca = await Deno.readTextFile(pki.caFile);
    const pem = async (f: { cert: string; key: string }) => ({
      cert: await Deno.readTextFile(f.cert),
      key: await Deno.readTextFile(f.key),
    });
    const tls: TlsFiles = { ca, ...await pem(await pki.issue("server", { cn: "mrkv-node" })) };
    const client = Deno.createHttpClient({
      caCerts: [ca],
      ...await pem(await pki.issue("client", { cn: "mrkv-client" })),
    });
    try {
      await withServer(async (server) => {
        const res = await fetch(`https://127.0.0.1:${server.port}/d/tls`, {
          method: "PUT",
          body: ALL_BYTES,
          client,
        } as RequestInit);
        assert.equal(res.headers.get("x-peer"), "mrkv-client");
        assert.deepEqual(new Uint8Array(await res.arrayBuffer()), ALL_BYTES);
        assert.equal(server.directAnswers, 1);
      }, tls);
    } finally {
      client.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
