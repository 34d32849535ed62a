/**
 * The scheduler over real HTTP on 127.0.0.1: start on port 0, use it like a store, stop,
 * restart on the same data dir, and find everything still there, with IDs still rising. Then
 * `main.ts --role scheduler` as a real process, stopped by SIGTERM with exit code 0.
 */
import assert from "node:assert/strict";
import { type Config, parseCommandLine } from "../config/config.ts";
import { CBOR_CONTENT_TYPE, decodeCbor, encodeCbor } from "../proto/codec.ts";
import {
  decodeAllocIdResponse,
  decodeBootstrapResponse,
  decodeRegionHeartbeatResponse,
  RPC_PREFIX,
} from "../proto/pdpb.ts";
import { PdClient } from "../proto/pd_client.ts";
import { b } from "./_test_cluster.ts";
import { startScheduler } from "./server.ts";

function config(dataDir: string, addr = "127.0.0.1:0"): Config {
  const r = parseCommandLine([
    "--role",
    "scheduler",
    "--addr",
    "127.0.0.1:1",
    "--data-dir",
    dataDir,
    "--log-level",
    "error",
  ]);
  assert.ok(!r.help);
  return { ...r.config, addr };
}

async function call(addr: string, method: string, body: unknown): Promise<unknown> {
  const res = await fetch(`http://${addr}${RPC_PREFIX}/${method}`, {
    method: "POST",
    body: encodeCbor(body),
    headers: { "content-type": CBOR_CONTENT_TYPE },
  });
  if (!res.ok) throw new Error(`${method}: ${res.status} ${await res.text()}`);
  return decodeCbor(new Uint8Array(await res.arrayBuffer()));
}

async function getJson(addr: string, path: string) {
  const res = await fetch(`http://${addr}${path}`);
  return { status: res.status, json: await res.json() };
}

Deno.test("a restart on the same data dir keeps cluster, stores, regions, config and schedulers, and never reuses an ID", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-scheduler-" });
  let s = await startScheduler(config(dir), { runCoordinator: false });
  const ids: number[] = [];
  const alloc = async (count: number) => {
    const r = decodeAllocIdResponse(await call(s.addr, "alloc_id", { count }));
    for (let i = 0; i < count; i++) ids.push(r.firstId + i);
  };
  await alloc(1);
  const boot = decodeBootstrapResponse(
    await call(s.addr, "bootstrap", { store: { id: ids[0], address: "127.0.0.1:20161" } }),
  );
  await alloc(1);
  await call(s.addr, "put_store", { store: { id: ids[1], address: "127.0.0.1:20162" } });
  const left = {
    id: 1,
    startKey: new Uint8Array(),
    endKey: b("m"),
    epoch: { confVer: 1, version: 2 },
    peers: boot.region.peers,
  };
  await alloc(5);
  const right = {
    id: ids[2],
    startKey: b("m"),
    endKey: new Uint8Array(),
    epoch: { confVer: 1, version: 2 },
    peers: [{ id: ids[3], storeId: ids[0], role: "Voter" }],
  };
  const hb = decodeRegionHeartbeatResponse(
    await call(s.addr, "region_heartbeat", {
      heartbeats: [{ region: left, leader: left.peers[0] }, {
        region: right,
        leader: right.peers[0],
      }],
    }),
  );
  assert.equal(hb.results.length, 0);
  assert.equal(
    (await fetch(`http://${s.addr}/pd/api/v1/schedulers/balance-leader-scheduler`, {
      method: "DELETE",
    })).status,
    200,
  );
  await fetch(`http://${s.addr}/pd/api/v1/config`, {
    method: "POST",
    body: JSON.stringify({ leader_schedule_limit: 9 }),
  });
  const before = await getJson(s.addr, "/pd/api/v1/regions");
  const clusterId = s.cluster.clusterId;
  await s.stop();
  await s.finished;

  s = await startScheduler(config(dir), { runCoordinator: false });
  const boot2 = await new PdClient(`http://${s.addr}`).isBootstrapped(); // proto's client, real fetch
  assert.deepEqual(boot2, { clusterId, bootstrapped: true });
  const stores = await getJson(s.addr, "/pd/api/v1/stores");
  assert.deepEqual(stores.json.stores.map((x: { store: { id: number } }) => x.store.id), [
    ids[0],
    ids[1],
  ]);
  const after = await getJson(s.addr, "/pd/api/v1/regions");
  assert.deepEqual(
    after.json.regions.map((r: { id: number; epoch: unknown }) => [r.id, r.epoch]),
    before.json.regions.map((r: { id: number; epoch: unknown }) => [r.id, r.epoch]),
  );
  assert.equal((await getJson(s.addr, "/pd/api/v1/region/key/z")).json.id, ids[2]);
  assert.deepEqual((await getJson(s.addr, "/pd/api/v1/schedulers")).json, [
    "balance-region-scheduler",
    "hot-region-scheduler",
  ]);
  assert.equal((await getJson(s.addr, "/pd/api/v1/config")).json.leader_schedule_limit, 9);
  const refused = await fetch(`http://${s.addr}${RPC_PREFIX}/bootstrap`, {
    method: "POST",
    body: encodeCbor({ store: { id: 555, address: "127.0.0.1:20555" } }),
    headers: { "content-type": CBOR_CONTENT_TYPE },
  });
  assert.equal(refused.status, 400);
  await refused.body?.cancel();
  const maxBefore = Math.max(...ids);
  await alloc(3);
  assert.ok(
    ids.slice(-3).every((id) => id > maxBefore),
    "IDs after restart are above every earlier one",
  );
  assert.equal(new Set(ids).size, ids.length);
  await s.stop();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("main.ts --role scheduler runs as a process and exits 0 on SIGTERM", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-scheduler-" });
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const main = new URL("../main.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      main,
      "--role",
      "scheduler",
      "--addr",
      `127.0.0.1:${port}`,
      "--data-dir",
      dir,
      "--log-level",
      "error",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const deadline = Date.now() + 30_000;
  let up = false;
  while (!up && Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/status`);
      up = res.ok && (await res.json()).role === "scheduler";
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  assert.ok(up, "the scheduler answered /status");
  child.kill("SIGTERM");
  const status = await child.status;
  const err = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
  assert.equal(status.code, 0, `exit code ${status.code}: ${err}`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("with its timer running, the scheduler sends the replica checker's step within a few intervals", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-scheduler-" });
  const s = await startScheduler({ ...config(dir), scheduleIntervalMs: 20 });
  const pd = new PdClient(`http://${s.addr}`);
  const ids = await pd.allocIds(2);
  const { region } = await pd.bootstrap({ id: ids.firstId, address: "127.0.0.1:20161" });
  await pd.putStore({ id: ids.firstId + 1, address: "127.0.0.1:20162" });
  const hb = {
    region,
    leader: region.peers[0]!,
    pendingPeers: [],
    downPeers: [],
    approximateSize: 0,
    approximateKeys: 0,
  };
  const deadline = Date.now() + 10_000;
  let step;
  while (!step && Date.now() < deadline) {
    step = (await pd.regionHeartbeat([hb])).results[0]?.step;
    if (!step) await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(step?.type === "AddLearner" && step.peer.storeId === ids.firstId + 1);
  await s.stop();
  await Deno.remove(dir, { recursive: true });
});
