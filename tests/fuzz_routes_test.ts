/**
 * Fuzzes every route of both roles over real sockets in the default secure configuration:
 * random credentials (none, made up, the client's, another store's, another cluster's), random
 * methods, malformed and truncated bodies, wrong-typed CBOR, lying `Content-Length`s. No answer
 * may be a 500 (or any 5xx but a KV route's retryable 503), and nothing may change: the
 * scheduler's stores, regions and config and the store's data are as they were. (The admin
 * credential is left out: with it, changing the config is allowed. `scheduler/fuzz_test.ts`
 * fuzzes the admin bodies in-process.) Client writes go to keys other than the one checked.
 *
 * Also over TLS (a member's valid certificate, random tokens past the handshake).
 *
 * Bounded for CI (`MRKV_FUZZ_REQUESTS`, default 400; `MRKV_FUZZ_TLS_REQUESTS`, default 200);
 * `deno task fuzz:long` sends 100,000 and 10,000 over TLS.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startScheduler } from "../scheduler/mod.ts";
import { startStoreNode } from "../raftstore/node.ts";
import { parseCommandLine } from "../config/config.ts";
import { encodeCbor } from "../proto/codec.ts";
import { generateSecret, Security, type TlsFiles } from "../proto/security.ts";
import { TestPki } from "./test_pki.ts";
import { TEST_STORE_CONFIG, waitFor } from "./cluster.ts";
import { seededRandom } from "../scheduler/_mock_cluster.ts";

const REQUESTS = Number(Deno.env.get("MRKV_FUZZ_REQUESTS") ?? "400");
/** The TLS run is shorter: past the handshake it is the same server. */
const TLS_REQUESTS = Number(Deno.env.get("MRKV_FUZZ_TLS_REQUESTS") ?? "200");
const enc = new TextEncoder();

const RPC = [
  "bootstrap",
  "is_bootstrapped",
  "alloc_id",
  "put_store",
  "store_heartbeat",
  "region_heartbeat",
  "ask_split",
  "ask_batch_split",
  "get_store",
  "get_region",
  "get_region_by_id",
  "nope",
];
const SCHEDULER_PATHS = [
  ...RPC.map((m) => `/pd/rpc/v1/${m}`),
  "/pd/api/v1/stores",
  "/pd/api/v1/store/1",
  "/pd/api/v1/store/1/state?state=Offline",
  "/pd/api/v1/regions",
  "/pd/api/v1/region/id/1",
  "/pd/api/v1/region/key/a",
  "/pd/api/v1/operators",
  "/pd/api/v1/operators/1",
  "/pd/api/v1/operators/records",
  "/pd/api/v1/schedulers",
  "/pd/api/v1/schedulers/balance-region-scheduler",
  "/pd/api/v1/config",
  "/status",
  "/metrics",
  "/%ff%00",
];
const STORE_PATHS = [
  "/kv/fuzzed",
  "/kv/fuzz%00key",
  "/kv?limit=10000",
  "/kv?start=%ff&end=&encoding=base64&max_bytes=99999999999",
  "/raft/batch",
  "/raft/snapshot?id=ab&seq=0",
  "/raft/snapshot?id=ab&seq=1&last=1",
  "/debug/regions",
  "/debug/kv/precious",
  "/status",
  "/metrics",
  "/raft/../debug/regions",
];
const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

Deno.test("fuzz: every route of both roles, over sockets, secure by default: no 5xx, no change", async () => {
  await fuzzRoutes(REQUESTS, false);
});

Deno.test("fuzz: every route of both roles, over TLS with a member's certificate: no 5xx, no change", async () => {
  await fuzzRoutes(TLS_REQUESTS, true);
});

/**
 * Starts a scheduler and a store (secret mode, with TLS if `tls`) and sends `requests` random
 * requests; with TLS they come over connections with a valid member certificate, so everything
 * past the handshake is the fuzzer's to get wrong.
 */
