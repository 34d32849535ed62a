/**
 * Which region heartbeats are sent (heartbeat_report.ts): material changes only, steps under
 * way every round, and every region refreshed once per period, a slice per round.
 */
import assert from "node:assert/strict";
import type { RegionHeartbeat } from "../proto/pdpb.ts";
import type { Region } from "../proto/metapb.ts";
import { isMaterialChange, MIN_SIZE_CHANGE, ReportPlan } from "./heartbeat_report.ts";

function hb(id: number, over: Partial<RegionHeartbeat> = {}, epoch = { confVer: 1, version: 1 }) {
  const region: Region = {
    id,
    startKey: new Uint8Array(),
    endKey: new Uint8Array(),
    epoch,
    peers: [
      { id: 10 * id + 1, storeId: 1, role: "Voter" },
      { id: 10 * id + 2, storeId: 2, role: "Voter" },
    ],
  };
  return {
    region,
    leader: region.peers[0]!,
    pendingPeers: [],
    downPeers: [],
    approximateSize: 0,
    approximateKeys: 0,
    ...over,
  } satisfies RegionHeartbeat;
}

Deno.test("leader, epoch, peers, pending and down peers are material; small size drift is not", () => {
  const plan = new ReportPlan(60_000, 1000);
  const base = hb(1, { approximateSize: 10 * MIN_SIZE_CHANGE, approximateKeys: 50_000 });
  assert.ok(plan.isNews(base), "never reported");
  plan.sent([base], new Set());
  assert.equal(plan.isNews(base), false);
  const peer2 = base.region.peers[1]!;
  for (
    const changed of [
      { ...base, leader: peer2 },
      hb(1, { approximateSize: base.approximateSize }, { confVer: 2, version: 1 }),
      hb(1, { approximateSize: base.approximateSize }, { confVer: 1, version: 2 }),
      { ...base, pendingPeers: [peer2] },
      { ...base, downPeers: [{ peer: peer2, downSeconds: 30 }] },
      { ...base, region: { ...base.region, peers: [...base.region.peers.slice(0, 1)] } },
      { ...base, approximateSize: base.approximateSize * 1.2 },
      { ...base, approximateKeys: 60_000 },
    ]
  ) {
    assert.ok(plan.isNews(changed), JSON.stringify(changed, (_, v) => v));
  }
  // Down for longer is not news (the list of down peers is); small drifts are not either.
  plan.sent([{ ...base, downPeers: [{ peer: peer2, downSeconds: 30 }] }], new Set());
  assert.equal(plan.isNews({ ...base, downPeers: [{ peer: peer2, downSeconds: 90 }] }), false);
  assert.equal(isMaterialChange(undefined, base), true);
  plan.sent([base], new Set());
  assert.equal(plan.isNews({ ...base, approximateSize: base.approximateSize * 1.05 }), false);
  assert.equal(plan.isNews({ ...base, approximateKeys: 50_500 }), false);
  const tiny = hb(2, { approximateSize: 100 });
  plan.sent([tiny], new Set());
  assert.equal(plan.isNews({ ...tiny, approximateSize: 900_000 }), false, "under 1 MiB");
});

Deno.test("every led region is forced once per refresh period, a slice per round", () => {
  const plan = new ReportPlan(10_000, 1000); // 10 rounds per period
  const led = Array.from({ length: 25 }, (_, i) => i + 1);
  const seen: number[] = [];
  for (let round = 0; round < 10; round++) {
    const r = plan.round(() => led, []);
    assert.ok(r.forced.size <= 3, `round ${round} forced ${r.forced.size}`);
    seen.push(...r.forced);
  }
  assert.deepEqual([...new Set(seen)].sort((a, b) => a - b), led);
});

Deno.test("watched regions are looked at every round; a region with a step under way is forced", () => {
  const plan = new ReportPlan(60_000, 1000);
  const r1 = plan.round(() => [1, 2, 3], [7, 8]);
  assert.deepEqual([...r1.watched], [7, 8]);
  plan.sent([hb(7)], new Set([7]));
  plan.expectStep(9);
  const r2 = plan.round(() => [1, 2, 3], [7, 8]);
  assert.ok(r2.forced.has(7) && r2.forced.has(9), "steps under way are forced");
  assert.deepEqual([...r2.watched], [8], "a forced region is not also watched");
  plan.sent([hb(7), hb(9)], new Set()); // answers without a step: done
  const r3 = plan.round(() => [1, 2, 3], []);
  assert.ok(!r3.forced.has(7) && !r3.forced.has(9));
  plan.retain((id) => id !== 7);
  assert.ok(plan.isNews(hb(7)), "a region no longer led is forgotten");
  assert.equal(plan.isNews(hb(9)), false);
});
