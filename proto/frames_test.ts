import assert from "node:assert/strict";
import { frame, FrameReader } from "./frames.ts";

Deno.test("frames are split out of a byte stream whatever the chunking, and an oversized one is refused", () => {
  const payloads = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(300).fill(7)];
  const wire = new Uint8Array(payloads.reduce((n, p) => n + 4 + p.length, 0));
  let at = 0;
  for (const p of payloads) {
    wire.set(frame(p), at);
    at += 4 + p.length;
  }
  for (const size of [1, 2, 3, 5, 64, wire.length]) {
    const reader = new FrameReader(1000);
    const got: Uint8Array[] = [];
    for (let off = 0; off < wire.length; off += size) {
      got.push(...reader.push(wire.subarray(off, off + size)));
    }
    assert.deepEqual(got, payloads, `chunks of ${size} bytes`);
    assert.equal(reader.pendingBytes, 0);
  }
  const reader = new FrameReader(100);
  assert.throws(() => reader.push(frame(new Uint8Array(101))), /frame of 101 bytes; at most 100/);
});
