/**
 * Region heartbeat handling and the staleness rules (after TinyKV's project 3 heartbeat tests).
 * Setup as in 3C: stores 1, 2, 3 registered; regions 10..12 (3C's 0..2; IDs must be positive)
 * cover [i, i+1) with peers on stores (i+j) % 3, so store 0 is never registered.
 */
import assert from "node:assert/strict";
import { MrkvError } from "../proto/errors.ts";
import type { Peer, Region } from "../proto/metapb.ts";
import type { Cluster } from "./cluster.ts";
import type { RegionInfo } from "./region_info.ts";
import { b, heartbeat, openTestCluster, region, type TestCluster, voter } from "./_test_cluster.ts";

async function setUp(): Promise<{ t: TestCluster; regions: Region[] }> {
  const t = await openTestCluster();
  for (const id of [1, 2, 3]) await t.cluster.putStore({ id, address: `127.0.0.1:${20160 + id}` });
  const regions: Region[] = [];
  for (let i = 0; i < 3; i++) {
    const peers: Peer[] = [0, 1, 2].map((j) => voter(100 + 3 * i + j, (i + j) % 3));
    regions.push(
      region(
        10 + i,
        new Uint8Array([i]),
        new Uint8Array([i + 1]),
        { confVer: 2, version: 2 },
        peers,
      ),
    );
  }
  for (const r of regions) {
    assert.deepEqual(t.cluster.handleRegionHeartbeat(heartbeat(r)), { regionId: r.id });
  }
  return { t, regions };
}

function mustStale(c: Cluster, r: Region): void {
  assert.throws(
    () => c.handleRegionHeartbeat(heartbeat(r)),
    (e) => e instanceof MrkvError && e.code === "EpochNotMatch",
  );
}

function checkStats(c: Cluster): void {
  // Store stats must equal what the region map implies.
  type Want = { region: number; leader: number; size: number; leaderSize: number; pending: number };
  const want = new Map<number, Want>();
  for (const r of c.regions.regions()) {
    for (const p of r.meta.peers) {
      const w = want.get(p.storeId) ?? { region: 0, leader: 0, size: 0, leaderSize: 0, pending: 0 };
      w.region++;
      w.size += r.approximateSize;
      if (r.leader?.id === p.id) {
        w.leader++;
        w.leaderSize += r.approximateSize;
      }
      if (r.pendingPeers.some((x) => x.id === p.id)) w.pending++;
      want.set(p.storeId, w);
    }
  }
  for (const id of [0, 1, 2, 3]) {
    const s = c.regions.storeStats(id);
    const w = want.get(id) ?? { region: 0, leader: 0, size: 0, leaderSize: 0, pending: 0 };
    assert.deepEqual(
      {
        region: s.regionCount,
        leader: s.leaderCount,
        size: s.regionSize,
        leaderSize: s.leaderSize,
        pending: s.pendingPeerCount,
      },
      w,
      `store ${id}`,
    );
  }
}

const stored = (c: Cluster, id: number): RegionInfo => c.getRegion(id);

Deno.test("an identical heartbeat is accepted and changes nothing", async () => {
  const { t, regions } = await setUp();
  for (const r of regions) t.cluster.handleRegionHeartbeat(heartbeat(r));
  assert.equal(t.cluster.regions.count, 3);
  assert.equal(t.cluster.counters.regionsChanged, 3);
  for (const id of [0, 1, 2]) assert.equal(t.cluster.regions.storeStats(id).regionCount, 3);
  checkStats(t.cluster);
  await t.close();
});

