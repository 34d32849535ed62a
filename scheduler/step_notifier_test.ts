/** The `wait_steps` long poll: answered at once when a store's region gets an operator. */
import assert from "node:assert/strict";
import { decodeWaitStepsResponse } from "../proto/pdpb.ts";
import { encodeCbor } from "../proto/codec.ts";
import { admin, openTestApp, rpc, rpcRaw } from "./_test_app.ts";
import { heartbeat, region, voter } from "./_test_cluster.ts";
import { MAX_PENDING_PER_STORE, StepNotifier } from "./step_notifier.ts";

Deno.test("a waiting store hears of its regions' new operators at once; others time out empty", async () => {
  const n = new StepNotifier();
  const waiting = n.wait(1, 10_000);
  n.notify(2, 20);
  n.notify(1, 10);
  n.notify(1, 11);
  assert.deepEqual(await waiting, [10], "answered by the first notification");
  assert.deepEqual(await n.wait(1, 10_000), [11], "the next call gets what came meanwhile");
  assert.deepEqual(await n.wait(3, 5), [], "nothing for store 3: empty after the timeout");
  assert.deepEqual(await n.wait(2, 10_000), [20]);
  const older = n.wait(2, 10_000);
  const newer = n.wait(2, 10_000);
  assert.deepEqual(await older, [], "a newer call from the same store answers the older one");
  n.notify(2, 21);
  assert.deepEqual(await newer, [21]);
  for (let i = 0; i < MAX_PENDING_PER_STORE + 5; i++) n.notify(5, 1000 + i);
  assert.equal(
    (await n.wait(5, 10_000)).length,
    5,
    "a store that never calls costs bounded memory",
  );
  const held = n.wait(4, 10_000);
  n.close();
  assert.deepEqual(await held, [], "closing answers every held call");
  assert.deepEqual(await n.wait(4, 10_000), [], "and later calls return at once");
});

Deno.test("wait_steps: an admin operator on a region wakes its leader's store", async () => {
  const t = await openTestApp();
  for (const id of [1, 2]) {
    await rpc(t.app, "put_store", { store: { id, address: `127.0.0.1:${id}` } });
  }
  t.cluster.handleRegionHeartbeat(
    heartbeat(region(10, "", "", { confVer: 1, version: 1 }, [voter(11, 2), voter(12, 1)])),
  );
  const waiting = rpc(t.app, "wait_steps", { storeId: 2, timeoutMs: 10_000 });
  const op = await admin(t.app, "POST", "/operators", {
    name: "transfer-leader",
    region_id: 10,
    to_store_id: 1,
  });
  assert.equal(op.status, 201);
  assert.deepEqual(decodeWaitStepsResponse(await waiting).regionIds, [10]);
  const unknown = await rpcRaw(t.app, "wait_steps", encodeCbor({ storeId: 99, timeoutMs: 10 }));
  assert.equal(unknown.status, 404);
  await t.close();
});
