/**
 * The attacks an outsider on the same network used to steer a cluster (forged Raft messages,
 * forged scheduler RPC, admin calls), each sent to a real 3-store cluster in its default secure
 * configuration: without a credential (401), with a credential of the wrong kind (403), and with
 * a valid node credential but the wrong store ID or cluster ID (403). Afterwards the cluster's
 * data, membership, terms, store addresses and config are what they were.
 *
 * @module
 */
import assert from "node:assert/strict";
import { pollUntil, ProcessCluster } from "./process_cluster.ts";
import { encodeRaftBatch, type RaftEnvelope } from "../raftstore/transport.ts";
import { encodeCmd } from "../raftstore/cmd.ts";
import { encodeConfChange, type Message } from "../raft/mod.ts";
import { CBOR_CONTENT_TYPE, encodeCbor } from "../proto/codec.ts";
import { CLUSTER_ID_HEADER, STORE_ID_HEADER } from "../proto/security.ts";
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

/** One request; returns the status (bodies are read so no connection dangles). */
async function send(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: Uint8Array<ArrayBuffer> },
): Promise<number> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  await res.arrayBuffer();
  return res.status;
}

function message(m: Partial<Message> & Pick<Message, "type" | "to" | "from">): Message {
  return {
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    ...m,
  };
}

