/**
 * The listener in TLS mode (`proto/http_server.ts` over `node:https`): client certificates are
 * required and checked against the cluster CA, the verified one reaches the handler, and the
 * connection timeouts hold before and after the handshake as they do over plain HTTP.
 *
 * @module
 */
import assert from "node:assert/strict";
import { serveHttp } from "../proto/http_server.ts";
import type { TlsFiles } from "../proto/security.ts";
import { TestPki } from "./test_pki.ts";
import { trickle, untilClosed } from "../proto/_slow_client.ts";

async function pem(files: { cert: string; key: string }) {
  return { cert: await Deno.readTextFile(files.cert), key: await Deno.readTextFile(files.key) };
}

/** Milliseconds until the peer closed, or "open" if it is still open after `waitMs`. */
async function closedWithin(conn: Deno.Conn, waitMs: number): Promise<number | "open"> {
  const { text, ms } = await untilClosed(conn, waitMs);
  return text.endsWith("<still open>") ? "open" : ms;
}

Deno.test("TLS listener: client certificates required and passed on; timeouts close silent and trickling connections", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-tls-listener-" });
  try {
    const pki = await TestPki.create(dir);
    const ca = await Deno.readTextFile(pki.caFile);
    const server = await pem(await pki.issue("server", { cn: "mrkv-node" }));
    const client = await pem(await pki.issue("client", { cn: "mrkv-admin" }));
    const tls: TlsFiles = { ca, ...server };
    const listener = await serveHttp(
      (_req, env) => new Response(env.peer?.certificateCn ?? "no certificate"),
      {
        hostname: "127.0.0.1",
        port: 0,
        tls,
        timeouts: { headersMs: 400, requestMs: 800, keepAliveMs: 300, idleMs: 600 },
      },
    );
    const port = listener.port;
    try {
      const withCert = Deno.createHttpClient({ caCerts: [ca], ...client });
      const res = await fetch(`https://127.0.0.1:${port}/`, { client: withCert } as RequestInit);
      assert.equal(
        await res.text(),
        "mrkv-admin",
        "the verified certificate's CN reaches the handler",
      );
      withCert.close();
      const noCert = Deno.createHttpClient({ caCerts: [ca] });
      await assert.rejects(
        fetch(`https://127.0.0.1:${port}/`, { client: noCert } as RequestInit),
        TypeError,
        "no client certificate: the handshake fails",
      );
      noCert.close();

      // A TCP connection that never starts the handshake.
      const silent = await Deno.connect({ hostname: "127.0.0.1", port });
      // A TLS connection that completes the handshake, then sends nothing.
      const idle = await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [ca], ...client });
      await idle.handshake();
      // Headers a byte at a time over TLS, each gap shorter than the idle timeout.
      const trickler = await Deno.connectTls({
        hostname: "127.0.0.1",
        port,
        caCerts: [ca],
        ...client,
      });
      await trickler.handshake();
      const trickling = trickle(trickler, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1");
      const [a, b, c] = await Promise.all(
        [silent, idle, trickler].map((x) => closedWithin(x, 5_000)),
      );
      await trickling;
      for (const conn of [silent, idle, trickler]) conn.close();
      assert.notEqual(a, "open", "a connection without a handshake is closed");
      assert.notEqual(b, "open", "an idle TLS connection is closed");
      assert.notEqual(c, "open", "trickling headers over TLS are cut off");
      assert.ok((c as number) < 2_500, `trickling headers closed by the header timeout (${c} ms)`);
    } finally {
      await listener.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("TLS listener: bodies arrive byte for byte; a slow but steady body outlives the idle limit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-tls-listener-" });
  try {
    const pki = await TestPki.create(dir);
    const ca = await Deno.readTextFile(pki.caFile);
    const tls: TlsFiles = { ca, ...await pem(await pki.issue("server", { cn: "mrkv-node" })) };
    const client = await pem(await pki.issue("client", { cn: "mrkv-admin" }));
    // Every byte value, so that a body re-encoded on the way shows.
    const pattern = (n: number) => new Uint8Array(n).map((_, i) => (i * 7 + 3) & 255);
    const listener = await serveHttp(async (req) => {
      if (req.method === "POST") return new Response(String((await req.bytes()).length));
      return new Response(pattern(Number(new URL(req.url).searchParams.get("n"))));
    }, {
      hostname: "127.0.0.1",
      port: 0,
      tls,
      timeouts: { headersMs: 10_000, requestMs: 10_000, keepAliveMs: 10_000, idleMs: 300 },
    });
    try {
      const http = Deno.createHttpClient({ caCerts: [ca], ...client });
      for (const n of [300, 20_000]) {
        const res = await fetch(`https://127.0.0.1:${listener.port}/?n=${n}`, { client: http });
        assert.deepEqual(await res.bytes(), pattern(n), `${n} bytes`);
      }
      http.close();
      const steady = await Deno.connectTls({
        hostname: "127.0.0.1",
        port: listener.port,
        caCerts: [ca],
        ...client,
      });
      await steady.write(
        new TextEncoder().encode("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n"),
      );
      // A byte every 100 ms: each gap shorter than the idle limit, the whole longer.
      await trickle(steady, "abcdefgh", 100);
      const { text } = await untilClosed(steady, 5_000);
      steady.close();
      assert.match(text, /^HTTP\/1.1 200[^]*\r\n\r\n8/, "the steady body was taken whole");
    } finally {
      await listener.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
