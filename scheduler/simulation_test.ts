/**
 * Balancing simulations: 5 stores and 1,000 regions placed unevenly; a
 * simulated cluster carries out every operator step the scheduler returns in heartbeat
 * responses, one step per region per round. The scheduler must reach max/min ≤ 1.05, never
 * move a region (or a leadership) back to a store it left, and use at most 1.2× the minimum
 * number of moves. The figures are printed for the report.
 */
import assert from "node:assert/strict";
import type { Peer, Region } from "../proto/metapb.ts";
import type { OperatorStep } from "../proto/pdpb.ts";
import { emptyStoreStats, seededRandom } from "./_mock_cluster.ts";
import { heartbeat, openTestCluster, type TestCluster } from "./_test_cluster.ts";
import { Coordinator } from "./coordinator.ts";
import { BALANCE_LEADER_NAME, BALANCE_REGION_NAME } from "./schedulers/mod.ts";

const STORES = [1, 2, 3, 4, 5];
const REGIONS = 1000;
const SIZE = 10 << 20; // every region 10 MiB, so the minimum number of moves is exact

interface SimRegion {
  region: Region;
  leader: Peer;
  pending: Peer[];
}

/** Minimum moves to bring `counts` within max/min ≤ 1.05 (each move shifts one unit). */
function minimumMoves(counts: number[]): number {
  const total = counts.reduce((a, b) => a + b, 0);
  let best = Infinity;
  for (let low = 1; low <= total; low++) {
    const high = Math.floor(low * 1.05);
    if (low * counts.length > total || high * counts.length < total) continue;
    const excess = counts.reduce((a, c) => a + Math.max(0, c - high), 0);
    const deficit = counts.reduce((a, c) => a + Math.max(0, low - c), 0);
    best = Math.min(best, Math.max(excess, deficit));
  }
  return best;
}

class Sim {
  readonly regions = new Map<number, SimRegion>();
  readonly leftStores = new Map<number, Set<number>>(); // region → stores its peers left
  readonly leaderLeft = new Map<number, Set<number>>(); // region → stores its leadership left
  peerMoves = 0;
  leaderMoves = 0;
  violations: string[] = [];

  constructor(readonly t: TestCluster, readonly coordinator: Coordinator) {}

  /** Region sizes in bytes; equal unless a test varies them. */
  sizeOf: (regionId: number) => number = () => SIZE;

  static async create(schedulers: string[], seed: number): Promise<Sim> {
    const t = await openTestCluster({ leaderScheduleLimit: 4, regionScheduleLimit: 16 });
    for (const id of STORES) await t.cluster.putStore({ id, address: `127.0.0.1:${20160 + id}` });
    return new Sim(t, new Coordinator(t.cluster, schedulers, seededRandom(seed)));
  }

  add(id: number, stores: number[], leaderStore: number, peerIds: { next: number }): void {
    const peers = stores.map((storeId): Peer => ({ id: peerIds.next++, storeId, role: "Voter" }));
    const key = (
      i: number,
    ) => (i === 0 ? new Uint8Array() : new TextEncoder().encode(`k${String(i).padStart(5, "0")}`));
    const region: Region = {
      id,
      startKey: key(id - 1),
      endKey: id === REGIONS ? new Uint8Array() : key(id),
      epoch: { confVer: 1, version: 1 },
      peers,
    };
    this.regions.set(id, {
      region,
      leader: peers.find((p) => p.storeId === leaderStore)!,
      pending: [],
    });
  }

  send(id: number): OperatorStep | undefined {
    const s = this.regions.get(id)!;
    const res = this.t.cluster.handleRegionHeartbeat(
      heartbeat(s.region, {
        leader: s.leader,
        pendingPeers: s.pending,
        approximateSize: this.sizeOf(id),
      }),
    );
    assert.equal(res.error, undefined);
    s.pending = []; // a new learner catches up by the next heartbeat
    return res.step;
  }

