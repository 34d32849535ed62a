/** Key-range helpers and the region decoder: bytewise order, +infinity end keys, epochs. */
import assert from "node:assert/strict";
import { MrkvError } from "./errors.ts";
import { compareBytes, decodeRegion, isEpochStale, keyInRegion, rangesOverlap } from "./metapb.ts";

const b = (s: string) => new TextEncoder().encode(s);
const range = (s: string, e: string) => ({ startKey: b(s), endKey: b(e) });

Deno.test("bytes compare bytewise, shorter prefix first", () => {
  assert.ok(compareBytes(b("a"), b("b")) < 0);
  assert.ok(compareBytes(b("ab"), b("a")) > 0);
  assert.equal(compareBytes(b("ab"), b("ab")), 0);
  assert.ok(compareBytes(new Uint8Array([0xff]), b("z")) > 0);
});

Deno.test("keyInRegion treats an empty end key as +infinity", () => {
  assert.ok(keyInRegion(b(""), range("", "")));
  assert.ok(keyInRegion(b("zzz"), range("m", "")));
  assert.ok(!keyInRegion(b("m"), range("a", "m")));
  assert.ok(keyInRegion(b("a"), range("a", "m")));
  assert.ok(!keyInRegion(b("0"), range("a", "m")));
});

Deno.test("ranges overlap unless one ends where the other starts", () => {
  assert.ok(rangesOverlap(range("", ""), range("a", "b")));
  assert.ok(rangesOverlap(range("a", "c"), range("b", "")));
  assert.ok(!rangesOverlap(range("a", "b"), range("b", "c")));
  assert.ok(rangesOverlap(range("", "b"), range("a", "")));
  assert.ok(!rangesOverlap(range("", "a"), range("a", "")));
});

Deno.test("an epoch lower in either field is stale", () => {
  assert.ok(isEpochStale({ confVer: 1, version: 5 }, { confVer: 2, version: 1 }));
  assert.ok(isEpochStale({ confVer: 5, version: 1 }, { confVer: 1, version: 2 }));
  assert.ok(!isEpochStale({ confVer: 2, version: 2 }, { confVer: 2, version: 2 }));
});

Deno.test("decodeRegion checks ranges and peers", () => {
  const r = decodeRegion({ id: 3, startKey: b("a"), endKey: b("b") }, "region");
  assert.deepEqual(r.epoch, { confVer: 0, version: 0 });
  assert.deepEqual(r.peers, []);
  const bad = (v: unknown, re: RegExp) =>
    assert.throws(
      () => decodeRegion(v, "region"),
      (e) => e instanceof MrkvError && re.test(e.message),
    );
  bad({ id: 3, startKey: b("b"), endKey: b("a") }, /startKey >= endKey/);
  bad({ id: 3, peers: [{ id: 1, storeId: 1 }, { id: 2, storeId: 1 }] }, /repeats/);
  bad({ id: 3, peers: [{ id: 1, storeId: 1, role: "Boss" }] }, /role/);
  bad({ id: "3" }, /region\.id must be an integer/);
  bad({ id: 3, epoch: { confVer: -1, version: 0 } }, /confVer/);
});