Deno.test("a known region with either epoch field lower is stale, even if the other is higher", async () => {
  const { t, regions } = await setUp();
  for (const r of regions) {
    const v = { ...r, epoch: { confVer: 2, version: 3 } };
    t.cluster.handleRegionHeartbeat(heartbeat(v));
    mustStale(t.cluster, { ...r, epoch: { confVer: 3, version: 2 } });
    assert.deepEqual(stored(t.cluster, r.id).meta.epoch, { confVer: 2, version: 3 });
    const c = { ...v, epoch: { confVer: 3, version: 3 } };
    t.cluster.handleRegionHeartbeat(heartbeat(c));
    mustStale(t.cluster, v);
    assert.deepEqual(stored(t.cluster, r.id).meta.epoch, { confVer: 3, version: 3 });
  }
  assert.equal(t.cluster.counters.staleHeartbeats, 6);
  checkStats(t.cluster);
  await t.close();
});

Deno.test("same-epoch changes of leader, peers, pending peers and size are stored and stats follow", async () => {
  const { t, regions } = await setUp();
  const c = t.cluster;
  for (const r of regions) {
    c.handleRegionHeartbeat(heartbeat(r, { pendingPeers: [r.peers[1]!] }));
    assert.deepEqual(stored(c, r.id).pendingPeers, [r.peers[1]]);
    checkStats(c);
    c.handleRegionHeartbeat(heartbeat(r));
    assert.deepEqual(stored(c, r.id).pendingPeers, []);
    checkStats(c);
    c.handleRegionHeartbeat(heartbeat(r, { leader: r.peers[1]! }));
    assert.equal(stored(c, r.id).leader?.id, r.peers[1]!.id);
    assert.ok(c.regions.storeStats(r.peers[1]!.storeId).leaders.has(r.id));
    assert.ok(c.regions.storeStats(r.peers[0]!.storeId).followers.has(r.id));
    checkStats(c);
    c.handleRegionHeartbeat(heartbeat({ ...r, peers: [r.peers[0]!] }));
    assert.equal(stored(c, r.id).meta.peers.length, 1);
    checkStats(c);
    c.handleRegionHeartbeat(heartbeat(r)); // peers added back, same epoch
    assert.equal(stored(c, r.id).meta.peers.length, 3);
    c.handleRegionHeartbeat(heartbeat(r, { approximateSize: 144 * 1024 * 1024 }));
    assert.equal(stored(c, r.id).approximateSize, 144);
    checkStats(c);
  }
  for (const id of [1, 2, 3]) assert.equal(c.regions.storeStats(id).pendingPeerCount, 0);
  assert.equal(
    c.regions.storeStats(0).regionCount,
    3,
    "peers on an unregistered store are counted",
  );
  await t.close();
});

Deno.test("a split reported in either order ends with every key in the right region", async () => {
  const t = await openTestCluster();
  const c = t.cluster;
  const whose = (k: string) => c.regions.getRegionByKey(b(k))?.meta.id;
  c.handleRegionHeartbeat(heartbeat(region(1, "", "", { confVer: 1, version: 1 })));
  assert.equal(whose("foo"), 1);
  // The new left half first: equal epoch to the region it overlaps is accepted.
  c.handleRegionHeartbeat(heartbeat(region(2, "", "m", { confVer: 1, version: 1 })));
  assert.equal(whose("a"), 2);
  assert.equal(whose("z"), undefined, "the overlapped region left both indexes");
  assert.equal(c.regions.getRegion(1), undefined);
  c.handleRegionHeartbeat(heartbeat(region(1, "m", "", { confVer: 1, version: 2 })));
  assert.equal(whose("z"), 1);
  // The old region first this time.
  c.handleRegionHeartbeat(heartbeat(region(1, "q", "", { confVer: 1, version: 3 })));
  assert.equal(whose("z"), 1);
  assert.equal(whose("a"), 2);
  assert.equal(whose("n"), undefined, "the gap stays until the other half reports");
  c.handleRegionHeartbeat(heartbeat(region(3, "m", "q", { confVer: 1, version: 1 })));
  assert.equal(whose("n"), 3);
  // An unknown region lower than one it overlaps is stale; with no overlap it is fine.
  mustStale(c, region(4, "a", "b", { confVer: 0, version: 0 }));
  mustStale(c, region(4, "a", "b", { confVer: 1, version: 0 }));
  assert.equal(whose("a"), 2);
  await t.close();
});

