/** The CBOR codec and validators: round trips, malformed input as BadRequest, error mapping. */
import assert from "node:assert/strict";
import {
  decodeCbor,
  encodeCbor,
  expectArray,
  expectBytes,
  expectId,
  expectObject,
  expectSafeInt,
  field,
  percentDecodeBytes,
  percentEncodeBytes,
} from "./codec.ts";
import { errorResponse, MrkvError } from "./errors.ts";

function badRequest(fn: () => unknown, pattern: RegExp): void {
  assert.throws(
    fn,
    (e) => e instanceof MrkvError && e.code === "BadRequest" && pattern.test(e.message),
  );
}

Deno.test("CBOR round-trips plain values and bytes", () => {
  const v = { a: 1, b: new Uint8Array([1, 2, 255]), c: [true, null, "x"], d: { e: -5 } };
  assert.deepEqual(decodeCbor(encodeCbor(v)), v);
});

Deno.test("malformed CBOR is a BadRequest, never a crash", () => {
  badRequest(() => decodeCbor(new Uint8Array()), /empty/);
  badRequest(() => decodeCbor(new Uint8Array([0x9b, 0, 0, 0, 1, 0, 0, 0, 0])), /not valid CBOR/);
  badRequest(() => decodeCbor(new Uint8Array(200_000).fill(0x81)), /not valid CBOR/);
  badRequest(() => decodeCbor(new Uint8Array([0xf7])), /CBOR/); // undefined
  badRequest(() => decodeCbor(new Uint8Array([0xa1, 0x01, 0x02])), /CBOR/); // non-string key
});

Deno.test("a __proto__ key on the wire stays inert", () => {
  const bytes = new Uint8Array([
    0xa1,
    0x69,
    ...new TextEncoder().encode("__proto__"),
    0xa1,
    0x62,
    0x69,
    0x64,
    0x07,
  ]);
  const o = expectObject(decodeCbor(bytes), "body");
  assert.equal(Object.getPrototypeOf(o), Object.prototype);
  assert.equal(field(o, "id"), undefined);
});

Deno.test("validators name the field and the problem", () => {
  badRequest(() => expectObject([1], "body"), /^body must be an object, got an array/);
  badRequest(() => expectSafeInt(1.5, "count"), /^count must be an integer/);
  badRequest(() => expectSafeInt(2 ** 60, "count"), /^count must be an integer/);
  badRequest(() => expectSafeInt(9, "count", 1, 5), /^count must be in \[1, 5\]/);
  badRequest(() => expectId(0, "region.id"), /region\.id/);
  badRequest(() => expectBytes("ab", "key"), /^key must be bytes/);
  badRequest(() => expectBytes(new Uint8Array(10), "key", 4), /longer than 4/);
  badRequest(() => expectArray([1, "x"], "ids", expectId), /ids\[1\] must be an integer/);
  badRequest(() => expectArray(new Array(11).fill(1), "ids", expectId, 10), /more than 10/);
});

Deno.test("percent-decoding yields raw bytes", () => {
  assert.deepEqual(percentDecodeBytes("a%ffb%2F"), new Uint8Array([0x61, 0xff, 0x62, 0x2f]));
  assert.deepEqual(percentDecodeBytes("é"), new Uint8Array([0xc3, 0xa9]));
  badRequest(() => percentDecodeBytes("%g1"), /malformed percent escape/);
});

Deno.test("errors map to the spec's status, JSON body and Retry-After", async () => {
  const r = errorResponse(
    new MrkvError("NotLeader", "peer 3 is not the leader", { leader: { id: 4 } }),
  );
  assert.equal(r.status, 503);
  assert.equal(r.headers.get("retry-after"), "1");
  assert.deepEqual(await r.json(), {
    error: { code: "NotLeader", message: "peer 3 is not the leader", leader: { id: 4 } },
  });
  assert.equal(errorResponse(new MrkvError("EpochNotMatch", "x")).status, 409);
  assert.equal(errorResponse(new MrkvError("TooLarge", "x")).status, 413);
  assert.equal(errorResponse(new MrkvError("RegionNotFound", "x")).status, 404);
  const bug = errorResponse(new TypeError("oops"));
  assert.equal(bug.status, 500);
  assert.equal((await bug.json()).error.code, "Internal");
});

Deno.test("percent-encoding a key round-trips through percentDecodeBytes", () => {
  const key = new Uint8Array([0x61, 0x2f, 0x00, 0xff, 0x20, 0x7e]);
  assert.equal(percentEncodeBytes(key), "a%2F%00%FF%20~");
  assert.deepEqual(percentDecodeBytes(percentEncodeBytes(key)), key);
});
