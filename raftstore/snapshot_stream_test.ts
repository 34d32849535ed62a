import assert from "node:assert/strict";
import { MrkvError } from "../proto/errors.ts";
import { newMessage } from "../raft/mod.ts";
import { SnapshotAssembler, splitSnapshotEnvelope } from "./snapshot_stream.ts";
import type { RaftBatch, RaftEnvelope } from "./transport.ts";

const peer = (id: number, storeId: number) => ({ id, storeId, role: "Voter" as const });

function snapEnvelope(data: Uint8Array): RaftEnvelope {
  return {
    regionId: 1,
    fromPeer: peer(1, 1),
    toPeer: peer(2, 2),
    epoch: { confVer: 1, version: 1 },
    startKey: new Uint8Array(),
    endKey: new Uint8Array(),
    message: newMessage({
      type: "MsgSnap",
      to: 2,
      from: 1,
      term: 2,
      snapshot: {
        metadata: { index: 10, term: 2, confState: { voters: [1, 2], learners: [] } },
        data,
      },
    }),
  };
}

const batchOf = (env: RaftEnvelope): RaftBatch => ({ fromStoreId: 1, envelopes: [env] });

/** Asserts `f` throws an MrkvError with `code`. */
function throwsCode(f: () => unknown, code: string, what: string): void {
  assert.throws(f, (e) => e instanceof MrkvError && e.code === code, what);
}

Deno.test("snapshot streams: reassembled in order, memory released when finished", () => {
  const a = new SnapshotAssembler(10_000, 60_000);
  try {
    const data = Uint8Array.from({ length: 2_500 }, (_, i) => i % 251);
    const { chunks, head } = splitSnapshotEnvelope(snapEnvelope(data));
    assert.equal(head.message.snapshot!.data.length, 0, "the envelope travels without its data");
    // Chunks of 1 MiB would be one chunk here: feed the data in three pieces instead.
    assert.equal(chunks.length, 1);
    a.addChunk("s", 0, data.subarray(0, 1_000));
    a.addChunk("s", 1, data.subarray(1_000, 2_000));
    a.addChunk("s", 2, data.subarray(2_000));
    assert.equal(a.bufferedBytes, 2_500);
    const out = a.finish("s", batchOf(head));
    assert.deepEqual(out.envelopes[0]!.message.snapshot!.data, data);
    assert.equal(a.bufferedBytes, 0, "released once reassembled");
    assert.equal(a.received, 1);
  } finally {
    a.close();
  }
});

Deno.test("snapshot streams: total buffered bytes are capped; the stream past the cap is dropped", () => {
  const a = new SnapshotAssembler(3_000, 60_000);
  try {
    const k = new Uint8Array(1_000);
    a.addChunk("one", 0, k);
    a.addChunk("one", 1, k);
    a.addChunk("two", 0, k);
    assert.equal(a.bufferedBytes, 3_000, "up to the cap is accepted");
    throwsCode(() => a.addChunk("two", 1, k), "ServerIsBusy", "past the cap: busy");
    assert.equal(a.bufferedBytes, 2_000, "the refused stream's bytes are released");
    // The refused stream is gone: its next chunk is out of order, and its end delivers nothing.
    throwsCode(() => a.addChunk("two", 2, k), "BadRequest", "a dropped stream does not resume");
    // A stream that restarts from chunk 0 replaces its earlier chunks instead of adding to them.
    a.addChunk("one", 0, k);
    assert.equal(a.bufferedBytes, 1_000);
  } finally {
    a.close();
  }
  assert.equal(a.bufferedBytes, 0, "close releases everything");
});

Deno.test("snapshot streams: out-of-order chunks and a wrong ending are refused and release memory", () => {
  const a = new SnapshotAssembler(10_000, 60_000);
  try {
    const k = new Uint8Array(100);
    throwsCode(() => a.addChunk("x", 1, k), "BadRequest", "a stream must start at chunk 0");
    a.addChunk("x", 0, k);
    throwsCode(() => a.addChunk("x", 2, k), "BadRequest", "a gap");
    assert.equal(a.bufferedBytes, 0);
    a.addChunk("y", 0, k);
    const notSnap = snapEnvelope(new Uint8Array());
    const heartbeat = {
      ...notSnap,
      message: { ...notSnap.message, type: "MsgHeartbeat" as const },
    };
    throwsCode(() => a.finish("y", batchOf(heartbeat)), "BadRequest", "ends without a MsgSnap");
    assert.equal(a.bufferedBytes, 0);
  } finally {
    a.close();
  }
});

Deno.test("snapshot streams: at most 32 at once", () => {
  const a = new SnapshotAssembler(1 << 20, 60_000);
  try {
    for (let i = 0; i < 32; i++) a.addChunk(`s${i}`, 0, new Uint8Array(1));
    throwsCode(() => a.addChunk("s32", 0, new Uint8Array(1)), "ServerIsBusy", "a 33rd stream");
    assert.equal(a.bufferedBytes, 32);
  } finally {
    a.close();
  }
});

Deno.test("snapshot streams: a stalled stream expires and its memory is released", async () => {
  const a = new SnapshotAssembler(10_000, 50);
  try {
    a.addChunk("stalled", 0, new Uint8Array(4_000));
    assert.equal(a.bufferedBytes, 4_000);
    const deadline = Date.now() + 5_000;
    while (a.expired === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(a.expired, 1, "expired");
    assert.equal(a.bufferedBytes, 0, "released on expiry");
    throwsCode(
      () => a.addChunk("stalled", 1, new Uint8Array(1)),
      "BadRequest",
      "an expired stream does not resume",
    );
  } finally {
    a.close();
  }
});
