/** CBOR encodings: round trips, and decoders that refuse malformed input. */
import assert from "node:assert/strict";
import { encode } from "cborg";
import {
  decodeConfChange,
  decodeEntry,
  decodeMessage,
  encodeConfChange,
  encodeEntry,
  encodeMessage,
} from "./codec.ts";
import { DecodeError } from "./errors.ts";
import { type Message, newMessage } from "./types.ts";

const full: Message = newMessage({
  type: "MsgSnap",
  to: 2,
  from: 1,
  term: 7,
  logTerm: 6,
  index: 100,
  entries: [
    { term: 7, index: 101, type: "Normal", data: new Uint8Array([1, 2, 3]) },
    {
      term: 7,
      index: 102,
      type: "ConfChange",
      data: encodeConfChange({ type: "AddLearnerNode", nodeId: 4 }),
    },
  ],
  commit: 99,
  snapshot: {
    metadata: { index: 90, term: 5, confState: { voters: [1, 2, 3], learners: [4] } },
    data: new Uint8Array(1000).fill(9),
  },
  reject: true,
  rejectHint: 42,
  context: new Uint8Array([8]),
});

Deno.test("messages, entries and conf changes round-trip", () => {
  assert.deepEqual(decodeMessage(encodeMessage(full)), full);
  const small = newMessage({ type: "MsgHeartbeat", to: 3, from: 1, term: 2 });
  assert.deepEqual(decodeMessage(encodeMessage(small)), { ...small, entries: [] });
  const e = full.entries[0]!;
  assert.deepEqual(decodeEntry(encodeEntry(e)), e);
  const cc = { type: "RemoveNode" as const, nodeId: 3, context: new Uint8Array([1]) };
  assert.deepEqual(decodeConfChange(encodeConfChange(cc)), cc);
  assert.deepEqual(decodeConfChange(encodeConfChange({ type: "AddNode", nodeId: 2 })), {
    type: "AddNode",
    nodeId: 2,
    context: undefined,
  });
});

Deno.test("the encoding is compact", () => {
  const hb = newMessage({ type: "MsgHeartbeat", to: 3, from: 1, term: 2, commit: 10 });
  assert.ok(encodeMessage(hb).byteLength <= 20, `${encodeMessage(hb).byteLength} bytes`);
});

Deno.test("decoders throw DecodeError on malformed input", () => {
  const bad: [string, Uint8Array][] = [
    ["not CBOR", new Uint8Array([0xff, 0x00])],
    ["not an array", encode({ a: 1 })],
    ["wrong arity", encode([1, 2, 3])],
    ["bad version", encode([2, 10, 1, 2, 3, 0, 0, [], 0, null, false, 0, null])],
    ["unknown type", encode([1, 99, 1, 2, 3, 0, 0, [], 0, null, false, 0, null])],
    ["negative id", encode([1, 10, -1, 2, 3, 0, 0, [], 0, null, false, 0, null])],
    ["unsafe integer", encode([1, 10, 2 ** 60, 2, 3, 0, 0, [], 0, null, false, 0, null])],
    ["float", encode([1, 10, 1.5, 2, 3, 0, 0, [], 0, null, false, 0, null])],
    ["string as bytes", encode([1, 10, 1, 2, 3, 0, 0, [[1, 1, 0, "x"]], 0, null, false, 0, null])],
    ["reject not bool", encode([1, 10, 1, 2, 3, 0, 0, [], 0, null, 1, 0, null])],
    ["bad snapshot", encode([1, 10, 1, 2, 3, 0, 0, [], 0, [1, 2], false, 0, null])],
  ];
  for (const [what, b] of bad) assert.throws(() => decodeMessage(b), DecodeError, what);
  assert.throws(() => decodeConfChange(encode([1, 0, 0, null])), DecodeError, "node id 0");
  assert.throws(() => decodeConfChange(encode([1, 7, 1, null])), DecodeError, "unknown cc type");
  assert.throws(
    () => decodeEntry(encode([1, 1, 1, 5, new Uint8Array()])),
    DecodeError,
    "entry type",
  );
});
