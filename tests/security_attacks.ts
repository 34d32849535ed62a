/**
 * The attacks an outsider on the same network used to steer a cluster (forged Raft messages,
 * forged snapshots, forged scheduler RPC, admin calls), each sent to a real 3-store cluster in
 * each security configuration (docs/security.md):
 *
 * - **secret** (the default) and **TLS + secret**: without a credential (401), with a
 *   credential of the wrong kind (403), and with a valid node credential but the wrong store ID
 *   or cluster ID (403); with TLS also without a certificate or with one from another CA (the
 *   handshake fails) and with a CA-signed certificate whose CN is not allowed (401).
 * - **TLS only**: no certificate or another CA's (handshake fails), a CN not allowed (401), a
 *   valid certificate but another cluster's ID, no cluster ID, or a message for another store
 *   (403). A certificate proves membership, not which store: binding the store ID needs the
 *   secret as well, as the docs say.
 *
 * Afterwards the cluster's data, membership, terms, store addresses, config and operators are
 * what they were.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type ClusterSecurity, NODE_CN, pollUntil, ProcessCluster } from "./process_cluster.ts";
import { TestPki } from "./test_pki.ts";
import { encodeRaftBatch, type RaftEnvelope } from "../raftstore/transport.ts";
import { encodeCmd, type RaftCmd } from "../raftstore/cmd.ts";
import { emptyStoreStats } from "../scheduler/_mock_cluster.ts";
import { encodeConfChange, type Message, newMessage } from "../raft/mod.ts";
import { CBOR_CONTENT_TYPE, encodeCbor } from "../proto/codec.ts";
import { CLUSTER_ID_HEADER } from "../proto/security.ts";
import type { Region } from "../proto/metapb.ts";

const enc = new TextEncoder();

interface DebugRegion {
  region: {
    id: number;
    epoch: { conf_ver: number; version: number };
    peers: { id: number; store_id: number; role: string }[];
  };
  peer_id: number;
  role: string;
  term: number;
}

/** How a request is sent: a `fetch` with some client certificate, or none. */
type Via = (url: string, init: RequestInit) => Promise<Response>;

/** What a refused request gets: a status, or a failed TLS handshake. */
type Outcome = number | "handshake";

interface SendInit {
  method?: string;
  headers?: Record<string, string>;
  body?: Uint8Array<ArrayBuffer>;
}

/**
 * One request; returns the status (bodies are read so no connection dangles), or "handshake"
 * if the connection failed (a timeout is not a refusal and is thrown).
 */
async function send(via: Via, url: string, init: SendInit): Promise<Outcome> {
  let res: Response;
  try {
    res = await via(url, { ...init, signal: AbortSignal.timeout(10_000) });
  } catch (e) {
    if (e instanceof TypeError && url.startsWith("https:")) return "handshake";
    throw e;
  }
  await res.arrayBuffer();
  return res.status;
}

/** `fetch` through a TLS client with these PEM files (no certificate: `cert` undefined). */
function tlsVia(ca: string, cert?: { cert: string; key: string }): Via & { close(): void } {
  const client = Deno.createHttpClient(
    cert ? { caCerts: [ca], cert: cert.cert, key: cert.key } : { caCerts: [ca] },
  );
  const via = (url: string, init: RequestInit) => fetch(url, { ...init, client } as RequestInit);
  return Object.assign(via, { close: () => client.close() });
}

/** Clients an attacker might hold in the TLS modes, besides the cluster's own certificates. */
interface TlsAttackers {
  /** No client certificate at all. */
  readonly bare: Via;
  /** A certificate from another CA, with the nodes' CN. */
  readonly foreign: Via;
  /** A certificate from the cluster's CA, but with a CN that is not allowed. */
  readonly intruder: Via;
  close(): void;
}

