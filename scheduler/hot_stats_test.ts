/** Hot-region statistics: smoothed rates, the hot degree, and when rates go stale. */
import assert from "node:assert/strict";
import { HOT_RATE_WINDOW_MS, HotStats, isHot } from "./hot_stats.ts";

const flow = (bytes: number, keys: number, intervalMs = 1000) => ({
  bytesWritten: bytes,
  bytesRead: 0,
  keysWritten: keys,
  keysRead: 0,
  intervalMs,
});

Deno.test("rates average the reports of the last few seconds", () => {
  const h = new HotStats();
  h.update(1, flow(10_000, 100), 0, 1);
  assert.equal(h.get(1, 0)!.writeBytesPerSec, 10_000);
  assert.equal(h.get(1, 0)!.writeKeysPerSec, 100);
  h.update(1, flow(0, 0), 1000, 1);
  assert.equal(h.get(1, 1000)!.writeBytesPerSec, 5_000, "one quiet second halves two");
  assert.equal(h.get(1, 1000)!.spanMs, 2000);
  for (let i = 2; i < 20; i++) h.update(1, flow(3_000, 30, 1000), i * 1000, 1);
  const r = h.get(1, 19_000)!;
  assert.equal(r.spanMs, HOT_RATE_WINDOW_MS, "older reports leave the average");
  assert.equal(r.writeBytesPerSec, 3_000);
});

Deno.test("the degree counts hot reports in a row; a new version or a cold report resets it", () => {
  const h = new HotStats();
  for (let i = 0; i < 3; i++) h.update(1, flow(100_000, 1000), i * 1000, 1);
  assert.equal(h.get(1, 2000)!.degree, 3);
  assert.ok(isHot(h.get(1, 2000)!, "write") && !isHot(h.get(1, 2000)!, "read"));
  h.update(1, flow(100_000, 1000), 3000, 2);
  assert.equal(h.get(1, 3000)!.degree, 1, "split or merged: counted afresh");
  h.update(2, flow(10, 1), 0, 1);
  assert.equal(h.get(2, 0)!.degree, 0, "below the least hot rates");
});

Deno.test("a region that stops reporting goes stale after a few of its intervals", () => {
  const h = new HotStats();
  h.update(1, flow(100_000, 1000, 200), 0, 1);
  assert.ok(h.get(1, 2_800));
  assert.equal(h.get(1, 2_801), undefined);
  assert.deepEqual([...h.entries(3_000)], []);
});
