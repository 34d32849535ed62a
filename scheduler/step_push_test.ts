/**
 * Pushed operator steps (step_push.ts): a poll gets queued steps at once or as soon as one is
 * pushed; a newer step for a region replaces an older one; a newer poll ends an older one
 * without losing steps; closing ends every poll.
 */
import assert from "node:assert/strict";
import { decodeRegionHeartbeatResponse, type RegionHeartbeatResult } from "../proto/pdpb.ts";
import { encodeCbor } from "../proto/codec.ts";
import { admin, openTestApp, rpc, rpcRaw } from "./_test_app.ts";
import { heartbeat, region, voter } from "./_test_cluster.ts";
import { MAX_QUEUED, StepOutbox } from "./step_push.ts";

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

Deno.test("a store that never polls costs bounded memory: the oldest regions' steps are dropped", async () => {
  const o = new StepOutbox();
  for (let i = 0; i < MAX_QUEUED + 5; i++) o.push(5, step(1000 + i));
  const got = await o.wait(5, 5_000);
  assert.equal(got.length, MAX_QUEUED);
  assert.equal(got[0]!.regionId, 1005, "the five oldest went");
  o.close();
});

Deno.test("wait_operator_steps: an admin operator hands its first step to the leader's store at once", async () => {
  const t = await openTestApp();
  for (const id of [1, 2]) {
    await rpc(t.app, "put_store", { store: { id, address: `127.0.0.1:${id}` } });
  }
  t.cluster.handleRegionHeartbeat(
    heartbeat(region(10, "", "", { confVer: 1, version: 1 }, [voter(11, 2), voter(12, 1)])),
  );
  const waiting = rpc(t.app, "wait_operator_steps", { storeId: 2, waitMs: 10_000 });
  const op = await admin(t.app, "POST", "/operators", {
    name: "transfer-leader",
    region_id: 10,
    to_store_id: 1,
  });
  assert.equal(op.status, 201);
  const { results } = decodeRegionHeartbeatResponse(await waiting);
  assert.deepEqual(results.map((r) => [r.regionId, r.step?.type]), [[10, "TransferLeader"]]);
  const unknown = await rpcRaw(
    t.app,
    "wait_operator_steps",
    encodeCbor({ storeId: 99, waitMs: 10 }),
  );
  assert.equal(unknown.status, 404);
  await t.close();
});