async function tlsAttackers(c: ProcessCluster): Promise<TlsAttackers | undefined> {
  if (!c.pki) return undefined;
  const ca = await Deno.readTextFile(c.pki.caFile);
  const pem = async (f: { cert: string; key: string }) => ({
    cert: await Deno.readTextFile(f.cert),
    key: await Deno.readTextFile(f.key),
  });
  const other = await TestPki.create(c.pki.dir, "other-ca");
  const clients = {
    bare: tlsVia(ca),
    foreign: tlsVia(ca, await pem(await other.issue("foreign", { cn: NODE_CN }))),
    intruder: tlsVia(ca, await pem(await c.pki.issue("intruder", { cn: "mrkv-intruder" }))),
  };
  return { ...clients, close: () => Object.values(clients).forEach((v) => v.close()) };
}

/** One way to send a forged request, and what it must get. */
interface Attempt {
  readonly what: string;
  readonly expect: Outcome;
  readonly via: Via;
  readonly headers: Record<string, string>;
  /** Store `to`'s peer is the message's target (another store than the one it is sent to). */
  readonly to: "target" | "other";
  /** The credential is a valid node credential of this cluster (only identity is wrong). */
  readonly validNode?: boolean;
}

/**
 * Starts a 3-store cluster in `mode`, sends every known attack in every way that must be
 * refused there, and checks that the cluster is as it was.
 */
