/**
 * `deno bench -A scheduler/heartbeat_scale_bench.ts`: the scheduler's work for 1,000 region
 * heartbeats (admission and operator dispatch, already decoded) must not grow with the number of
 * regions it knows. The same 1,000 regions are reported into maps of 1,000, 10,000 and 100,000
 * regions, unchanged and with a new size each time.
 */
import type { Peer } from "../proto/metapb.ts";
import type { RegionHeartbeat } from "../proto/pdpb.ts";
import { openTestCluster } from "./_test_cluster.ts";

const BATCH = 1_000;
const key = (i: number) => new TextEncoder().encode(`t_${String(i).padStart(8, "0")}`);

function heartbeats(n: number): RegionHeartbeat[] {
  const out: RegionHeartbeat[] = [];
  for (let i = 0; i < n; i++) {
    const peers: Peer[] = [0, 1, 2].map((j) => ({
      id: 1_000_000 + 3 * i + j,
      storeId: 1 + ((i + j) % 5),
      role: "Voter",
    }));
    out.push({
      region: {
        id: 1000 + i,
        startKey: i === 0 ? new Uint8Array() : key(i),
        endKey: i === n - 1 ? new Uint8Array() : key(i + 1),
        epoch: { confVer: 3, version: 2 },
        peers,
      },
      leader: peers[0]!,
      pendingPeers: [],
      downPeers: [],
      approximateSize: 64 << 20,
      approximateKeys: 100_000,
    });
  }
  return out;
}

for (const size of [1_000, 10_000, 100_000]) {
  const all = heartbeats(size);
  const t = await openTestCluster();
  for (let i = 0; i < all.length; i += 10_000) {
    t.cluster.handleRegionHeartbeats(all.slice(i, i + 10_000));
  }
  // The batch: regions spread over the whole map.
  const step = Math.floor(size / BATCH);
  const batch = Array.from({ length: BATCH }, (_, i) => all[i * step]!);
  let d = 0;
  Deno.bench(`1,000 unchanged heartbeats, ${size} regions known`, { group: "unchanged" }, () => {
    t.cluster.handleRegionHeartbeats(batch);
  });
  Deno.bench(`1,000 heartbeats with a new size, ${size} regions known`, { group: "sized" }, () => {
    d++;
    t.cluster.handleRegionHeartbeats(
      batch.map((h) => ({ ...h, approximateSize: h.approximateSize + d })),
    );
  });
}
