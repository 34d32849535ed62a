import assert from "node:assert/strict";
import { storeApp } from "./server.ts";
import type { Store } from "./store.ts";
import type { KvService } from "./kv_service.ts";
import { HttpTransport } from "./transport_http.ts";
import type { RaftBatch, RaftEnvelope } from "./transport.ts";
import { SNAPSHOT_CHUNK_BYTES } from "./snapshot_stream.ts";
import type { Message } from "../raft/mod.ts";
import { serveHttp } from "../proto/http_server.ts";
import { generateSecret, Security } from "../proto/security.ts";

function envelope(message: Partial<Message>): RaftEnvelope {
  return {
    regionId: 7,
    fromPeer: { id: 1, storeId: 1, role: "Voter" },
    toPeer: { id: 2, storeId: 2, role: "Voter" },
    epoch: { confVer: 3, version: 4 },
    startKey: new TextEncoder().encode("a"),
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
      ...message,
    },
  };
}

for (const streams of [true, false]) {
  Deno.test(`the HTTP transport delivers batches ${streams ? "over a Raft stream" : "as POSTs"} and a multi-chunk snapshot through the store routes`, async () => {
    await deliversThroughStoreRoutes(streams);
  });
}

async function deliversThroughStoreRoutes(streams: boolean) {
  const received: RaftBatch[] = [];
  // Only storeId and onRaftBatch are reached by the Raft routes.
  const store = { storeId: 2, onRaftBatch: (b: RaftBatch) => received.push(b) } as unknown as Store;
  // Secret mode, as a real cluster runs: the transport's requests carry store 1's credential.
  const security = new Security({ secret: new TextEncoder().encode(generateSecret()) });
  const app = storeApp(store, {} as KvService, { security, clusterId: 9 });
  const server = await serveHttp((req, env) => app.fetch(req, env), {
    hostname: "127.0.0.1",
    port: 0,
  });
  const transport = new HttpTransport({
    fromStoreId: 1,
    resolve: () => Promise.resolve(`127.0.0.1:${server.port}`),
    fetch: security.fetcher({ clusterId: 9, storeId: 1 }),
    ...(streams && { stream: { headers: () => security.fetcherHeaders(1, 9) } }),
  });
  try {
    const data = crypto.getRandomValues(new Uint8Array(65536)).slice();
    const big = new Uint8Array(SNAPSHOT_CHUNK_BYTES * 2 + 12345);
    for (let off = 0; off < big.length; off += data.length) {
      big.set(data.subarray(0, Math.min(data.length, big.length - off)), off);
    }
    transport.send(2, [
      envelope({}),
      envelope({
        type: "MsgApp",
        index: 3,
        entries: [{ term: 5, index: 4, type: "Normal", data: new Uint8Array([1, 2]) }],
      }),
    ]);
    transport.send(2, [envelope({
      type: "MsgSnap",
      snapshot: {
        metadata: { index: 40, term: 5, confState: { voters: [1, 2], learners: [] } },
        data: big,
      },
    })]);
    const deadline = Date.now() + 10_000;
    // The sender counts a stream once its last POST is answered, just after the receiver has it.
    while (
      (received.flatMap((b) => b.envelopes).length < 3 || transport.snapshotsStreamed < 1) &&
      Date.now() < deadline
    ) await new Promise((r) => setTimeout(r, 10));
    const all = received.flatMap((b) => b.envelopes);
    assert.equal(all.length, 3);
    assert.deepEqual(all.map((e) => e.message.type).sort(), ["MsgApp", "MsgHeartbeat", "MsgSnap"]);
    const snap = all.find((e) => e.message.type === "MsgSnap")!;
    assert.equal(snap.message.snapshot!.metadata.index, 40);
    assert.deepEqual(snap.message.snapshot!.data, big, "the snapshot arrives whole, byte for byte");
    assert.equal(transport.snapshotsStreamed, 1);
    assert.deepEqual(
      all.find((e) => e.message.type === "MsgApp")!.message.entries[0]!.data,
      new Uint8Array([1, 2]),
    );
    assert.ok(received.every((b) => b.fromStoreId === 1));
    assert.equal(transport.streamsOpened, streams ? 1 : 0);
    assert.equal(transport.failedBatches, 0);
  } finally {
    transport.close();
    await server.shutdown();
  }
}

Deno.test("an unreachable store costs a failed batch and a report, never an exception", async () => {
  const unreachable: number[] = [];
  const transport = new HttpTransport({
    fromStoreId: 1,
    resolve: () => Promise.resolve("127.0.0.1:9"),
    onUnreachable: (id) => unreachable.push(id),
  });
  try {
    transport.send(3, [envelope({})]);
    const deadline = Date.now() + 5_000;
    while (unreachable.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(unreachable, [3]);
    assert.equal(transport.failedBatches, 1);
  } finally {
    transport.close();
  }
});
