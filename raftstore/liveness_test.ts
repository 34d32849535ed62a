/**
 * Store liveness (liveness.ts): pings only where nothing was sent lately, one report per change
 * (down by silence or by a failed send, up again, restarted), times from a clock that is not
 * the wall clock.
 */
import assert from "node:assert/strict";
import { type LivenessChange, newIncarnation, StoreLiveness } from "./liveness.ts";

function setup() {
  let now = 1000;
  const pinged: number[] = [];
  const changes: [number, LivenessChange][] = [];
  const l = new StoreLiveness(7, 100, 1000, (id) => pinged.push(id), () => now);
  l.onChange = (id, c) => changes.push([id, c]);
  return { l, pinged, changes, advance: (ms: number) => (now += ms) };
}

Deno.test("a store pings only the stores it sent nothing to for a ping interval", () => {
  const { l, pinged, advance } = setup();
  l.tick([2, 3]);
  assert.deepEqual(pinged, [2, 3], "nothing was ever sent: both are pinged");
  advance(50);
  l.tick([2, 3]);
  assert.deepEqual(pinged, [2, 3]);
  advance(60);
  l.sent(2); // real traffic to 2 is as good as a ping
  l.tick([2, 3]);
  assert.deepEqual(pinged, [2, 3, 3]);
  assert.equal(l.pings, 3);
});

Deno.test("silence for the down time makes a store down, once; a batch brings it back up", () => {
  const { l, changes, advance } = setup();
  l.heard(2, 11);
  assert.equal(l.isDown(2), false);
  advance(999);
  l.tick([2]);
  assert.deepEqual(changes, []);
  advance(1);
  l.tick([2]);
  l.tick([2]);
  assert.deepEqual(changes, [[2, "down"]]);
  assert.ok(l.isDown(2));
  assert.equal(l.heardAt(2), 1000, "when it was last heard from");
  l.heard(2, 11);
  assert.deepEqual(changes, [[2, "down"], [2, "up"]]);
  assert.equal(l.isDown(2), false);
});

Deno.test("a failed send makes a store down until it is heard from", () => {
  const { l, changes } = setup();
  l.unreachable(3); // never heard from
  l.unreachable(3);
  assert.deepEqual(changes, [[3, "down"]]);
  assert.equal(l.heardAt(3), undefined);
  l.heard(3, 5);
  assert.deepEqual(changes, [[3, "down"], [3, "up"]]);
  l.unreachable(3);
  assert.deepEqual(changes.at(-1), [3, "down"]);
});

Deno.test("a new incarnation is a restart, reported even if the store never looked down", () => {
  const { l, changes } = setup();
  l.heard(2, 11);
  l.heard(2, 11);
  l.heard(2, undefined); // a sender that does not say: no news either way
  assert.deepEqual(changes, []);
  assert.equal(l.incarnationOf(2), 11);
  l.heard(2, 12);
  assert.deepEqual(changes, [[2, "restarted"]]);
  assert.equal(l.incarnationOf(2), 12);
});

Deno.test("incarnations are random and never 0", () => {
  const seen = new Set(Array.from({ length: 100 }, newIncarnation));
  assert.ok(seen.size > 95);
  assert.ok(![...seen].some((x) => x === 0 || !Number.isSafeInteger(x)));
});
