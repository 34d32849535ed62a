/**
 * Test helpers: a {@link Cluster} over an in-memory Deno KV with a manual clock, and builders
 * for regions and heartbeats. Internal to tests (`_` prefix).
 *
 * @module
 */
import type { Peer, Region } from "../proto/metapb.ts";
import type { RegionHeartbeat } from "../proto/pdpb.ts";
import { Cluster } from "./cluster.ts";
import { DEFAULT_SCHEDULE_CONFIG, type ScheduleConfig } from "./config.ts";

/** A manual clock. */
export class ManualClock {
  constructor(public ms = 1_700_000_000_000) {}
  now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

/** A cluster in memory; `close()` it at the end of the test. */
export interface TestCluster {
  readonly cluster: Cluster;
  readonly clock: ManualClock;
  readonly kv: Deno.Kv;
  close(): Promise<void>;
}

/** Opens a test cluster (optionally over an existing KV, to test restarts). */
export async function openTestCluster(
  config: Partial<ScheduleConfig> = {},
  kv?: Deno.Kv,
): Promise<TestCluster> {
  const db = kv ?? await Deno.openKv(":memory:");
  const clock = new ManualClock();
  const { cluster } = await Cluster.open(db, {
    config: { ...DEFAULT_SCHEDULE_CONFIG, ...config },
    now: clock.now,
    saveIntervalMs: 5,
  });
  return {
    cluster,
    clock,
    kv: db,
    close: async () => {
      await cluster.close();
      if (!kv) db.close();
    },
  };
}

/** Bytes of a string. */
export const b = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A voter. */
export const voter = (id: number, storeId: number): Peer => ({ id, storeId, role: "Voter" });

/** A region. */
export function region(
  id: number,
  start: string | Uint8Array,
  end: string | Uint8Array,
  epoch: { confVer: number; version: number },
  peers: Peer[] = [],
): Region {
  return {
    id,
    startKey: typeof start === "string" ? b(start) : start,
    endKey: typeof end === "string" ? b(end) : end,
    epoch,
    peers,
  };
}

/** A heartbeat for `r` with the first peer leading unless `leader` says otherwise. */
export function heartbeat(r: Region, extra: Partial<RegionHeartbeat> = {}): RegionHeartbeat {
  return {
    region: r,
    leader: r.peers[0] ?? null,
    pendingPeers: [],
    downPeers: [],
    approximateSize: 0,
    approximateKeys: 0,
    ...extra,
  };
}
