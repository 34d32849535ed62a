/**
 * Pushed operator steps (step_push.ts): a poll gets queued steps at once or as soon as one is
 * pushed; a newer step for a region replaces an older one; a newer poll ends an older one
 * without losing steps; closing ends every poll.
 */
import assert from "node:assert/strict";
import type { RegionHeartbeatResult } from "../proto/pdpb.ts";
import { StepOutbox } from "./step_push.ts";

const peer = { id: 5, storeId: 2, role: "Voter" as const };
const step = (regionId: number, storeId = 2): RegionHeartbeatResult => ({
  regionId,
  step: { type: "TransferLeader", peer: { ...peer, storeId } },
  epoch: { confVer: 1, version: 1 },
});

Deno.test("a waiting poll is answered as soon as a step for its store is pushed", async () => {
  const o = new StepOutbox();
  const t0 = performance.now();
  const poll = o.wait(1, 5_000);
  setTimeout(() => o.push(1, step(10)), 20);
  assert.deepEqual((await poll).map((r) => r.regionId), [10]);
  assert.ok(performance.now() - t0 < 1_000);
  assert.equal(o.pushed, 1);
  o.close();
});

Deno.test("steps queued before a poll are handed over at once, newest per region, per store", async () => {
  const o = new StepOutbox();
  o.push(1, step(10, 3));
  o.push(1, step(11));
  o.push(1, step(10, 4)); // replaces the first
  o.push(2, step(12));
  const got = await o.wait(1, 5_000);
  assert.deepEqual(got.map((r) => r.regionId), [11, 10]);
  assert.equal((got[1]!.step as { peer: { storeId: number } }).peer.storeId, 4);
  assert.deepEqual((await o.wait(2, 5_000)).map((r) => r.regionId), [12]);
  o.close();
});

Deno.test("a poll with nothing to hand over ends empty after its wait", async () => {
  const o = new StepOutbox();
  const t0 = performance.now();
  assert.deepEqual(await o.wait(1, 50), []);
  assert.ok(performance.now() - t0 >= 45);
  o.close();
});

Deno.test("a newer poll of a store ends the older one empty; pushed steps go to the newer", async () => {
  const o = new StepOutbox();
  const first = o.wait(1, 5_000);
  const second = o.wait(1, 5_000);
  assert.deepEqual(await first, []);
  o.push(1, step(20));
  assert.deepEqual((await second).map((r) => r.regionId), [20]);
  o.close();
});

Deno.test("closing ends every poll and ignores later pushes", async () => {
  const o = new StepOutbox();
  const polls = [o.wait(1, 30_000), o.wait(2, 30_000)];
  o.close();
  assert.deepEqual(await Promise.all(polls), [[], []]);
  o.push(1, step(1));
  assert.deepEqual(await o.wait(1, 30_000), []);
});
