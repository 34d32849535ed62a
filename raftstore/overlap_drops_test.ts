import assert from "node:assert/strict";
import { OverlapDrops } from "./overlap_drops.ts";

Deno.test("a region refused for a moment (a split in flight) is not reported", () => {
  const drops = new OverlapDrops(3_000, 10_000);
  for (let t = 0; t < 2_900; t += 100) assert.equal(drops.note(7, t), undefined);
  drops.clear(7);
  assert.equal(drops.size, 0);
  // Drops that come back after a quiet interval start a new grace period.
  const later = new OverlapDrops(3_000, 10_000);
  assert.equal(later.note(7, 0), undefined);
  assert.equal(later.note(7, 20_000), undefined);
  assert.equal(later.note(7, 22_000), undefined);
});

Deno.test("a region refused for good is reported after the grace period, then at intervals", () => {
  const drops = new OverlapDrops(3_000, 10_000);
  const reports: [number, unknown][] = [];
  for (let t = 0; t <= 25_000; t += 500) {
    const r = drops.note(7, t);
    if (r) reports.push([t, r]);
  }
  assert.deepEqual(reports, [
    [3_000, { dropped: 7, forMs: 3_000 }],
    [13_000, { dropped: 20, forMs: 13_000 }],
    [23_000, { dropped: 20, forMs: 23_000 }],
  ]);
});

Deno.test("regions are reported on their own, and quiet ones are forgotten", () => {
  const drops = new OverlapDrops(1_000, 5_000);
  assert.equal(drops.note(1, 0), undefined);
  assert.equal(drops.note(2, 500), undefined);
  assert.deepEqual(drops.note(1, 1_000), { dropped: 2, forMs: 1_000 });
  assert.equal(drops.note(2, 1_000), undefined);
  assert.deepEqual(drops.note(2, 1_500), { dropped: 3, forMs: 1_000 });
  assert.equal(drops.size, 2);
  // Long after, a drop for a third region prunes the two quiet ones.
  assert.equal(drops.note(3, 60_000), undefined);
  assert.equal(drops.size, 1);
});
