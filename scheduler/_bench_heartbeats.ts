/**
 * Region heartbeats for the scheduler's benchmarks: `n` adjacent regions covering the whole key
 * space, 3 voters each over 5 stores, led by their first peer, 64 MiB and 100,000 keys each.
 *
 * @module
 */
import type { Peer } from "../proto/metapb.ts";
import type { RegionHeartbeat } from "../proto/pdpb.ts";

const key = (i: number) => new TextEncoder().encode(`t_${String(i).padStart(8, "0")}`);

export function benchHeartbeats(n: number): RegionHeartbeat[] {
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