  apply(id: number, step: OperatorStep): void {
    const s = this.regions.get(id)!;
    const r = s.region;
    const bump = (peers: Peer[]) => {
      s.region = { ...r, peers, epoch: { ...r.epoch, confVer: r.epoch.confVer + 1 } };
    };
    // Steps repeat on every heartbeat until done; like a store, ignore one already applied.
    switch (step.type) {
      case "AddLearner":
        if (r.peers.some((p) => p.id === step.peer.id)) break;
        if (this.leftStores.get(id)?.has(step.peer.storeId)) {
          this.violations.push(`region ${id} moved back to store ${step.peer.storeId}`);
        }
        bump([...r.peers, step.peer]);
        s.pending = [step.peer];
        break;
      case "PromoteLearner":
        if (r.peers.some((p) => p.id === step.peer.id && p.role === "Voter")) break;
        bump(r.peers.map((p) => (p.id === step.peer.id ? { ...p, role: "Voter" } : p)));
        break;
      case "RemovePeer":
        if (!r.peers.some((p) => p.id === step.peer.id)) break;
        assert.notEqual(step.peer.id, s.leader.id, "never remove the leader");
        bump(r.peers.filter((p) => p.id !== step.peer.id));
        if (!this.leftStores.has(id)) this.leftStores.set(id, new Set());
        this.leftStores.get(id)!.add(step.peer.storeId);
        this.peerMoves++;
        break;
      case "TransferLeader":
        if (this.leaderLeft.get(id)?.has(step.peer.storeId)) {
          this.violations.push(
            `region ${id}'s leadership moved back to store ${step.peer.storeId}`,
          );
        }
        if (!this.leaderLeft.has(id)) this.leaderLeft.set(id, new Set());
        this.leaderLeft.get(id)!.add(s.leader.storeId);
        s.leader = step.peer;
        this.leaderMoves++;
        break;
      case "SplitRegion":
        assert.fail("no splits in this simulation");
    }
  }

  /** Runs rounds until nothing is scheduled or running; returns the number of rounds. */
  async run(maxRounds: number): Promise<number> {
    const c = this.t.cluster;
    for (const id of this.regions.keys()) this.send(id);
    let idle = 0;
    for (let round = 1; round <= maxRounds; round++) {
      this.t.clock.advance(100);
      for (const id of STORES) {
        c.handleStoreHeartbeat(emptyStoreStats(id));
      }
      const added = await this.coordinator.tick();
      for (const op of c.operators.running()) {
        const step = this.send(op.regionId);
        if (step) this.apply(op.regionId, step);
      }
      idle = added.length === 0 && c.operators.running().length === 0 ? idle + 1 : 0;
      if (idle >= 3) return round;
    }
    throw new Error(`not balanced after ${maxRounds} rounds`);
  }

  counts(f: (storeId: number) => number): number[] {
    return STORES.map(f);
  }
}

const ratio = (xs: number[]) => Math.max(...xs) / Math.min(...xs);

Deno.test("balance-region: 5 stores, 1,000 uneven regions → max/min ≤ 1.05 within 1.2× the minimum moves, nothing moves back", async () => {
  const sim = await Sim.create([BALANCE_REGION_NAME], 7);
  const rnd = seededRandom(42);
  const weights = [10, 6, 3, 1, 1];
  const peerIds = { next: 10_000 };
  for (let id = 1; id <= REGIONS; id++) {
    const chosen: number[] = [];
    while (chosen.length < 3) {
      const free = STORES.filter((s) => !chosen.includes(s));
      const total = free.reduce((a, s) => a + weights[s - 1]!, 0);
      let x = rnd() * total;
      const pick = free.find((s) => (x -= weights[s - 1]!) < 0) ?? free[free.length - 1]!;
      chosen.push(pick);
    }
    sim.add(id, chosen, chosen[0]!, peerIds);
  }
  const before = sim.counts((s) =>
    [...sim.regions.values()].filter((r) => r.region.peers.some((p) => p.storeId === s)).length
  );
  const min = minimumMoves(before);
  const rounds = await sim.run(20_000);
  const after = sim.counts((s) => sim.t.cluster.regions.storeStats(s).regionSize);
  console.log(
    `balance-region: peers per store ${before.join("/")} → sizes ${after.join("/")} MiB, ` +
      `ratio ${ratio(after).toFixed(4)}, moves ${sim.peerMoves} vs minimum ${min} ` +
      `(${(sim.peerMoves / min).toFixed(3)}×), ${rounds} rounds`,
  );
  assert.deepEqual(sim.violations, []);
  assert.ok(ratio(after) <= 1.05, `ratio ${ratio(after)}`);
  assert.ok(sim.peerMoves <= 1.2 * min, `${sim.peerMoves} moves > 1.2 × ${min}`);
  for (const r of sim.regions.values()) assert.equal(r.region.peers.length, 3);
  await sim.t.close();
});

