import assert from "node:assert/strict";
import { Hono } from "hono";
import type { Socket } from "node:net";
import { RAFT_STREAM_PATH, RAFT_STREAM_PROTOCOL } from "./raft_stream.ts";
import { storeApp } from "./server.ts";
import type { Store } from "./store.ts";
import { HttpTransport, RAFT_BATCH_PATH } from "./transport_http.ts";
import { decodeRaftBatch, type RaftBatch, type RaftEnvelope } from "./transport.ts";
import { type HttpServer, serveHttp } from "../proto/http_server.ts";
import type { ServerEnv } from "../proto/http_guard.ts";
import { dialUpgrade, UpgradeRefusedError } from "../proto/http_upgrade.ts";
import { generateSecret, Security } from "../proto/security.ts";
import { TestPki } from "../tests/test_pki.ts";
import { RequestStreams, StreamUnavailableError } from "../proto/request_stream.ts";
import {
  FORWARD_STREAM_PATH,
  FORWARD_STREAM_PROTOCOL,
  FORWARDED_HEADER,
  type KvService,
} from "./kv_service.ts";

function envelope(fromStore = 1): RaftEnvelope {
  return {
    regionId: 7,
    fromPeer: { id: 1, storeId: fromStore, role: "Voter" },
    toPeer: { id: 2, storeId: 2, role: "Voter" },
    epoch: { confVer: 3, version: 4 },
    startKey: new Uint8Array(),
    endKey: new Uint8Array(),
    message: {
      type: "MsgHeartbeat",
      to: 2,
      from: 1,
      term: 5,
      logTerm: 0,
      index: 0,
      entries: [],
      commit: 9,
      reject: false,
      rejectHint: 0,
    },
  };
}

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A store's routes for store 2 (only its Raft intake is reached), in secret mode. */
async function storeServer(
  security: Security,
): Promise<{ server: HttpServer; received: RaftBatch[] }> {
  const received: RaftBatch[] = [];
  const store = { storeId: 2, onRaftBatch: (b: RaftBatch) => received.push(b) } as unknown as Store;
  const app = storeApp(store, {} as KvService, { security, clusterId: 9, clientRoutesOpen: false });
  const server = await serveHttp((req, env) => app.fetch(req, env), {
    hostname: "127.0.0.1",
    port: 0,
    tls: security.tls,
  });
  return { server, received };
}

