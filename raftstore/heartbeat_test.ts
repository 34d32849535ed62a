/**
 * The heartbeat worker against a fake scheduler: stores its Raft messages could not reach are
 * reported for a short window, and a Tombstone answer stops the worker and tells its owner.
 */
import assert from "node:assert/strict";
import type { PdClient } from "../proto/pd_client.ts";
import { storeRemovedError, type StoreStats } from "../proto/pdpb.ts";
import { KvEngine } from "../storage/mod.ts";
import { RaftLogEngine } from "../storage/raft_log/engine.ts";
import { HeartbeatWorker, unreachableWindowMs } from "./heartbeat.ts";
import { Store, type StoreConfig } from "./store.ts";

const TEST_STORE_CONFIG: StoreConfig = {
  raftTickMs: 50,
  heartbeatTicks: 2,
  electionTicks: 10,
  regionMaxSize: 96 << 20,
  regionSplitSize: 64 << 20,
  splitCheckMs: 100,
  raftLogGcCountLimit: 10_000,
  schedulerHeartbeatMs: 100,
};

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

/** A scheduler client that records store heartbeats and answers with `answer`. */
function fakeClient(answer: () => void): { client: PdClient; sent: StoreStats[] } {
  const sent: StoreStats[] = [];
  const client = {
    storeHeartbeat: (stats: StoreStats) => {
      sent.push(stats);
      answer();
      return Promise.resolve(1);
    },
    regionHeartbeat: () => Promise.resolve({ results: [] }),
  } as unknown as PdClient;
  return { client, sent };
}

Deno.test("stores that Raft could not reach lately are listed in the store heartbeat, then dropped", async () => {
  const engine = await KvEngine.openInMemory();
  const raftLog = await RaftLogEngine.openInMemory();
  const store = new Store(1, engine, raftLog, TEST_STORE_CONFIG, quiet);
  const { client, sent } = fakeClient(() => {});
  const worker = new HeartbeatWorker(
    store,
    client,
    () => ({ capacity: 0, available: 0, usedSize: 0 }),
  );
  store.onStoreUnreachable(4);
  await worker.tick();
  assert.deepEqual(sent.at(-1)?.unreachableStores, [4]);
  store.unreachableAt.set(
    4,
    Date.now() - unreachableWindowMs(TEST_STORE_CONFIG.schedulerHeartbeatMs) - 1,
  );
  await worker.tick();
  assert.deepEqual(sent.at(-1)?.unreachableStores, [], "a store not failing any more drops out");
  engine.close();
  await raftLog.close();
});

Deno.test("a Tombstone answer stops the worker and tells its owner once", async () => {
  const engine = await KvEngine.openInMemory();
  const raftLog = await RaftLogEngine.openInMemory();
  const store = new Store(1, engine, raftLog, TEST_STORE_CONFIG, quiet);
  const { client, sent } = fakeClient(() => {
    throw storeRemovedError(1);
  });
  const worker = new HeartbeatWorker(
    store,
    client,
    () => ({ capacity: 0, available: 0, usedSize: 0 }),
  );
  const told: string[] = [];
  worker.onRemoved = (e) => told.push(e.message);
  await worker.tick();
  await worker.tick();
  assert.deepEqual(told, [storeRemovedError(1).message]);
  assert.equal(sent.length, 1, "no heartbeat after the Tombstone answer");
  engine.close();
  await raftLog.close();
});
