/** CBOR encodings: round trips, and decoders that refuse malformed input. */
import assert from "node:assert/strict";
import { encode } from "cborg";
import {
  decodeConfChange,
  decodeConfChangeEntry,
  decodeConfChangeV2,
  decodeEntry,
  decodeMessage,
  encodeConfChange,
  encodeConfChangeV2,
  encodeEntry,
  encodeMessage,
} from "./codec.ts";
import { DecodeError } from "./errors.ts";
import { type ConfChangeV2, type ConfState, type Message, newMessage } from "./types.ts";

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

Deno.test("ConfChangeV2 round-trips and travels in its own entry type", () => {
  const ccs: ConfChangeV2[] = [
    {
      transition: "JointExplicit",
      changes: [{ type: "AddNode", nodeId: 4 }, { type: "AddLearnerNode", nodeId: 3 }],
      context: new Uint8Array([7]),
    },
    { transition: "Auto", changes: [{ type: "RemoveNode", nodeId: 2 }], context: undefined },
    { transition: "JointImplicit", changes: [{ type: "AddNode", nodeId: 9 }], context: undefined },
    { transition: "Auto", changes: [], context: undefined }, // leave joint
  ];
  for (const cc of ccs) {
    assert.deepEqual(decodeConfChangeV2(encodeConfChangeV2(cc)), cc);
    const e = { term: 3, index: 9, type: "ConfChangeV2" as const, data: encodeConfChangeV2(cc) };
    assert.deepEqual(decodeEntry(encodeEntry(e)), e);
    assert.deepEqual(decodeConfChangeEntry(e), cc);
  }
  const v1 = { type: "AddNode" as const, nodeId: 2, context: undefined };
  assert.deepEqual(
    decodeConfChangeEntry({ term: 1, index: 1, type: "ConfChange", data: encodeConfChange(v1) }),
    v1,
  );
  assert.throws(
    () => decodeConfChangeEntry({ term: 1, index: 1, type: "Normal", data: new Uint8Array() }),
    DecodeError,
  );
});

Deno.test("snapshots carry joint configurations; non-joint ones keep the short encoding", () => {
  const joint: ConfState = {
    voters: [1, 2, 4],
    learners: [5],
    votersOutgoing: [1, 2, 3],
    learnersNext: [3],
    autoLeave: true,
  };
  const m = newMessage({
    type: "MsgSnap",
    to: 3,
    from: 1,
    term: 2,
    snapshot: { metadata: { index: 10, term: 2, confState: joint }, data: new Uint8Array([1]) },
  });
  assert.deepEqual(decodeMessage(encodeMessage(m)), m);
  const short = full.snapshot!.metadata.confState;
  assert.equal(short.votersOutgoing, undefined);
  assert.deepEqual(decodeMessage(encodeMessage(full)).snapshot!.metadata.confState, short);
});

Deno.test("malformed ConfChangeV2 and configurations throw DecodeError", () => {
  const badV2: [string, unknown][] = [
    ["wrong arity", [1, 0, []]],
    ["bad version", [2, 0, [], null]],
    ["unknown transition", [1, 3, [[0, 1]], null]],
    ["changes not an array", [1, 0, 5, null]],
    ["change arity", [1, 0, [[0, 1, 2]], null]],
    ["unknown change type", [1, 0, [[3, 1]], null]],
    ["node id 0", [1, 0, [[0, 0]], null]],
    ["negative node id", [1, 0, [[0, -4]], null]],
    ["float node id", [1, 0, [[0, 1.5]], null]],
    ["leave with an explicit transition", [1, 2, [], null]],
    ["context not bytes", [1, 0, [], "x"]],
  ];
  for (const [what, v] of badV2) {
    assert.throws(() => decodeConfChangeV2(encode(v)), DecodeError, what);
  }
  assert.throws(() => decodeConfChangeV2(new Uint8Array()), DecodeError, "empty data");
  const snap = (cs: unknown) =>
    encode([1, 9, 3, 1, 2, 0, 0, [], 0, [10, 2, cs, new Uint8Array()], false, 0, null]);
  const badCs: [string, unknown][] = [
    ["three fields", [[1], [], [1]]],
    ["joint form without outgoing voters", [[1], [], [], [], false]],
    ["voter and learner", [[1, 2], [2]]],
    ["duplicate voter", [[1, 1], []]],
    ["voter id 0", [[0], []]],
    ["learnersNext not outgoing", [[1], [], [1, 2], [3], false]],
    ["learnersNext an incoming voter", [[1, 2], [], [1, 2], [2], false]],
    ["outgoing voter and learner", [[1], [2], [1, 2], [], false]],
    ["joint without incoming voters", [[], [], [1], [], false]],
    ["autoLeave not bool", [[1], [], [1, 2], [], 1]],
  ];
  for (const [what, cs] of badCs) assert.throws(() => decodeMessage(snap(cs)), DecodeError, what);
  assert.doesNotThrow(() => decodeMessage(snap([[1, 2, 4], [], [1, 2, 3], [3], true])));
});
