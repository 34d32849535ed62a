import assert from "node:assert/strict";
import { boundaryIndex, boundaryKey, MAX_KEYS_PER_SPLIT, quantile, splitKeys } from "./plan.ts";

Deno.test("boundary keys sort like their indexes and map back", () => {
  assert.equal(boundaryKey(7, 10_000), "r00007");
  assert.equal(boundaryKey(42, 100), "r042");
  const keys = [1, 2, 10, 99, 100, 9999].map((i) => boundaryKey(i, 10_000));
  assert.deepEqual([...keys].sort(), keys);
  for (const i of [1, 2, 10, 9999]) {
    assert.equal(boundaryIndex(boundaryKey(i, 10_000), 10_000, false), i);
  }
  assert.equal(boundaryIndex("", 10_000, false), 0);
  assert.equal(boundaryIndex("", 10_000, true), 10_000);
  assert.equal(boundaryIndex("r00005x", 10_000, false), 6, "a foreign key: the next boundary");
  assert.equal(boundaryIndex("a", 10_000, false), 1);
});

Deno.test("repeated halving at the first key reaches exactly n regions", () => {
  for (const n of [1, 2, 3, 7, 100, 1000]) {
    let regions: [string, string][] = [["", ""]];
    let rounds = 0;
    for (;;) {
      const next: [string, string][] = [];
      let split = false;
      for (const [s, e] of regions) {
        const keys = splitKeys(s, e, n);
        if (keys.length === 0) next.push([s, e]);
        else {
          split = true;
          next.push([s, keys[0]!], [keys[0]!, e]);
        }
      }
      regions = next;
      if (!split) break;
      rounds++;
    }
    assert.equal(regions.length, n);
    assert.ok(rounds <= Math.ceil(Math.log2(n)) + 1, `${rounds} rounds for ${n}`);
    for (let i = 1; i < n; i++) assert.equal(regions[i]![0], boundaryKey(i, n));
  }
});

Deno.test("a split names every boundary inside the region, middle first, at most 100", () => {
  const keys = splitKeys("r0010", "r0015", 1000);
  assert.deepEqual(keys, ["r0012", "r0013", "r0011", "r0014"]);
  assert.deepEqual(splitKeys("r0010", "r0011", 1000), []);
  assert.equal(splitKeys("", "", 10_000).length, MAX_KEYS_PER_SPLIT);
  assert.deepEqual(splitKeys("", "", 3), ["r1", "r2"]);
});

Deno.test("quantiles by nearest rank", () => {
  const xs = Array.from({ length: 100 }, (_, i) => 100 - i);
  assert.equal(quantile(xs, 0.5), 50);
  assert.equal(quantile(xs, 0.99), 99);
  assert.equal(quantile(xs, 1), 100);
  assert.ok(Number.isNaN(quantile([], 0.5)));
});
