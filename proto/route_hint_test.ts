import assert from "node:assert/strict";
import {
  decodeRouteHint,
  encodeRouteHint,
  MAX_HINT_KEY_BYTES,
  type RouteHint,
} from "./route_hint.ts";

const enc = new TextEncoder();

const hint: RouteHint = {
  regionId: 12,
  version: 3,
  start: enc.encode("m"),
  end: enc.encode("t\xff"),
  leaderStoreId: 4,
  leaderUrl: "http://127.0.0.1:20162",
};

Deno.test("a route hint survives its header: bounded and unbounded ranges", () => {
  const text = encodeRouteHint(hint)!;
  assert.equal(text, "12 3 6d 74c3bf 4 http://127.0.0.1:20162");
  assert.deepEqual(decodeRouteHint(text), hint);

  const whole = { ...hint, start: new Uint8Array(0), end: new Uint8Array(0) };
  assert.equal(encodeRouteHint(whole), "12 3 - - 4 http://127.0.0.1:20162");
  assert.deepEqual(decodeRouteHint(encodeRouteHint(whole)!), whole);

  const tls = { ...hint, leaderUrl: "https://[::1]:443" };
  assert.deepEqual(decodeRouteHint(encodeRouteHint(tls)!), tls);
});

Deno.test("a region key too long for a header makes no hint", () => {
  const long = new Uint8Array(MAX_HINT_KEY_BYTES + 1).fill(0x61);
  assert.equal(encodeRouteHint({ ...hint, start: long }), undefined);
  assert.equal(encodeRouteHint({ ...hint, end: long }), undefined);
  const atLimit = long.subarray(0, MAX_HINT_KEY_BYTES);
  assert.ok(encodeRouteHint({ ...hint, start: new Uint8Array(0), end: atLimit }));
});

Deno.test("a malformed hint is no hint: the client routes as if it had none", () => {
  for (
    const bad of [
      "",
      "12 3 6d 74 4", // five fields
      "12 3 6d 74 4 http://127.0.0.1:20162 extra",
      "12  3 6d 74 4 http://127.0.0.1:20162", // double space
      "0 3 6d 74 4 http://127.0.0.1:20162", // region 0
      "12 3 6d 74 0 http://127.0.0.1:20162", // store 0
      "x 3 6d 74 4 http://127.0.0.1:20162",
      "12 -1 6d 74 4 http://127.0.0.1:20162",
      "12 3 6 74 4 http://127.0.0.1:20162", // odd hex
      "12 3 6D 74 4 http://127.0.0.1:20162", // upper-case hex
      "12 3 zz 74 4 http://127.0.0.1:20162",
      "12 3 74 6d 4 http://127.0.0.1:20162", // start after end
      "12 3 6d 6d 4 http://127.0.0.1:20162", // empty range
      "12 3 6d 74 4 http://127.0.0.1:20162/kv", // a path
      "12 3 6d 74 4 http://127.0.0.1:20162?x=1",
      "12 3 6d 74 4 ftp://127.0.0.1:20162",
      "12 3 6d 74 4 http://user@127.0.0.1:20162",
      "12 3 6d 74 4 127.0.0.1:20162",
      `12 3 ${"61".repeat(MAX_HINT_KEY_BYTES + 1)} - 4 http://127.0.0.1:20162`,
    ]
  ) {
    assert.equal(decodeRouteHint(bad), undefined, bad);
  }
});
