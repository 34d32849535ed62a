/**
 * Nothing committed can crash a store. Entries that cannot be executed — undecodable bytes, a
 * conf change whose command is garbage or describes another change, a split that reuses its own
 * region's ID, a log compaction naming the wrong term — are committed straight into the leader's
 * log (as a buggy or forged proposal would be) and must be applied as no-ops: every store keeps
 * serving, keeps the same membership and data — also a follower that was down and applies them
 * when it returns, and every store after a restart. Proposals like these forwarded by another store are refused at intake.
 */
import assert from "node:assert/strict";
import { encodeConfChange, type Entry, newMessage } from "../raft/mod.ts";
import { encodeCmd } from "../raftstore/cmd.ts";
import { b, waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "committed entries that cannot be executed are no-ops on every store, also when replayed",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await c.put("before", "1");
      const leader = c.leaderOf(1)!;
      const region = leader.region;
      const header = { regionId: 1, peerId: leader.meta.id, epoch: region.epoch };
      const garbage = new Uint8Array([0xff, 0x00, 0x13]);
      const other = region.peers.find((p) => p.id !== leader.meta.id)!;
      const entries: Entry[] = [
        { index: 0, term: 0, type: "Normal", data: garbage },
        { index: 0, term: 0, type: "ConfChange", data: garbage },
        {
          index: 0,
          term: 0,
          type: "ConfChange",
          data: encodeConfChange({ type: "RemoveNode", nodeId: other.id, context: garbage }),
        },
        {
          // The conf change removes one peer, its command another: Raft and the region would
          // disagree on the membership.
          index: 0,
          term: 0,
          type: "ConfChange",
          data: encodeConfChange({
            type: "RemoveNode",
            nodeId: other.id,
            context: encodeCmd({
              header,
              admin: { type: "ChangePeer", changeType: "RemoveNode", peer: leader.meta },
            }),
          }),
        },
        {
          index: 0,
          term: 0,
          type: "Normal",
          data: encodeCmd({
            header,
            admin: {
              type: "Split",
              splits: [{
                splitKey: b("m"),
                newRegionId: 1,
                newPeerIds: region.peers.map((p) => p.id + 1000),
              }],
            },
          }),
        },
        {
          index: 0,
          term: 0,
          type: "Normal",
          data: encodeCmd({
            header,
            admin: { type: "CompactLog", compactIndex: leader.appliedIndex, compactTerm: 999 },
          }),
        },
      ];
      // One follower is down while the bad entries commit: it applies them from the log when it
      // comes back.
      const down = c.nodes.findIndex((n) => n !== undefined && n.store.storeId !== leader.storeId);
      await c.stopStore(down);
      const firstBad = leader.storage.lastIndex() + 1;
      leader.raw.step(newMessage({ type: "MsgProp", from: leader.meta.id, entries }));
      c.node(c.nodes.findIndex((n) => n?.store.storeId === leader.storeId)).store.schedule(leader);
      const lastBad = firstBad + entries.length - 1;
      await waitFor(
        "every store to apply the bad entries",
        () => c.running().every((n) => n.store.peers.get(1)!.appliedIndex >= lastBad),
      );

      // A forged proposal from another store never reaches the log.
      const marker = new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0x01]);
      const sender = c.running().find((n) => n.store.storeId !== leader.storeId)!;
      const senderPeer = sender.store.peers.get(1)!;
      const target = c.running().find((n) => n.store.storeId === leader.storeId)!;
      target.store.onRaftBatch({
        fromStoreId: sender.store.storeId,
        envelopes: [{
          regionId: 1,
          fromPeer: senderPeer.meta,
          toPeer: leader.meta,
          epoch: region.epoch,
          startKey: region.startKey,
          endKey: region.endKey,
          message: newMessage({
            type: "MsgProp",
            from: senderPeer.meta.id,
            to: leader.meta.id,
            entries: [{ index: 0, term: 0, type: "ConfChange", data: marker }],
          }),
        }],
      });
      await target.store.idle();

      const check = async (when: string) => {
        await c.put("after", when);
        for (const [i, n] of c.nodes.entries()) {
          if (!n) continue;
          assert.equal(await c.get("before", i), "1", `${when}: store slot ${i} serves old data`);
          assert.equal(await c.get("after", i), when, `${when}: store slot ${i} serves new data`);
          const p = n.store.peers.get(1)!;
          assert.deepEqual(
            p.region.peers.map((x) => x.id).sort(),
            region.peers.map((x) => x.id).sort(),
            `${when}: store slot ${i} keeps the membership`,
          );
          assert.equal(p.region.endKey.length, 0, `${when}: region 1 was not split`);
          assert.equal(n.store.fatal, undefined, `${when}: store slot ${i} is healthy`);
          const log = p.storage.entries(p.storage.firstIndex(), p.storage.lastIndex() + 1, 1 << 30);
          assert.ok(
            !log.some((e) =>
              e.data.length === marker.length && e.data.every((x, j) => x === marker[j])
            ),
            `${when}: the forged proposal is not in the log of store slot ${i}`,
          );
        }
      };
      await check("live");
      await c.startStore(down);
      await waitFor(
        "the returning follower to apply the bad entries",
        () => c.node(down).store.peers.get(1)!.appliedIndex >= lastBad,
      );
      await check("caught up");
      for (const i of [0, 1, 2]) {
        await c.stopStore(i);
        await c.startStore(i);
      }
      await c.waitReplicas(1, 3);
      await check("restarted");
    }),
);