Deno.test("regions without peers, leader or epoch, and peers on unknown stores, break nothing", async () => {
  const t = await openTestCluster();
  const c = t.cluster;
  c.handleRegionHeartbeat({
    region: region(7, "", "", { confVer: 0, version: 0 }),
    leader: null,
    pendingPeers: [voter(99, 5)],
    downPeers: [],
    approximateSize: 0,
    approximateKeys: 0,
  });
  c.handleRegionHeartbeat(heartbeat(region(7, "", "", { confVer: 0, version: 0 }, [voter(1, 42)]), {
    leader: voter(2, 43),
  }));
  assert.equal(c.getRegion(7).leader, null, "a leader that is not a peer is ignored");
  assert.equal(c.regions.storeStats(42).regionCount, 1);
  assert.equal(c.regions.storeStats(5).pendingPeerCount, 0);
  await t.close();
});

/** Splits every region at the middle of its first byte range (3C TestRegionSplitAndMerge). */
Deno.test("seven rounds of splits, then merges, then a mix keep every key in exactly one region", async () => {
  const t = await openTestCluster();
  const c = t.cluster;
  type R = { id: number; start: number; end: number; version: number }; // end 256 = +inf
  let rs: R[] = [{ id: 1, start: 0, end: 256, version: 1 }];
  const key = (x: number) => (x === 0 ? new Uint8Array() : new Uint8Array([x]));
  const endKey = (x: number) => (x === 256 ? new Uint8Array() : new Uint8Array([x]));
  const send = () => {
    for (const r of rs) {
      c.handleRegionHeartbeat(
        heartbeat(region(r.id, key(r.start), endKey(r.end), { confVer: 1, version: r.version })),
      );
      assert.equal(c.getRegion(r.id).meta.id, r.id);
      assert.equal(c.regions.getRegionByKey(key(r.start))?.meta.id, r.id);
      assert.equal(c.regions.getRegionByKey(new Uint8Array([r.end - 1]))?.meta.id, r.id);
    }
    for (const r of rs) {
      assert.equal(c.regions.getRegionByKey(new Uint8Array([r.end - 1]))?.meta.id, r.id);
      if (r.end < 256) {
        const next = c.regions.getRegionByKey(new Uint8Array([r.end]));
        assert.ok(next && next.meta.id !== r.id);
      }
    }
    for (let k = 0; k < 256; k++) assert.ok(c.regions.getRegionByKey(new Uint8Array([k])));
    assert.equal(c.regions.count, rs.length);
  };
  const split = () => {
    const n = rs.length;
    rs = rs.flatMap((r) => {
      const mid = Math.floor((r.start + r.end) / 2);
      if (mid === r.start) return [r];
      return [
        { id: r.id + n, start: r.start, end: mid, version: r.version + 1 },
        { id: r.id + 2 * n, start: mid, end: r.end, version: r.version + 1 },
      ];
    });
  };
  const merge = () => {
    const n = rs.length;
    const out: R[] = [];
    for (let i = 0; i < rs.length; i += 2) {
      const l = rs[i]!, r = rs[i + 1];
      if (!r) out.push(l);
      else {out.push({
          id: l.id + n,
          start: l.start,
          end: r.end,
          version: Math.max(l.version, r.version) + 1,
        });}
    }
    rs = out;
  };
  for (let i = 0; i < 7; i++) {
    split();
    send();
  }
  for (let i = 0; i < 7; i++) {
    merge();
    send();
  }
  for (let i = 0; i < 14; i++) {
    if ((i + 1) % 3 === 0) merge();
    else split();
    send();
  }
  await t.close();
});