Deno.test("balance-leader: 1,000 regions with skewed leaders → max/min ≤ 1.05 within 1.2× the minimum moves, nothing moves back", async () => {
  const sim = await Sim.create([BALANCE_LEADER_NAME], 11);
  const rnd = seededRandom(99);
  const weights = [12, 5, 2, 1, 1];
  const peerIds = { next: 10_000 };
  for (let id = 1; id <= REGIONS; id++) {
    const stores = [0, 1, 2].map((j) => ((id + j) % 5) + 1);
    const total = stores.reduce((a, s) => a + weights[s - 1]!, 0);
    let x = rnd() * total;
    const leader = stores.find((s) => (x -= weights[s - 1]!) < 0) ?? stores[2]!;
    sim.add(id, stores, leader, peerIds);
  }
  const before = sim.counts((s) =>
    [...sim.regions.values()].filter((r) => r.leader.storeId === s).length
  );
  const min = minimumMoves(before);
  const rounds = await sim.run(20_000);
  const after = sim.counts((s) => sim.t.cluster.regions.storeStats(s).leaderCount);
  console.log(
    `balance-leader: leaders per store ${before.join("/")} → ${after.join("/")}, ` +
      `ratio ${ratio(after).toFixed(4)}, moves ${sim.leaderMoves} vs minimum ${min} ` +
      `(${(sim.leaderMoves / min).toFixed(3)}×), ${rounds} rounds`,
  );
  assert.deepEqual(sim.violations, []);
  assert.ok(ratio(after) <= 1.05, `ratio ${ratio(after)}`);
  assert.ok(sim.leaderMoves <= 1.2 * min, `${sim.leaderMoves} moves > 1.2 × ${min}`);
  await sim.t.close();
});

Deno.test("balance-region with region sizes from 4 to 16 MiB still reaches max/min ≤ 1.05 without moving back", async () => {
  const sim = await Sim.create([BALANCE_REGION_NAME], 3);
  const rnd = seededRandom(8);
  const sizes = new Map<number, number>();
  sim.sizeOf = (id) => sizes.get(id)!;
  const peerIds = { next: 10_000 };
  for (let id = 1; id <= REGIONS; id++) {
    sizes.set(id, (4 + Math.floor(rnd() * 13)) << 20);
    const first = rnd() < 0.7 ? 1 : 2;
    const stores = [first, first + 1, first + 2];
    sim.add(id, stores, stores[0]!, peerIds);
  }
  const mib = (s: number) =>
    [...sim.regions.values()].filter((r) => r.region.peers.some((p) => p.storeId === s)).reduce(
      (a, r) => a + sizes.get(r.region.id)! / (1 << 20),
      0,
    );
  const before = sim.counts(mib);
  const rounds = await sim.run(20_000);
  const after = sim.counts((s) => sim.t.cluster.regions.storeStats(s).regionSize);
  // Lower bound: every store must end at most 1.05 × the average, so it must shed at least
  // its excess; count the fewest of its own regions (largest first) that cover it.
  const avg = before.reduce((a, b) => a + b, 0) / before.length;
  let lower = 0;
  for (const store of STORES) {
    let excess = before[store - 1]! - 1.05 * avg;
    const mine = [...sim.regions.values()]
      .filter((r) => r.region.peers.some((p) => p.storeId === store))
      .map((r) => sizes.get(r.region.id)! / (1 << 20))
      .sort((a, b) => b - a);
    for (const size of mine) {
      if (excess <= 0) break;
      excess -= size;
      lower++;
    }
  }
  console.log(
    `balance-region (4..16 MiB): ${before.join("/")} → ${after.join("/")} MiB, ` +
      `ratio ${ratio(after).toFixed(4)}, moves ${sim.peerMoves} (lower bound ${lower}, ` +
      `${(sim.peerMoves / lower).toFixed(3)}×), ${rounds} rounds`,
  );
  assert.deepEqual(sim.violations, []);
  assert.ok(ratio(after) <= 1.05, `ratio ${ratio(after)}`);
  await sim.t.close();
});
