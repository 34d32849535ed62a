/**
 * Route hints end to end, over real HTTP: a store that does not lead a key's region names the
 * store that does, and a client following the hints (`tools/load.ts --route leader`) sends its
 * requests there instead of through a store that must forward them.
 */
import assert from "node:assert/strict";
import { decodeRouteHint, ROUTE_HEADER } from "../proto/route_hint.ts";
import { makeTarget, makeValue, runLoad } from "../tools/load/mod.ts";
import { settledLeader, startHttpCluster } from "./http_cluster.ts";
import { pollUntil } from "./process_cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "route hints: a store names the leader's store, and a routing client skips the forward",
  opts,
  async () => {
    const c = await startHttpCluster(3);
    try {
      const leader = await settledLeader(c);
      const leaderUrl = c.storeUrls[leader]!;
      const leaderStoreId = c.nodes[leader]!.store.storeId;
      const followers = [1, 2].map((i) => (leader + i) % 3);
      const followerUrl = c.storeUrls[followers[0]!]!;

      // A follower's store answers (it forwarded) and names the leader's.
      const put = await fetch(`${followerUrl}/kv/a`, { method: "PUT", body: "1" });
      assert.equal(put.status, 204);
      const hint = decodeRouteHint(put.headers.get(ROUTE_HEADER) ?? "");
      assert.ok(hint, `a hint, got ${put.headers.get(ROUTE_HEADER)}`);
      assert.deepEqual(
        { ...hint, start: [...hint.start], end: [...hint.end] },
        { regionId: 1, version: 1, start: [], end: [], leaderStoreId, leaderUrl },
      );
      const get = await fetch(`${followerUrl}/kv/a`);
      assert.equal(await get.text(), "1");
      assert.equal(decodeRouteHint(get.headers.get(ROUTE_HEADER) ?? "")?.leaderUrl, leaderUrl);
      // "Not found" is an answer too, and carries the route.
      const miss = await fetch(`${followerUrl}/kv/absent`);
      assert.equal(miss.status, 404);
      assert.equal((await miss.json()).error.code, "KeyNotFound");
      assert.equal(decodeRouteHint(miss.headers.get(ROUTE_HEADER) ?? "")?.leaderUrl, leaderUrl);

      // The leader's store adds nothing, unless asked.
      const direct = await fetch(`${leaderUrl}/kv/a`, { method: "PUT", body: "2" });
      assert.equal(direct.status, 204);
      assert.equal(direct.headers.get(ROUTE_HEADER), null);
      const asked = await fetch(`${leaderUrl}/kv/a`, { headers: { [ROUTE_HEADER]: "1" } });
      assert.equal(await asked.text(), "2");
      assert.equal(decodeRouteHint(asked.headers.get(ROUTE_HEADER) ?? "")?.leaderUrl, leaderUrl);

      // Requests the followers' stores passed on: forwarded, proposed through Raft, read there.
      const passedOn = () =>
        followers.reduce((n, i) => {
          const kv = c.nodes[i]!.kv;
          return n + kv.forwarded + kv.viaRaft + kv.followerReads;
        }, 0);
      const run = async (route: "leader" | "endpoints") => {
        const before = passedOn();
        const result = await runLoad({
          target: makeTarget({ kind: "mrkv", value: makeValue(16), route }),
          // Followers first: the first request must be passed on, and teach the route.
          endpoints: [...followers, leader].map((i) => c.storeUrls[i]!),
          writePct: 50,
          concurrency: 1,
          keys: 50,
          durationMs: 30_000,
          requests: 60,
          prefill: false,
          timeoutMs: 5_000,
          seed: 7,
        });
        assert.equal(result.errorCount, 0, JSON.stringify(result.errors));
        assert.equal(result.ops, 60);
        if (route === "leader") {
          const r = result.routes!;
          assert.equal(r.routed + r.unrouted, 60);
          assert.ok(r.unrouted >= 1 && r.ranges === 1, JSON.stringify(r));
        } else {
          assert.equal(result.routes, undefined);
        }
        return passedOn() - before;
      };
      // Round-robin: two requests in three reach a follower's store.
      const roundRobin = await run("endpoints");
      assert.ok(roundRobin >= 30, `round-robin passed on ${roundRobin} of 60`);
      // Routed: only the first request (the client has no route yet). Should the leader change
      // meanwhile (an election under a loaded machine), each change costs a few more.
      const leaderPeer = c.nodes[leader]!.store.peers.get(1)!;
      const term = leaderPeer.raw.raft.term;
      const routed = await run("leader");
      if (leaderPeer.isLeader() && leaderPeer.raw.raft.term === term) assert.equal(routed, 1);
      else assert.ok(routed <= 5, `routed passed on ${routed} of 60 across a leader change`);
    } finally {
      await c.close();
    }
  },
);

Deno.test(
  "route hints after a split: two regions, two ranges in the client's map, versions raised",
  opts,
  async () => {
    const c = await startHttpCluster(3);
    try {
      // Keys key0000000000..key0000000049 (the load tool's), split in the middle.
      const res = await fetch(`${c.schedulerUrl}/pd/api/v1/operators`, {
        method: "POST",
        headers: { ...c.adminHeaders, "content-type": "application/json" },
        body: JSON.stringify({ name: "split-region", region_id: 1, keys: ["key0000000025"] }),
      });
      assert.equal(res.status, 201, await res.text());
      const regionsReady = () => {
        const ids = new Set<number>();
        for (const n of c.nodes) {
          for (const [id, p] of n.store.peers) {
            if (!p.storage.isInitialized() || p.leaderId() === 0) return false;
            ids.add(id);
          }
        }
        return ids.size === 2 && c.nodes.every((n) => n.store.peers.size === 2);
      };
      await pollUntil("two regions, each with a leader known on every store", regionsReady, {
        timeoutMs: 15_000,
        intervalMs: 50,
      });

      const hintFor = async (key: string) => {
        const r = await fetch(`${c.storeUrls[0]}/kv/${key}`, { headers: { [ROUTE_HEADER]: "1" } });
        await r.body?.cancel();
        return decodeRouteHint(r.headers.get(ROUTE_HEADER) ?? "");
      };
      const left = await hintFor("key0000000003");
      const right = await hintFor("key0000000040");
      assert.ok(left && right, "both answers carry a hint");
      assert.notEqual(left.regionId, right.regionId);
      assert.equal(new TextDecoder().decode(left.end), "key0000000025");
      assert.equal(new TextDecoder().decode(right.start), "key0000000025");
      assert.deepEqual([left.start.length, right.end.length], [0, 0]);
      assert.ok(left.version >= 2 && right.version >= 2, "a split raises both versions");

      const target = makeTarget({ kind: "mrkv", value: makeValue(16), route: "leader" });
      const result = await runLoad({
        target,
        endpoints: c.storeUrls,
        writePct: 50,
        concurrency: 2,
        keys: 50,
        durationMs: 30_000,
        requests: 100,
        prefill: false,
        timeoutMs: 5_000,
        seed: 11,
      });
      assert.equal(result.errorCount, 0, JSON.stringify(result.errors));
      const routes = result.routes!;
      assert.equal(routes.ranges, 2, JSON.stringify(routes));
      assert.equal(routes.routed + routes.unrouted, 100);
      assert.ok(routes.routed >= 90, JSON.stringify(routes));
    } finally {
      await c.close();
    }
  },
);