Deno.test("2,000 concurrent region heartbeats all succeed", async () => {
  const t = await openTestCluster();
  await t.cluster.putStore({ id: 1, address: "127.0.0.1:1" });
  const key = (
    i: number,
  ) => (i === 0 || i === 2000 ? new Uint8Array() : b(String(i).padStart(5, " ")));
  const results = await Promise.all(
    Array.from(
      { length: 2000 },
      (_, i) =>
        Promise.resolve().then(() =>
          t.cluster.handleRegionHeartbeat(
            heartbeat(
              region(10 + i, key(i), key(i + 1), { confVer: 1, version: 1 }, [voter(5000 + i, 1)]),
            ),
          )
        ),
    ),
  );
  assert.equal(results.length, 2000);
  assert.equal(t.cluster.regions.count, 2000);
  assert.equal(t.cluster.regions.storeStats(1).leaderCount, 2000);
  await t.close();
});

Deno.test("regions saved before a restart come back; overlapping saved records resolve to the newer", async () => {
  const t = await openTestCluster();
  t.cluster.handleRegionHeartbeat(
    heartbeat(region(1, "", "m", { confVer: 1, version: 2 }, [voter(5, 1)])),
  );
  t.cluster.handleRegionHeartbeat(
    heartbeat(region(2, "m", "", { confVer: 1, version: 2 }, [voter(6, 1)])),
  );
  await t.cluster.close();
  // A stale record as if a crash had left it behind: region 9 covering both.
  const { encodeCbor } = await import("../proto/codec.ts");
  await t.kv.set(
    ["region", 9],
    encodeCbor({ region: region(9, "", "", { confVer: 1, version: 1 }), leader: null }),
  );
  const again = await openTestCluster({}, t.kv);
  assert.deepEqual(again.cluster.regions.regions().map((r) => r.meta.id), [1, 2]);
  assert.equal(again.cluster.getRegion(1).leader?.id, 5);
  await again.close();
  assert.equal((await t.kv.get(["region", 9])).value, null, "the stale record was dropped");
  t.kv.close();
});

Deno.test("split times for the merge cool-down: start-up counts as a split; a shrunk or new region splits, a merge does not", async () => {
  const { t, regions } = await setUp();
  try {
    const c = t.cluster;
    const [r10, r11] = [regions[0]!, regions[1]!];
    t.clock.advance(1000);
    assert.equal(c.sinceSplit(10), 1000, "nothing is known to have split before start-up");
    // Region 10 splits: it keeps [0, 0.5) and new region 20 takes the rest.
    const half = new Uint8Array([0, 128]);
    c.handleRegionHeartbeat(heartbeat({ ...r10, endKey: half, epoch: { confVer: 2, version: 3 } }));
    t.clock.advance(500);
    assert.equal(c.sinceSplit(10), 500, "the shrunk region split");
    c.handleRegionHeartbeat(heartbeat({
      ...r10,
      id: 20,
      startKey: half,
      epoch: { confVer: 2, version: 3 },
      peers: r10.peers.map((p) => ({ ...p, id: p.id + 1000 })),
    }));
    t.clock.advance(500);
    assert.equal(c.sinceSplit(20), 500, "the new region split");
    assert.equal(c.sinceSplit(11), 2000);
    // Region 11 takes in region 12 (a merge): its range grows, which is no split.
    c.handleRegionHeartbeat(heartbeat({
      ...r11,
      endKey: regions[2]!.endKey,
      epoch: { confVer: 2, version: 4 },
    }));
    assert.equal(c.sinceSplit(11), 2000, "a merge is not a split");
    assert.equal(c.regions.getRegion(12), undefined, "the merged source is gone");
    c.forgetSplitsBefore(600);
    assert.equal(c.sinceSplit(10), 2000, "forgotten: counted from start-up again");
    assert.equal(c.sinceSplit(20), 500, "still remembered");
  } finally {
    await t.close();
  }
});