export async function runAttackSuite(t: Deno.TestContext, mode: ClusterSecurity): Promise<void> {
  const c = await ProcessCluster.start({ stores: 3, security: mode });
  const atk = await tlsAttackers(c);
  const withSecret = mode !== "tls";
  let passed = false;
  try {
    await c.waitRegionVoters(1, 3);
    const admin = c.adminHeaders();
    const clusterId = await c.waitSchedulerUp();
    const storeIds = [0, 1, 2].map((i) => c.storeId(i));
    const own: Via = (url, init) => c.fetch(url, init);

    // The state the attacks must leave alone.
    const put = await pollUntil("the first write", async () => {
      const r = await c.fetch(`${c.storeUrl(0)}/kv/precious`, { method: "PUT", body: "v1" });
      await r.arrayBuffer();
      return r.status === 204 ? r.status : undefined;
    });
    assert.equal(put, 204);
    const debugRegions = async (i: number): Promise<DebugRegion[]> => {
      const res = await c.fetch(`${c.storeUrl(i)}/debug/regions`, { headers: admin });
      return (await res.json()).regions;
    };
    const before = await c.region(1);
    const storesBefore = await (await c.fetch(`${c.schedulerUrl}/pd/api/v1/stores`, {
      headers: admin,
    })).json();
    const r1 = (await debugRegions(0)).find((r) => r.region.id === 1)!;
    const region: Region = {
      id: 1,
      startKey: new Uint8Array(),
      endKey: new Uint8Array(),
      epoch: { confVer: r1.region.epoch.conf_ver, version: r1.region.epoch.version },
      peers: r1.region.peers.map((p) => ({ id: p.id, storeId: p.store_id, role: "Voter" })),
    };
    const peerOn = (storeId: number) => region.peers.find((p) => p.storeId === storeId)!;

    /** An envelope from the peer on store `from` to the peer on store `to`. */
    const envelope = (from: number, to: number, m: Partial<Message> & Pick<Message, "type">) => ({
      regionId: 1,
      fromPeer: peerOn(from),
      toPeer: peerOn(to),
      epoch: region.epoch,
      startKey: region.startKey,
      endKey: region.endKey,
      message: newMessage({ from: peerOn(from).id, to: peerOn(to).id, ...m }),
    } satisfies RaftEnvelope);

    /** A `MsgProp` carrying one command for region 1 (its header filled in). */
    const proposal = (from: number, to: number, cmd: Omit<RaftCmd, "header">) =>
      envelope(from, to, {
        type: "MsgProp",
        entries: [{
          term: 0,
          index: 0,
          type: "Normal",
          data: encodeCmd({
            header: { regionId: 1, peerId: peerOn(to).id, epoch: region.epoch },
            ...cmd,
          }),
        }],
      });

    const [a, b, d] = storeIds as [number, number, number];
    const bigTerm = 2 ** 53 - 1;
    const raftAttacks: [string, (from: number, to: number) => RaftEnvelope][] = [
      ["MsgProp with a garbage ConfChange", (f, to) =>
        envelope(f, to, {
          type: "MsgProp",
          entries: [{ term: 0, index: 0, type: "ConfChange", data: Uint8Array.of(0xff, 1, 2) }],
        })],
      ["a tombstone notice", (f, to) => ({
        ...envelope(f, to, { type: "MsgHeartbeat", term: r1.term }),
        epoch: { ...region.epoch, confVer: region.epoch.confVer + 1 },
        isTombstone: true,
      })],
      [
        "a heartbeat with term 2^53-1",
        (f, to) => envelope(f, to, { type: "MsgHeartbeat", term: bigTerm }),
      ],
      ["MsgTimeoutNow", (f, to) => envelope(f, to, { type: "MsgTimeoutNow", term: r1.term })],
      ["a Split with its own region ID", (f, to) =>
        proposal(f, to, {
          admin: {
            type: "Split",
            splits: [{
              splitKey: enc.encode("m"),
              newRegionId: 1,
              newPeerIds: region.peers.map((p) => p.id),
            }],
          },
        })],
      ["a forged Put", (f, to) =>
        proposal(f, to, {
          requests: [{ type: "Put", key: enc.encode("precious"), value: enc.encode("evil") }],
        })],
      ["a ConfChange removing a voter", (f, to) =>
        envelope(f, to, {
          type: "MsgProp",
          entries: [{
            term: 0,
            index: 0,
            type: "ConfChange",
            data: encodeConfChange({ type: "RemoveNode", nodeId: peerOn(to).id }),
          }],
        })],
    ];

    /** Node headers: store `storeId`'s real credential (if any), naming `cluster`. */
    const nodeHeaders = (storeId: number, cluster = clusterId): Record<string, string> => ({
      ...c.security.fetcherHeaders(storeId, cluster),
      "content-type": CBOR_CONTENT_TYPE,
    });
    const withoutClusterId = (h: Record<string, string>) => {
      const { [CLUSTER_ID_HEADER]: _, ...rest } = h;
      return rest;
    };
    /** Every way a store-to-store or store-to-scheduler request from "store b" is refused. */
    const attempts = (asNode: Record<string, string>, fromB: Record<string, string>): Attempt[] => [
      ...(atk
        ? [
          { what: "no client certificate", expect: "handshake", via: atk.bare },
          { what: "another CA's certificate", expect: "handshake", via: atk.foreign },
          { what: "a certificate whose CN is not allowed", expect: 401, via: atk.intruder },
        ].map((x) => ({ ...x, headers: asNode, to: "target" }) as Attempt)
        : []),
      ...(withSecret
        ? [
          { what: "no credential", expect: 401, headers: {} },
          {
            what: "a made-up token",
            expect: 401,
            headers: { ...fromB, authorization: `Bearer ${"ab".repeat(32)}` },
          },
          { what: "the client credential", expect: 403, headers: c.clientHeaders() },
          { what: "the admin credential", expect: 403, headers: admin },
          // Store d's valid credential, for a request that speaks for store b.
          {
            what: `store ${d}'s credential`,
            expect: 403,
            headers: nodeHeaders(d),
            validNode: true,
          },
        ].map((x) => ({ ...x, via: own, to: "target" }) as Attempt)
        : []),
      {
        what: "another cluster's ID",
        expect: 403,
        via: own,
        headers: nodeHeaders(b, clusterId + 1),
        to: "target",
      },
      {
        what: "no cluster ID",
        expect: 403,
        via: own,
        headers: withoutClusterId(fromB),
        to: "target",
      },
      // Store b's valid credential, but for a peer on store d (sent to store a).
      {
        what: "addressed to another store",
        expect: 403,
        via: own,
        headers: fromB,
        to: "other",
        validNode: true,
      },
    ];
    const raftAttempts = attempts(nodeHeaders(b), nodeHeaders(b));

    await t.step("forged Raft batches are refused by every store's intake", async () => {
      const target = c.storeUrl(c.slotOf(a));
      for (const [name, make] of raftAttacks) {
        for (const x of raftAttempts) {
          const body = encodeRaftBatch({
            fromStoreId: b,
            envelopes: [make(b, x.to === "target" ? a : d)],
          });
          const got = await send(x.via, `${target}/raft/batch`, {
            method: "POST",
            headers: x.headers,
            body,
          });
          assert.equal(got, x.expect, `${name}, ${x.what}`);
        }
      }
    });

    await t.step("a forged snapshot stream is refused, chunks and envelope alike", async () => {
      const target = c.storeUrl(c.slotOf(a));
      const snapEnv = (f: number, to: number) =>
        envelope(f, to, {
          type: "MsgSnap",
          term: r1.term + 1,
          index: 1000,
          snapshot: {
            metadata: { index: 1000, term: r1.term + 1, confState: { voters: [], learners: [] } },
            data: new Uint8Array(),
          },
        });
      for (const x of raftAttempts) {
        const chunk = await send(x.via, `${target}/raft/snapshot?id=abc&seq=0`, {
          method: "POST",
          headers: x.headers,
          body: new Uint8Array(1000),
        });
        // A chunk carries no envelope: identity is checked when the stream ends, so a valid
        // node credential may add a chunk to its own stream; anything else is refused.
        if (!x.validNode) assert.equal(chunk, x.expect, `MsgSnap, ${x.what}: chunk`);
        const body = encodeRaftBatch({
          fromStoreId: b,
          envelopes: [snapEnv(b, x.to === "target" ? a : d)],
        });
        const last = await send(x.via, `${target}/raft/snapshot?id=abc&seq=1&last=1`, {
          method: "POST",
          headers: x.headers,
          body,
        });
        assert.equal(last, x.expect, `MsgSnap, ${x.what}: last`);
      }
    });

    const rpc = (via: Via, method: string, headers: Record<string, string>, body: unknown) =>
      send(via, `${c.schedulerUrl}/pd/rpc/v1/${method}`, {
        method: "POST",
        headers: { "content-type": CBOR_CONTENT_TYPE, ...headers },
        body: encodeCbor(body),
      });

    await t.step("forged scheduler RPC is refused", async () => {
      const impostor = { id: b, address: "127.0.0.1:1" };
      const phantom = { id: 999_999, address: "127.0.0.1:2" };
      const stats = emptyStoreStats(b);
      const hugeEpoch = {
        region: { ...region, epoch: { confVer: bigTerm, version: bigTerm } },
        leader: peerOn(b),
        pendingPeers: [],
        downPeers: [],
        approximateSize: 0,
        approximateKeys: 0,
      };
      const cases: [string, string, unknown][] = [
        ["put_store with another store's ID", "put_store", { store: impostor }],
        ["put_store of a phantom store", "put_store", { store: phantom }],
        ["store_heartbeat for another store", "store_heartbeat", { stats }],
        ["region heartbeat with epoch 2^53-1", "region_heartbeat", { heartbeats: [hugeEpoch] }],
        ["alloc_id", "alloc_id", { count: 1000 }],
      ];
      // Store d's own credential: it may not speak for b or register other stores.
      const asD = nodeHeaders(d);
      for (const [what, method, body] of cases) {
        for (const x of attempts(asD, asD)) {
          // Which store a message is for only concerns Raft; and any store may allocate IDs.
          if (x.to === "other" || (x.validNode && method === "alloc_id")) continue;
          assert.equal(await rpc(x.via, method, x.headers, body), x.expect, `${what}, ${x.what}`);
        }
      }
      // Store b's own credential: the heartbeat's epoch is still ahead of anything handed out.
      assert.equal(
        await rpc(own, "region_heartbeat", nodeHeaders(b), { heartbeats: [hugeEpoch] }),
        403,
        "region heartbeat with epoch 2^53-1, the leader's own credential",
      );
    });

    await t.step("admin calls need the admin credential", async () => {
      const calls: [string, string, string][] = [
        ["POST", "/pd/api/v1/config", JSON.stringify({ max_replicas: 1 })],
        [
          "POST",
          "/pd/api/v1/operators",
          JSON.stringify({
            name: "add-peer",
            region_id: 1,
            store_id: 999_999,
          }),
        ],
        ["DELETE", `/pd/api/v1/store/${a}`, ""],
        ["GET", "/pd/api/v1/regions", ""],
      ];
      /** Who is refused: name, outcome, client, headers, and whether a store may say so. */
      type Refusal = [string, Outcome, Via, Record<string, string>, boolean];
      const refusals: Refusal[] = [
        ...(atk
          ? [
            ["no client certificate", "handshake", atk.bare, admin, false],
            ["another CA's certificate", "handshake", atk.foreign, admin, false],
            ["a certificate whose CN is not allowed", 401, atk.intruder, admin, false],
          ] as Refusal[]
          : []),
        ...(withSecret
          ? [
            ["no credential", 401, own, {}, false],
            ["client credential", 403, own, c.clientHeaders(), false],
            // A store forwards KV requests: its credential may send a forwarded write.
            ["a store's credential", 403, own, nodeHeaders(a), true],
          ] as Refusal[]
          : []),
      ];
      for (const [who, expect, via, headers, isNode] of refusals) {
        for (const [method, path, body] of calls) {
          const init = { method, headers, body: body === "" ? undefined : enc.encode(body) };
          const got = await send(via, `${c.schedulerUrl}${path}`, init);
          assert.equal(got, expect, `${method} ${path}, ${who}`);
        }
        for (const path of ["/debug/regions", "/debug/kv/precious"]) {
          assert.equal(await send(via, `${c.storeUrl(0)}${path}`, { headers }), expect, path);
        }
        if (isNode) continue;
        // A forwarded KV request is served without routing: only stores may send one.
        const forged = await send(via, `${c.storeUrl(0)}/kv/precious`, {
          method: "PUT",
          headers: { ...headers, "x-mrkv-forwarded": "1" },
          body: enc.encode("evil"),
        });
        assert.equal(forged, expect, `a forged forwarded write, ${who}`);
      }
    });

    await t.step("the cluster is as it was", async () => {
      for (const i of [0, 1, 2]) {
        const status = await (await c.fetch(`${c.storeUrl(i)}/status`)).json();
        assert.equal(status.healthy, true, `store slot ${i} healthy`);
        const regions = await debugRegions(i);
        const r = regions.find((x) => x.region.id === 1);
        assert.ok(r, `store slot ${i} still holds region 1`);
        assert.ok(r.term < 1000, `store slot ${i}: term ${r.term} was not forged`);
        assert.deepEqual(
          r.region.peers.map((p) => p.id).sort(),
          region.peers.map((p) => p.id).sort(),
        );
        const got = await pollUntil(`GET precious on slot ${i}`, async () => {
          const res = await c.fetch(`${c.storeUrl(i)}/kv/precious`);
          const text = await res.text();
          return res.status === 200 ? text : undefined;
        });
        assert.equal(got, "v1");
        // The stores talk over Raft streams in this mode too (not a fallback to requests).
        const metrics = await (await c.fetch(`${c.storeUrl(i)}/metrics`)).text();
        const opened = /^mrkv_raft_streams_opened_total (\d+)$/m.exec(metrics);
        assert.ok(opened && Number(opened[1]) >= 1, `store slot ${i} opened a Raft stream`);
      }
      const after = await c.region(1);
      assert.deepEqual(after?.epoch, before?.epoch, "region 1's epoch in the scheduler");
      const config = await (await c.fetch(`${c.schedulerUrl}/pd/api/v1/config`, {
        headers: admin,
      })).json();
      assert.equal(config.max_replicas, 3);
      const storesAfter = await (await c.fetch(`${c.schedulerUrl}/pd/api/v1/stores`, {
        headers: admin,
      })).json();
      const addresses = (s: { stores: { store: { id: number; address: string } }[] }) =>
        s.stores.map((x) => `${x.store.id}@${x.store.address}`).sort();
      assert.deepEqual(
        addresses(storesAfter),
        addresses(storesBefore),
        "no store moved or appeared",
      );
      const ops = await (await c.fetch(`${c.schedulerUrl}/pd/api/v1/operators`, {
        headers: admin,
      })).json();
      assert.equal(ops.count, 0, "no operator was started");
    });
    passed = true;
  } finally {
    if (!passed) console.error(c.output());
    atk?.close();
    await c.close();
  }
}
