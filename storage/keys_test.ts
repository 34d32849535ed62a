import assert from "node:assert/strict";
import { compareBytes, describeKey, encodedKeySize, keyId, Keys, parseChunkKey } from "./keys.ts";
import { chunkKey } from "./keys.ts";

Deno.test("encodedKeySize agrees with what Deno KV accepts at its 2 KiB key limit", async () => {
  // Deno KV rejects keys encoding to more than 2048 bytes; our size must say exactly that.
  const kv = await Deno.openKv(":memory:");
  try {
    const cases = [
      Keys.data(new Uint8Array(2043).fill(7)),
      Keys.data(new Uint8Array(2044).fill(7)),
      Keys.data(new Uint8Array(1021)), // every 0x00 is escaped to two bytes
      Keys.data(new Uint8Array(1022)),
      Keys.raftLog(5, 2 ** 40),
    ];
    for (const key of cases) {
      let accepted = true;
      try {
        await kv.set(key, new Uint8Array(1));
      } catch {
        accepted = false;
      }
      assert.equal(encodedKeySize(key) <= 2048, accepted, describeKey(key));
    }
  } finally {
    kv.close();
  }
});

Deno.test("key builders refuse ids that are not non-negative safe integers", () => {
  assert.throws(() => Keys.raftLog(-1, 1), /invalid region id -1/);
  assert.throws(() => Keys.raftLog(1, 1.5), /invalid raft log index 1.5/);
  assert.throws(() => Keys.hardState(Number.NaN), /invalid region id NaN/);
});

Deno.test("chunk keys parse back into their logical key, version and index", () => {
  const logical = Keys.data(new Uint8Array([0, 1, 2]));
  const parsed = parseChunkKey(chunkKey(logical, 42, 3));
  assert.ok(parsed);
  assert.equal(keyId(parsed.logical), keyId(logical));
  assert.equal(parsed.version, 42);
  assert.equal(parsed.index, 3);
  assert.equal(parseChunkKey(["d", new Uint8Array()]), undefined);
});

Deno.test("keyId tells apart keys that differ only in part types or boundaries", () => {
  assert.notEqual(keyId(["a", 1]), keyId(["a", "1"]));
  assert.notEqual(keyId(["ab", "c"]), keyId(["a", "bc"]));
  assert.notEqual(
    keyId([new Uint8Array([1]), new Uint8Array([2])]),
    keyId([new Uint8Array([1, 2])]),
  );
  assert.equal(keyId(Keys.data(new Uint8Array([9]))), keyId(Keys.data(new Uint8Array([9]))));
});

Deno.test("compareBytes orders bytewise, shorter prefix first", () => {
  const u = (...b: number[]) => new Uint8Array(b);
  assert.ok(compareBytes(u(), u(0)) < 0);
  assert.ok(compareBytes(u(0), u(0, 0)) < 0);
  assert.ok(compareBytes(u(1, 255), u(2)) < 0);
  assert.ok(compareBytes(u(255), u(254, 255)) > 0);
  assert.equal(compareBytes(u(3, 4), u(3, 4)), 0);
});
