/**
 * Bad input on every route: malformed, truncated, huge and wrong-typed bodies and path
 * parameters. Every answer must be a 4xx with the spec's JSON error — never a
 * 500 or a crash — and a refused request must leave the cluster exactly as it was.
 */
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { encodeCbor } from "../proto/codec.ts";
import { MAX_HEARTBEATS_PER_REQUEST } from "../proto/pdpb.ts";
import { seededRandom } from "./_mock_cluster.ts";
import { admin, openTestApp, rpc, rpcRaw, type TestApp } from "./_test_app.ts";
import { b } from "./_test_cluster.ts";
import { MAX_RPC_BODY } from "./http.ts";

const region1 = {
  id: 1,
  startKey: new Uint8Array(),
  endKey: new Uint8Array(),
  epoch: { confVer: 1, version: 1 },
  peers: [{ id: 3, storeId: 2, role: "Voter" }],
};

const HEARTBEAT = {
  region: region1,
  leader: region1.peers[0],
  pendingPeers: [],
  downPeers: [],
  approximateSize: 1,
  approximateKeys: 1,
  refusedStep: { type: "SplitRegion", reason: "too small" },
};

/** A valid body for every internal method. */
const VALID: Record<string, Record<string, unknown>> = {
  bootstrap: { store: { id: 2, address: "127.0.0.1:20161" } },
  is_bootstrapped: {},
  alloc_id: { count: 1 },
  put_store: { store: { id: 2, address: "127.0.0.1:20161" } },
  store_heartbeat: {
    stats: {
      storeId: 2,
      capacity: 1,
      available: 1,
      usedSize: 0,
      regionCount: 1,
      leaderCount: 1,
      unreachableStores: [3],
    },
  },
  wait_operator_steps: { storeId: 2, waitMs: 1 },
  region_heartbeat: { heartbeats: [HEARTBEAT] },
  ask_split: { region: region1 },
  ask_batch_split: { region: region1, splitCount: 2 },
  get_store: { storeId: 2 },
  get_region: { key: b("k") },
  get_region_by_id: { regionId: 1 },
};

const WRONG: unknown[] = [
  null,
  "x",
  -1,
  0,
  1.5,
  2 ** 60,
  true,
  [],
  [1, 2],
  {},
  new Uint8Array(3),
  { id: "1" },
  "a".repeat(100_000),
];

async function snapshot(t: TestApp): Promise<string> {
  const parts = await Promise.all(
    ["/stores", "/regions", "/operators", "/schedulers", "/config"].map((p) =>
      admin(t.app, "GET", p)
    ),
  );
  return JSON.stringify([
    parts.map((p) => p.json),
    t.cluster.ids.highWaterMark,
    t.cluster.ids.buffered,
    t.cluster.bootstrapped,
  ]).replace(/"last_heartbeat_ts":"[^"]*"/g, "");
}

async function setUp(): Promise<TestApp> {
  const t = await openTestApp();
  await rpc(t.app, "bootstrap", VALID.bootstrap);
  await rpc(t.app, "region_heartbeat", VALID.region_heartbeat);
  return t;
}

/** Sends `req`, checks the answer is a clean 4xx, and that state is unchanged if refused. */
let checked = 0;

async function expectRefusedCleanly(
  t: TestApp,
  what: string,
  send: () => Response | Promise<Response>,
): Promise<void> {
  checked++;
  const before = await snapshot(t);
  const res = await send();
  const text = await res.text();
  assert.ok(res.status < 500, `${what}: status ${res.status}: ${text.slice(0, 300)}`);
  if (res.status >= 400) {
    const body = JSON.parse(text);
    assert.equal(typeof body.error.code, "string", what);
    assert.equal(typeof body.error.message, "string", what);
    assert.equal(await snapshot(t), before, `${what}: state changed by a refused request`);
  }
}

/** Every way to replace one field (at any depth) of `v` with a wrong-typed value. */
function* wrongTyped(v: unknown, path: string[] = []): Generator<[string, unknown]> {
  if (typeof v !== "object" || v === null || v instanceof Uint8Array) return;
  const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v);
  for (const [k, child] of entries) {
    for (const w of WRONG) {
      const copy = structuredClone(v) as Record<string, unknown>;
      copy[k] = w;
      yield [[...path, k].join("."), copy];
    }
    for (const [p, replaced] of wrongTyped(child, [...path, k])) {
      const copy = structuredClone(v) as Record<string, unknown>;
      copy[k] = replaced;
      yield [p, copy];
    }
  }
}