Deno.test("a Raft stream needs a node credential, and a batch that speaks for another store closes it", async () => {
  const security = new Security({ secret: new TextEncoder().encode(generateSecret()) });
  const { server, received } = await storeServer(security);
  const address = `127.0.0.1:${server.port}`;
  const dial = (headers: Record<string, string>) =>
    dialUpgrade({
      address,
      path: RAFT_STREAM_PATH,
      protocol: RAFT_STREAM_PROTOCOL,
      headers,
      timeoutMs: 3_000,
    });
  try {
    await assert.rejects(dial({}), (e) => e instanceof UpgradeRefusedError && e.status === 401);
    const forged = { ...security.fetcherHeaders(1, 9), authorization: `Bearer ${"0".repeat(64)}` };
    await assert.rejects(dial(forged), (e) => e instanceof UpgradeRefusedError && e.status === 401);
    // Store 1's credential, but store 3's name on the batch.
    const unreachable: number[] = [];
    const transport = new HttpTransport({
      fromStoreId: 3,
      resolve: () => Promise.resolve(address),
      onUnreachable: (id) => unreachable.push(id),
      stream: { headers: () => security.fetcherHeaders(1, 9) },
    });
    try {
      transport.send(2, [envelope(3)]);
      await until("the refused stream is reported", () => unreachable.length > 0);
      assert.equal(transport.streamsOpened, 1);
      assert.equal(transport.failedBatches, 1);
      assert.deepEqual(received, [], "nothing of a refused batch is delivered");
    } finally {
      transport.close();
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("a store that never acknowledges is reported unreachable after the send timeout, and a new stream carries the next batches", async () => {
  let streams = 0;
  const held: Socket[] = [];
  const app = new Hono();
  // Accepts streams and reads them, but never acknowledges: a peer behind a partition.
  app.get(RAFT_STREAM_PATH, (c) => {
    (c.env as ServerEnv).upgrade!(RAFT_STREAM_PROTOCOL, (socket) => {
      streams++;
      held.push(socket);
      socket.on("data", () => {});
    });
    return c.body(null, 200);
  });
  const server = await serveHttp((req, env) => app.fetch(req, env), {
    hostname: "127.0.0.1",
    port: 0,
  });
  const unreachable: number[] = [];
  const transport = new HttpTransport({
    fromStoreId: 1,
    resolve: () => Promise.resolve(`127.0.0.1:${server.port}`),
    onUnreachable: (id) => unreachable.push(id),
    stream: { headers: () => ({}) },
  });
  try {
    const sent = performance.now();
    transport.send(2, [envelope()]);
    await until("the silent store is reported", () => unreachable.length > 0);
    const waited = performance.now() - sent;
    assert.ok(waited >= 2_900 && waited < 6_000, `reported after ${waited.toFixed(0)} ms`);
    assert.deepEqual(unreachable, [2]);
    assert.equal(transport.failedBatches, 1);
    transport.send(2, [envelope()]);
    // The receiver takes the stream just before the sender has read its acceptance.
    await until("a second stream is opened", () => streams === 2 && transport.streamsOpened === 2);
  } finally {
    transport.close();
    for (const s of held) s.destroy();
    await server.shutdown();
  }
});

Deno.test("a store without Raft streams (an older version) gets its batches as POSTs", async () => {
  const received: RaftBatch[] = [];
  const app = new Hono();
  app.post(RAFT_BATCH_PATH, async (c) => {
    received.push(decodeRaftBatch(new Uint8Array(await c.req.arrayBuffer())));
    return c.body(null, 204);
  });
  const server = await serveHttp((req, env) => app.fetch(req, env), {
    hostname: "127.0.0.1",
    port: 0,
  });
  const transport = new HttpTransport({
    fromStoreId: 1,
    resolve: () => Promise.resolve(`127.0.0.1:${server.port}`),
    stream: { headers: () => ({}) },
  });
  try {
    transport.send(2, [envelope()]);
    await until("the batch arrives", () => received.length === 1);
    transport.send(2, [envelope(), envelope()]);
    await until("the second batch arrives", () => received.length === 2);
    assert.equal(received[1]!.envelopes.length, 2);
    assert.equal(transport.streamsOpened, 0);
    assert.equal(transport.failedBatches, 0);
  } finally {
    transport.close();
    await server.shutdown();
  }
});

Deno.test("the listener's shutdown closes open Raft streams at once", async () => {
  const security = Security.insecure();
  const { server, received } = await storeServer(security);
  const transport = new HttpTransport({
    fromStoreId: 1,
    resolve: () => Promise.resolve(`127.0.0.1:${server.port}`),
    stream: { headers: () => security.fetcherHeaders(1, 9) },
  });
  try {
    transport.send(2, [envelope()]);
    await until("the batch arrives", () => received.length === 1);
    assert.equal(transport.streamsOpened, 1);
    const started = performance.now();
    await server.shutdown();
    const took = performance.now() - started;
    assert.ok(took < 2_000, `shutdown took ${took.toFixed(0)} ms with a stream open`);
  } finally {
    transport.close();
  }
});

Deno.test("over TLS a Raft stream presents the store's certificate; one from another CA gets nothing delivered", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-raft-stream-tls-" });
  try {
    const pki = await TestPki.create(dir);
    const foreign = await TestPki.create(`${dir}/foreign`, "foreign");
    const ca = await Deno.readTextFile(pki.caFile);
    const node = await pem(await pki.issue("node", { cn: "mrkv-node", ips: ["127.0.0.1"] }));
    const stranger = await pem(
      await foreign.issue("stranger", { cn: "mrkv-node", ips: ["127.0.0.1"] }),
    );
    const security = new Security({ tls: { ca, ...node } });
    const { server, received } = await storeServer(security);
    const unreachable: number[] = [];
    const open = (cert: { cert: string; key: string }) =>
      new HttpTransport({
        fromStoreId: 1,
        resolve: () => Promise.resolve(`127.0.0.1:${server.port}`),
        onUnreachable: (id) => unreachable.push(id),
        stream: { headers: () => security.fetcherHeaders(1, 9), tls: { ca, ...cert } },
      });
    const good = open(node);
    const bad = open(stranger);
    try {
      good.send(2, [envelope()]);
      await until("the batch arrives over TLS", () => received.length === 1);
      assert.equal(good.streamsOpened, 1);
      bad.send(2, [envelope()]);
      await until("the stranger's stream fails", () => unreachable.length > 0);
      assert.equal(bad.streamsOpened, 0);
      assert.equal(received.length, 1, "nothing from the stranger is delivered");
    } finally {
      good.close();
      bad.close();
      await server.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function pem(files: { cert: string; key: string }) {
  return { cert: await Deno.readTextFile(files.cert), key: await Deno.readTextFile(files.key) };
}

Deno.test("a store's forwarding stream needs a node credential to open, checks each request's own credential, and carries only KV requests", async () => {
  const security = new Security({ secret: new TextEncoder().encode(generateSecret()) });
  const { server } = await storeServer(security);
  const address = `127.0.0.1:${server.port}`;
  const open = (headers: Record<string, string>) =>
    new RequestStreams({
      path: FORWARD_STREAM_PATH,
      protocol: FORWARD_STREAM_PROTOCOL,
      headers: () => headers,
      connectTimeoutMs: 2_000,
    });
  const outsider = open({});
  const member = open(security.fetcherHeaders(1, 9));
  try {
    await assert.rejects(
      outsider.request(address, new Request("http://x/kv/a"), 2_000),
      (e) => e instanceof StreamUnavailableError && /401/.test(e.message),
    );
    const forwarded = { [FORWARDED_HEADER]: "1" };
    const bare = await member.request(
      address,
      new Request("http://x/kv/a", { headers: forwarded }),
      2_000,
    );
    assert.equal(bare.status, 401, "a request without its own credential is refused");
    await bare.body?.cancel();
    const admin = await member.request(
      address,
      new Request("http://x/debug/regions"),
      2_000,
      security.fetcherHeaders(1, 9),
    );
    assert.equal(admin.status, 400, "only KV requests are carried");
    await admin.body?.cancel();
    assert.equal(member.opened, 1);
  } finally {
    outsider.close();
    member.close();
    await server.shutdown();
  }
});
