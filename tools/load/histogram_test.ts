import assert from "node:assert/strict";
import { bucketHighest, bucketIndex, LatencyHistogram } from "./histogram.ts";

Deno.test("an empty histogram reports zeros", () => {
  // Scenario: a run where every request failed still prints a summary without NaN.
  const h = new LatencyHistogram();
  assert.deepEqual(h.summary(), { count: 0, meanMs: 0, p50Ms: 0, p95Ms: 0, p99Ms: 0, maxMs: 0 });
});

Deno.test("small values are exact and percentiles follow nearest rank", () => {
  // Scenario: samples 1..100 µs; the p-th percentile of 1..100 is p itself.
  const h = new LatencyHistogram();
  for (let us = 100; us >= 1; us--) h.recordUs(us); // order must not matter
  assert.equal(h.percentileUs(50), 50);
  assert.equal(h.percentileUs(95), 95);
  assert.equal(h.percentileUs(99), 99);
  assert.equal(h.percentileUs(100), 100);
  assert.equal(h.percentileUs(0.5), 1);
  assert.equal(h.summary().meanMs, 0.0505);
});

Deno.test("nearest rank rounds the rank up", () => {
  // Scenario: 3 samples; p50 needs rank ceil(1.5) = 2, p99 rank 3.
  const h = new LatencyHistogram();
  for (const us of [10, 20, 30]) h.recordUs(us);
  assert.equal(h.percentileUs(33), 10);
  assert.equal(h.percentileUs(50), 20);
  assert.equal(h.percentileUs(99), 30);
  // Exactly on a boundary: 2 of 3 samples is 66.67%, so p66 is still the 2nd.
  assert.equal(h.percentileUs(66), 20);
});

Deno.test("one outlier shows in p99 and max but not in p50", () => {
  // Scenario: 99 fast requests and one 2-second stall.
  const h = new LatencyHistogram();
  for (let i = 0; i < 99; i++) h.recordMs(1);
  h.recordMs(2000);
  const s = h.summary();
  assert.ok(Math.abs(s.p50Ms - 1) <= 1 / 64, `p50 ${s.p50Ms}`);
  assert.ok(Math.abs(s.p99Ms - 1) <= 1 / 64, `p99 ${s.p99Ms}`);
  assert.equal(s.maxMs, 2000);
  assert.equal(h.percentileUs(100), 2_000_000);
});

Deno.test("bucketed values err high by at most 1/64 and never pass the maximum", () => {
  // Scenario: every value from 128 µs to ~1 s (sampled) lands in a bucket whose reported value
  // is >= the value and within 1/64 of it.
  for (let us = 128; us < 1_000_000; us = Math.ceil(us * 1.013) + 1) {
    const hi = bucketHighest(bucketIndex(us));
    assert.ok(hi >= us && hi - us <= us / 64, `${us} µs reported as ${hi}`);
    const h = new LatencyHistogram();
    h.recordUs(us);
    assert.equal(h.percentileUs(50), us, "a single sample is reported as the exact maximum");
  }
});

Deno.test("bucket indexes are contiguous and monotonic", () => {
  // Scenario: walking values upward never skips or revisits a bucket.
  let last = -1;
  for (let us = 0; us < 1 << 16; us++) {
    const i = bucketIndex(us);
    assert.ok(i === last || i === last + 1, `value ${us}: bucket ${i} after ${last}`);
    if (i === last + 1 && last >= 0) assert.equal(bucketHighest(last), us - 1);
    last = i;
  }
});

Deno.test("huge values are clamped but the maximum stays exact", () => {
  const h = new LatencyHistogram();
  h.recordUs(2 ** 40);
  assert.equal(h.summary().maxMs, 2 ** 40 / 1000);
  assert.equal(h.percentileUs(50), 2 ** 37 - 1);
});

Deno.test("merge adds counts, sums and maxima", () => {
  const a = new LatencyHistogram();
  const b = new LatencyHistogram();
  for (let us = 1; us <= 50; us++) a.recordUs(us);
  for (let us = 51; us <= 100; us++) b.recordUs(us);
  a.merge(b);
  assert.equal(a.count, 100);
  assert.equal(a.percentileUs(50), 50);
  assert.equal(a.summary().maxMs, 0.1);
});

Deno.test("bad input is refused with a clear message", () => {
  const h = new LatencyHistogram();
  assert.throws(() => h.recordUs(-1), /non-negative/);
  assert.throws(() => h.recordMs(NaN), /finite/);
  assert.throws(() => h.percentileUs(0), /percentile must be in \(0, 100\]/);
  assert.throws(() => h.percentileUs(101), /percentile/);
});