Deno.test("internal API: malformed, truncated, wrong-typed and huge bodies are refused cleanly", async () => {
  const t = await setUp();
  const rnd = seededRandom(5);
  for (const [method, body] of Object.entries(VALID)) {
    const send = (bytes: BodyInit | null, type?: string) => () =>
      rpcRaw(t.app, method, bytes, type);
    const valid = encodeCbor(body);
    await expectRefusedCleanly(t, `${method} empty`, send(null));
    await expectRefusedCleanly(t, `${method} json`, send(JSON.stringify(body), "application/json"));
    await expectRefusedCleanly(t, `${method} no type`, send(valid, "text/plain"));
    await expectRefusedCleanly(t, `${method} not cbor`, send(new Uint8Array([0xff, 0xfe, 0x00])));
    await expectRefusedCleanly(t, `${method} deep`, send(new Uint8Array(100_000).fill(0x81)));
    for (let cut = 1; cut < valid.length; cut += Math.max(1, valid.length >> 3)) {
      await expectRefusedCleanly(t, `${method} truncated at ${cut}`, send(valid.slice(0, cut)));
    }
    for (let i = 0; i < 30; i++) {
      const flipped = valid.slice();
      const at = Math.floor(rnd() * flipped.length);
      flipped[at] = flipped[at]! ^ (1 << Math.floor(rnd() * 8));
      await expectRefusedCleanly(t, `${method} bit flip`, send(flipped));
    }
    for (const w of WRONG) {
      await expectRefusedCleanly(
        t,
        `${method} body ${String(w).slice(0, 20)}`,
        send(encodeCbor(w)),
      );
    }
    for (const [path, mutated] of wrongTyped(body)) {
      // A wrong type where the field is optional may be accepted; then nothing is checked.
      await expectRefusedCleanly(t, `${method} ${path}`, send(encodeCbor(mutated)));
    }
    const huge = await rpcRaw(t.app, method, new Uint8Array(MAX_RPC_BODY + 1));
    assert.equal(huge.status, 413, `${method} huge`);
    assert.equal((await huge.json()).error.code, "TooLarge");
  }
  // A huge body without a content-length is cut off while streaming.
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent > MAX_RPC_BODY + (1 << 20)) return c.close();
      sent += 1 << 20;
      c.enqueue(new Uint8Array(1 << 20));
    },
  });
  const streamed = await t.app.request("/pd/rpc/v1/region_heartbeat", {
    method: "POST",
    body: stream,
    headers: { "content-type": "application/cbor" },
    // @ts-ignore: required by fetch for streaming bodies
    duplex: "half",
  });
  assert.equal(streamed.status, 413);
  // Too many heartbeats in one batch.
  const many = { heartbeats: new Array(MAX_HEARTBEATS_PER_REQUEST + 1).fill(HEARTBEAT) };
  await expectRefusedCleanly(
    t,
    "too many heartbeats",
    () => rpcRaw(t.app, "region_heartbeat", encodeCbor(many)),
  );
  assert.ok(checked > 1000, `only ${checked} bad requests were tried`);
  await t.close();
});

Deno.test("admin API: malformed JSON, wrong types and odd path parameters are refused cleanly", async () => {
  const t = await setUp();
  const req = (app: Hono, method: string, path: string, body?: string) => () =>
    app.request(`/pd/api/v1${path}`, {
      method,
      body,
      headers: { "content-type": "application/json" },
    });
  const bodies: Record<string, unknown> = {
    "/operators": {
      name: "add-peer",
      region_id: 1,
      store_id: 2,
      to_store_id: 2,
      to_store_ids: [2],
      keys: ["a"],
    },
    "/schedulers": { name: "balance-region-scheduler" },
    "/config": { max_replicas: 3, max_store_down_time: "30m" },
  };
  for (const [path, body] of Object.entries(bodies)) {
    for (const raw of ["", "{", "[1,", "null", "42", '"x"', "\u0000", '{"a":1}'.repeat(1000)]) {
      await expectRefusedCleanly(
        t,
        `POST ${path} ${raw.slice(0, 10)}`,
        req(t.app, "POST", path, raw),
      );
    }
    await expectRefusedCleanly(
      t,
      `POST ${path} huge`,
      req(t.app, "POST", path, " ".repeat(2 << 20)),
    );
    for (const [field, mutated] of wrongTyped(body)) {
      await expectRefusedCleanly(
        t,
        `POST ${path} ${field}`,
        req(t.app, "POST", path, JSON.stringify(mutated)),
      );
    }
  }
  for (
    const p of [
      "/store/0",
      "/store/-1",
      "/store/1e5",
      "/store/99999999999999999999",
      "/store/%00",
      "/region/id/x",
      "/region/key/%",
      "/region/key/%g0",
      "/operators/abc",
      "/operators/0",
    ]
  ) {
    await expectRefusedCleanly(t, `GET ${p}`, req(t.app, "GET", p));
    await expectRefusedCleanly(t, `DELETE ${p}`, req(t.app, "DELETE", p));
  }
  await expectRefusedCleanly(
    t,
    "DELETE unknown scheduler",
    req(t.app, "DELETE", "/schedulers/%00"),
  );
  await expectRefusedCleanly(
    t,
    "bad store state",
    req(t.app, "POST", "/store/2/state?state=Tombstone"),
  );
  await expectRefusedCleanly(
    t,
    "region key too long",
    req(t.app, "GET", `/region/key/${"a".repeat(5000)}`),
  );
  await t.close();
});