async function fuzzRoutes(requests: number, tls: boolean): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-fuzz-" });
  let tlsFiles: TlsFiles | undefined;
  if (tls) {
    const pki = await TestPki.create(`${dir}/pki`);
    const node = await pki.issue("node", { cn: "mrkv-node" });
    tlsFiles = {
      ca: await Deno.readTextFile(pki.caFile),
      cert: await Deno.readTextFile(node.cert),
      key: await Deno.readTextFile(node.key),
    };
  }
  const security = new Security({ secret: enc.encode(generateSecret()), tls: tlsFiles });
  const connect = (port: number): Promise<Deno.Conn> =>
    tlsFiles
      ? Deno.connectTls({
        hostname: "127.0.0.1",
        port,
        caCerts: [tlsFiles.ca],
        cert: tlsFiles.cert,
        key: tlsFiles.key,
      })
      : Deno.connect({ hostname: "127.0.0.1", port });
  const parsed = parseCommandLine([
    "--role",
    "scheduler",
    "--addr",
    "127.0.0.1:0",
    "--data-dir",
    `${dir}/scheduler`,
  ]);
  if (parsed.help) throw new Error("unreachable");
  const sched = await startScheduler(parsed.config, { security });
  const node = await startStoreNode({
    config: {
      ...TEST_STORE_CONFIG,
      addr: "127.0.0.1:0",
      advertiseAddr: "127.0.0.1:1",
      dataDir: `${dir}/store`,
      scheduler: `${security.scheme}://${sched.addr}`,
      kvAuth: "required",
    },
    security,
    log: { info: () => {}, warn: () => {}, error: () => {} },
  });
  try {
    const storeId = node.store.storeId;
    await waitFor("region 1 to have a leader", () => node.store.peers.get(1)?.isLeader() ?? false);
    await node.kv.put(enc.encode("precious"), enc.encode("v1"));
    const snapshot = async () => ({
      stores: sched.cluster.stores().map((s) => `${s.meta.id}@${s.meta.address}/${s.state}`),
      regions: sched.cluster.regions.regions().map((r) => JSON.stringify(r.meta.epoch)),
      config: JSON.stringify(sched.cluster.config),
      value: new TextDecoder().decode(
        (await node.kv.get(enc.encode("precious"))) ?? new Uint8Array(),
      ),
      term: node.store.peers.get(1)!.raw.status().hardState.term,
      storeRegions: [...node.store.peers.values()].map((p) => JSON.stringify(p.region)),
    });
    const before = await snapshot();

    const random = seededRandom(Number(Deno.env.get("MRKV_FUZZ_SEED") ?? "8"));
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const bytes = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
    const junk = (): unknown =>
      pick([
        () => ({}),
        () => ({ store: { id: storeId, address: "127.0.0.1:6666" } }),
        () => ({ store: { id: 999, address: "x" } }),
        () => ({ stats: { storeId: storeId + 1 } }),
        () => ({ heartbeats: [{ region: { id: 1, epoch: { confVer: 2 ** 53, version: -1 } } }] }),
        () => ({ count: 2 ** 60 }),
        () => ({ fromStoreId: storeId, envelopes: [{ regionId: 1, message: bytes(20) }] }),
        () => [1, "two", null, bytes(3)],
        () => ({ max_replicas: 1 }),
        () => "string",
      ])();
    const credentials: (() => Record<string, string>)[] = [
      () => ({}),
      () => ({ authorization: `Bearer ${"0".repeat(64)}` }),
      () => ({ authorization: "Bearer " + "z".repeat(5000) }),
      () => security.credentialHeaders("client"),
      () => security.fetcherHeaders(storeId + 1, sched.cluster.clusterId),
      () => security.fetcherHeaders(storeId, sched.cluster.clusterId + 1),
      () => ({ "x-mrkv-store-id": "-1", "x-mrkv-cluster-id": "1e9" }),
    ];
    const body = (): Uint8Array => {
      const valid = encodeCbor(junk());
      return pick([
        () => new Uint8Array(),
        () => bytes(1 + Math.floor(random() * 200)),
        () => valid,
        () => valid.subarray(0, Math.max(0, valid.length - 3)),
        () => enc.encode(JSON.stringify(junk())),
        () => enc.encode("{not json"),
      ])();
    };
    const targets: [string, number, readonly string[]][] = [
      ["scheduler", Number(sched.addr.split(":")[1]), SCHEDULER_PATHS],
      ["store", node.port!, STORE_PATHS],
    ];
    const statuses = new Map<number, number>();
    for (let n = 0; n < requests; n++) {
      const [role, port, paths] = pick(targets);
      const method = pick(METHODS);
      const path = pick(paths);
      const payload = body();
      // Sometimes the declared length lies: shorter, longer (the body then breaks off), absent.
      const declared = pick([payload.length, payload.length, payload.length + 50, 0, -1]);
      const headers = {
        ...pick(credentials)(),
        "content-type": pick(["application/cbor", "application/json", "text/plain"]),
        ...(random() < 0.2 ? { "x-mrkv-forwarded": "1" } : {}),
      };
      let head = `${method} ${path} HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\n`;
      for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
      if (declared >= 0) head += `content-length: ${declared}\r\n`;
      const status = await rawRequest(await connect(port), enc.encode(head + "\r\n"), payload);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      const retryable = status === 503 && role === "store" && path.startsWith("/kv");
      assert.ok(
        status !== 0 ? status < 500 || retryable : true,
        `${role} ${method} ${path} answered ${status}`,
      );
    }
    const counts = [...statuses].sort(([a], [b]) => a - b).map(([s, n]) =>
      `${s || "closed"}: ${n}`
    );
    console.log(`fuzz${tls ? " (TLS)" : ""}: ${requests} requests, answers ${counts.join(", ")}`);
    assert.deepEqual(await snapshot(), before, "nothing changed");
    assert.ok((statuses.get(401) ?? 0) > 0 && (statuses.get(403) ?? 0) > 0, "refusals happened");
  } finally {
    await node.stop();
    await sched.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Sends raw bytes on a fresh connection; returns the status (0: closed without an answer). */
async function rawRequest(conn: Deno.Conn, head: Uint8Array, body: Uint8Array): Promise<number> {
  try {
    await conn.write(head);
    if (body.length > 0) await conn.write(body).catch(() => 0);
    await conn.closeWrite().catch(() => {});
    const buf = new Uint8Array(64);
    let text = "";
    const deadline = Date.now() + 15_000;
    while (!/\r\n/.test(text) && Date.now() < deadline) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
    return m ? Number(m[1]) : 0;
  } finally {
    conn.close();
  }
}
