/** Store states: Up → Disconnected → Down by silence; Offline/Tombstone by the transition table. */
import assert from "node:assert/strict";
import { MrkvError } from "../proto/errors.ts";
import { isStoreRemoved } from "../proto/pdpb.ts";
import { openTestCluster } from "./_test_cluster.ts";
import { STORE_TRANSITIONS } from "./store_info.ts";

const stats = (storeId: number) => ({
  storeId,
  capacity: 100,
  available: 50,
  usedSize: 50,
  regionCount: 0,
  leaderCount: 0,
  sendingSnapCount: 0,
  receivingSnapCount: 0,
  isBusy: false,
});

/** Four stores that have each heartbeat once; `report` heartbeats with unreachable stores. */
async function fourStores() {
  const t = await openTestCluster({ storeDisconnectTime: 3_000 });
  const c = t.cluster;
  for (const id of [1, 2, 3, 4]) await c.putStore({ id, address: `127.0.0.1:${id}` });
  const report = (id: number, unreachableStores: number[]) =>
    c.handleStoreHeartbeat({ ...stats(id), unreachableStores });
  for (const id of [1, 2, 3, 4]) report(id, []);
  return { t, c, report };
}

Deno.test("a silent store becomes Disconnected after store-disconnect-time, then Down; a heartbeat brings it back Up", async () => {
  const t = await openTestCluster({ maxStoreDownTime: 60_000, storeDisconnectTime: 2_000 });
  const c = t.cluster;
  await c.putStore({ id: 1, address: "127.0.0.1:1" });
  c.handleStoreHeartbeat(stats(1));
  assert.equal(c.stateName(c.getStore(1)), "Up");
  t.clock.advance(2_000);
  assert.equal(c.stateName(c.getStore(1)), "Up", "exactly the threshold is still Up");
  t.clock.advance(1);
  assert.equal(c.stateName(c.getStore(1)), "Disconnected");
  t.clock.advance(60_000);
  assert.equal(c.stateName(c.getStore(1)), "Down");
  c.handleStoreHeartbeat(stats(1));
  assert.equal(c.stateName(c.getStore(1)), "Up");
  await t.close();
});

Deno.test("Offline and Tombstone follow the transition table and persist", async () => {
  const t = await openTestCluster();
  const c = t.cluster;
  await c.putStore({ id: 1, address: "127.0.0.1:1" });
  await assert.rejects(c.setStoreState(1, "Tombstone"), MrkvError, "Up cannot jump to Tombstone");
  await c.setStoreState(1, "Offline");
  assert.equal(c.stateName(c.getStore(1)), "Offline");
  await c.setStoreState(1, "Up");
  await c.setStoreState(1, "Offline");
  await c.setStoreState(1, "Tombstone");
  await assert.rejects(c.setStoreState(1, "Up"), /cannot go from Tombstone to Up/);
  // The refusal says so in a field, which the store acts on (it stops instead of retrying).
  await assert.rejects(c.putStore({ id: 1, address: "127.0.0.1:1" }), isStoreRemoved);
  assert.throws(() => c.handleStoreHeartbeat(stats(1)), isStoreRemoved);
  assert.deepEqual(STORE_TRANSITIONS.Tombstone, []);
  await c.close();
  const again = await openTestCluster({}, t.kv);
  assert.equal(again.cluster.getStore(1).state, "Tombstone");
  await again.close();
  t.kv.close();
});

Deno.test("stores are refused on a taken address and unknown stores are StoreNotFound", async () => {
  const t = await openTestCluster();
  const c = t.cluster;
  await c.putStore({ id: 1, address: "127.0.0.1:1" });
  await c.putStore({ id: 1, address: "127.0.0.1:1" }); // a restart re-registers
  await assert.rejects(c.putStore({ id: 2, address: "127.0.0.1:1" }), /already used by store 1/);
  assert.throws(
    () => c.handleStoreHeartbeat(stats(9)),
    (e) => e instanceof MrkvError && e.code === "StoreNotFound",
  );
  await t.close();
});

Deno.test("a drained Offline store becomes Tombstone on the next schedule run", async () => {
  const { Coordinator } = await import("./coordinator.ts");
  const t = await openTestCluster();
  const c = t.cluster;
  await c.putStore({ id: 1, address: "127.0.0.1:1" });
  await c.setStoreState(1, "Offline");
  await new Coordinator(c, []).tick();
  assert.equal(c.getStore(1).state, "Tombstone");
  await t.close();
});

Deno.test("an Up store most other live stores cannot reach is Disconnected at once; it is Up again once they can", async () => {
  const { t, c, report } = await fourStores();
  report(1, [4]);
  assert.equal(c.stateName(c.getStore(4)), "Up", "one store of three is no majority");
  report(2, [4]);
  assert.equal(c.stateName(c.getStore(4)), "Disconnected", "two of three");
  assert.equal(c.unusableTarget(4), "Disconnected");
  assert.equal(c.stateName(c.getStore(1)), "Up", "the reporters themselves are fine");
  // The others stop reporting it (nothing more to send it): it stays Disconnected until it
  // heartbeats itself.
  t.clock.advance(1);
  report(1, []);
  report(2, []);
  report(3, []);
  assert.equal(c.stateName(c.getStore(4)), "Disconnected", "reports faded, store 4 still silent");
  t.clock.advance(1);
  report(4, []);
  assert.equal(c.stateName(c.getStore(4)), "Up", "store 4 heartbeats again");
  report(1, [4]);
  report(2, [4]);
  assert.equal(c.stateName(c.getStore(4)), "Disconnected");
  // Store 4 reporting everyone unreachable (its own network is broken) changes nothing for them.
  report(4, [1, 2, 3]);
  assert.equal(c.stateName(c.getStore(1)), "Up");
  // Reports only count from stores heard from within store-disconnect-time.
  t.clock.advance(3_001);
  for (const id of [3, 4]) report(id, []);
  assert.equal(c.stateName(c.getStore(4)), "Up", "the reporters went silent themselves");
  report(1, []);
  report(2, []);
  assert.equal(c.stateName(c.getStore(4)), "Up");
  await t.close();
});

Deno.test("a majority that reported a store unreachable counts although nobody read its state meanwhile", async () => {
  const { t, c, report } = await fourStores();
  t.clock.advance(1);
  // Two of three report store 4 and stop again before anything asks for its state.
  report(1, [4]);
  report(2, [4]);
  t.clock.advance(1);
  report(1, []);
  report(2, []);
  assert.equal(c.stateName(c.getStore(4)), "Disconnected", "store 4 has been silent since");
  assert.equal(c.stateName(c.getStore(4)), "Disconnected", "reading the state changes nothing");
  t.clock.advance(1);
  report(4, []);
  assert.equal(c.stateName(c.getStore(4)), "Up");
  await t.close();
});