Deno.test("security e2e: every known attack is refused without a valid credential, and with one for the wrong store or cluster", async (t) => {
  const c = await ProcessCluster.start({ stores: 3 });
  let passed = false;
  try {
    await c.waitRegionVoters(1, 3);
    const admin = c.adminHeaders();
    const clusterId = await c.waitSchedulerUp();
    const storeIds = [0, 1, 2].map((i) => c.storeId(i));

    // The state the attacks must leave alone.
    const put = await pollUntil("the first write", async () => {
      const r = await fetch(`${c.storeUrl(0)}/kv/precious`, { method: "PUT", body: "v1" });
      await r.arrayBuffer();
      return r.status === 204 ? r.status : undefined;
    });
    assert.equal(put, 204);
    const debugRegions = async (i: number): Promise<DebugRegion[]> => {
      const res = await fetch(`${c.storeUrl(i)}/debug/regions`, { headers: admin });
      return (await res.json()).regions;
    };
    const before = await c.region(1);
    const storesBefore = await (await fetch(`${c.schedulerUrl}/pd/api/v1/stores`, {
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
      message: message({ from: peerOn(from).id, to: peerOn(to).id, ...m }),
    } satisfies RaftEnvelope);

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
        envelope(f, to, {
          type: "MsgProp",
          entries: [{
            term: 0,
            index: 0,
            type: "Normal",
            data: encodeCmd({
              header: { regionId: 1, peerId: peerOn(to).id, epoch: region.epoch },
              admin: {
                type: "Split",
                splits: [{
                  splitKey: enc.encode("m"),
                  newRegionId: 1,
                  newPeerIds: region.peers.map((p) => p.id),
                }],
              },
            }),
          }],
        })],
      ["a forged Put", (f, to) =>
        envelope(f, to, {
          type: "MsgProp",
          entries: [{
            term: 0,
            index: 0,
            type: "Normal",
            data: encodeCmd({
              header: { regionId: 1, peerId: peerOn(to).id, epoch: region.epoch },
              requests: [{ type: "Put", key: enc.encode("precious"), value: enc.encode("evil") }],
            }),
          }],
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

    /** Node headers: store `storeId`'s real credential, naming `cluster`. */
    const nodeHeaders = (storeId: number, cluster = clusterId) => ({
      ...c.security.fetcherHeaders(storeId, cluster),
      "content-type": CBOR_CONTENT_TYPE,
    });
    /** Each way to send a batch that must be refused, with the status it must get. */
    const senders = (
      name: string,
      make: (from: number, to: number) => RaftEnvelope,
    ): [string, number, Record<string, string>, Uint8Array<ArrayBuffer>][] => [
      [
        `${name}, no credential`,
        401,
        {},
        encodeRaftBatch({
          fromStoreId: b,
          envelopes: [make(b, a)],
        }),
      ],
      [`${name}, a made-up token`, 401, {
        authorization: `Bearer ${"ab".repeat(32)}`,
        [STORE_ID_HEADER]: String(b),
        [CLUSTER_ID_HEADER]: String(clusterId),
      }, encodeRaftBatch({ fromStoreId: b, envelopes: [make(b, a)] })],
      [
        `${name}, the client credential`,
        403,
        c.clientHeaders(),
        encodeRaftBatch({
          fromStoreId: b,
          envelopes: [make(b, a)],
        }),
      ],
      [
        `${name}, the admin credential`,
        403,
        admin,
        encodeRaftBatch({
          fromStoreId: b,
          envelopes: [make(b, a)],
        }),
      ],
      // Store d's valid credential, claiming to be store b.
      [
        `${name}, store ${d}'s credential as store ${b}`,
        403,
        nodeHeaders(d),
        encodeRaftBatch({
          fromStoreId: b,
          envelopes: [make(b, a)],
        }),
      ],
      // Store b's valid credential, but for a peer on store d (sent to store a).
      [
        `${name}, addressed to another store`,
        403,
        nodeHeaders(b),
        encodeRaftBatch({
          fromStoreId: b,
          envelopes: [make(b, d)],
        }),
      ],
      [
        `${name}, another cluster's ID`,
        403,
        nodeHeaders(b, clusterId + 1),
        encodeRaftBatch({
          fromStoreId: b,
          envelopes: [make(b, a)],
        }),
      ],
    ];

    await t.step("forged Raft batches are refused by every store's intake", async () => {
      const target = c.storeUrl(c.slotOf(a));
      for (const [name, make] of raftAttacks) {
        for (const [what, status, headers, body] of senders(name, make)) {
          const got = await send(`${target}/raft/batch`, { method: "POST", headers, body });
          assert.equal(got, status, what);
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
      for (const [what, status, headers, body] of senders("MsgSnap", snapEnv)) {
        const chunk = await send(`${target}/raft/snapshot?id=abc&seq=0`, {
          method: "POST",
          headers,
          body: new Uint8Array(1000),
        });
        // A chunk carries no envelope: identity is checked when the stream ends, so a valid
        // node credential may add a chunk to its own stream; anything else is refused.
        if (status === 401 || !what.includes("store")) {
          assert.equal(chunk, status, `${what}: chunk`);
        }
        const last = await send(`${target}/raft/snapshot?id=abc&seq=1&last=1`, {
          method: "POST",
          headers,
          body,
        });
        assert.equal(last, status, `${what}: last`);
      }
    });

    const rpc = (method: string, headers: Record<string, string>, body: unknown) =>
      send(`${c.schedulerUrl}/pd/rpc/v1/${method}`, {
        method: "POST",
        headers: { "content-type": CBOR_CONTENT_TYPE, ...headers },
        body: encodeCbor(body),
      });

    await t.step("forged scheduler RPC is refused", async () => {
      const impostor = { id: b, address: "127.0.0.1:1" };
      const phantom = { id: 999_999, address: "127.0.0.1:2" };
      const stats = {
        storeId: b,
        capacity: 0,
        available: 0,
        usedSize: 0,
        regionCount: 0,
        leaderCount: 0,
        sendingSnapCount: 0,
        receivingSnapCount: 0,
        isBusy: false,
      };
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
      for (const [what, method, body] of cases) {
        assert.equal(await rpc(method, {}, body), 401, `${what}, no credential`);
        assert.equal(await rpc(method, c.clientHeaders(), body), 403, `${what}, client credential`);
        assert.equal(await rpc(method, admin, body), 403, `${what}, admin credential`);
        assert.equal(
          await rpc(method, nodeHeaders(b, clusterId + 1), body),
          403,
          `${what}, another cluster's ID`,
        );
      }
      // A valid credential of another store (d) may not speak for b or register others.
      for (const [what, method, body] of cases.slice(0, 3)) {
        assert.equal(
          await rpc(method, nodeHeaders(d), body),
          403,
          `${what}, store ${d}'s credential`,
        );
      }
      // Store b's own credential: the heartbeat's epoch is still ahead of anything handed out.
      assert.equal(
        await rpc("region_heartbeat", nodeHeaders(b), { heartbeats: [hugeEpoch] }),
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
      for (const [method, path, body] of calls) {
        const init = { method, body: body === "" ? undefined : enc.encode(body) };
        assert.equal(await send(`${c.schedulerUrl}${path}`, init), 401, `${method} ${path}`);
        assert.equal(
          await send(`${c.schedulerUrl}${path}`, { ...init, headers: c.clientHeaders() }),
          403,
          `${method} ${path}, client credential`,
        );
        assert.equal(
          await send(`${c.schedulerUrl}${path}`, { ...init, headers: nodeHeaders(a) }),
          403,
          `${method} ${path}, a store's credential`,
        );
      }
      for (const path of ["/debug/regions", "/debug/kv/precious"]) {
        assert.equal(await send(`${c.storeUrl(0)}${path}`, {}), 401, path);
      }
      // A forwarded KV request is served without routing: only stores may send one.
      assert.equal(
        await send(`${c.storeUrl(0)}/kv/precious`, {
          method: "PUT",
          headers: { "x-mrkv-forwarded": "1" },
          body: enc.encode("evil"),
        }),
        401,
        "a forged forwarded write",
      );
    });

    await t.step("the cluster is as it was", async () => {
      for (const i of [0, 1, 2]) {
        const status = await (await fetch(`${c.storeUrl(i)}/status`)).json();
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
          const res = await fetch(`${c.storeUrl(i)}/kv/precious`);
          const text = await res.text();
          return res.status === 200 ? text : undefined;
        });
        assert.equal(got, "v1");
      }
      const after = await c.region(1);
      assert.deepEqual(after?.epoch, before?.epoch, "region 1's epoch in the scheduler");
      const config = await (await fetch(`${c.schedulerUrl}/pd/api/v1/config`, { headers: admin }))
        .json();
      assert.equal(config.max_replicas, 3);
      const storesAfter = await (await fetch(`${c.schedulerUrl}/pd/api/v1/stores`, {
        headers: admin,
      })).json();
      const addresses = (s: { stores: { store: { id: number; address: string } }[] }) =>
        s.stores.map((x) => `${x.store.id}@${x.store.address}`).sort();
      assert.deepEqual(
        addresses(storesAfter),
        addresses(storesBefore),
        "no store moved or appeared",
      );
      const ops = await (await fetch(`${c.schedulerUrl}/pd/api/v1/operators`, { headers: admin }))
        .json();
      assert.equal(ops.count, 0, "no operator was started");
    });
    passed = true;
  } finally {
    if (!passed) console.error(c.output());
    await c.close();
  }
});
