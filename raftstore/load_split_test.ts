/** Load-based split's sampler: the split key it picks, its thresholds and window, its memory. */
import assert from "node:assert/strict";
import type { Region } from "../proto/metapb.ts";
import { seededRandom } from "../raft/logger.ts";
import type { SplitWorker } from "./split.ts";
import type { Store } from "./store.ts";
import {
  LoadSampler,
  type LoadSplitConfig,
  type LoadSplitDecision,
  LoadSplitWorker,
  MAX_SAMPLED_REGIONS,
  MAX_TRACKED_REGIONS,
  SAMPLE_KEYS,
} from "./load_split.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const key = (n: number) => enc.encode(`key-${String(n).padStart(5, "0")}`);

function region(id: number, start = "", end = "", version = 1): Region {
  return {
    id,
    startKey: enc.encode(start),
    endKey: enc.encode(end),
    epoch: { confVer: 1, version },
    peers: [],
  };
}

const CONFIG: LoadSplitConfig = {
  enabled: true,
  qpsThreshold: 100,
  byteThreshold: 0,
  detectWindowMs: 4_000,
};

/** A sampler on a clock the test moves, and a way to run one interval of requests. */
function harness(config: Partial<LoadSplitConfig> = {}, regions = [region(1)]) {
  let now = 0;
  const random = seededRandom(7);
  const sampler = new LoadSampler({ ...CONFIG, ...config }, () => now, random);
  const byId = new Map(regions.map((r) => [r.id, r]));
  return {
    sampler,
    random,
    byId,
    /** Records `requests` (each a key index) into region 1, then ends the interval. */
    interval(requests: () => number, count: number, bytes = 10, regionId = 1) {
      for (let i = 0; i < count; i++) sampler.record(regionId, key(requests()), undefined, bytes);
      now += sampler.intervalMs;
      return sampler.roll((id) => byId.get(id));
    },
    /**
     * Runs intervals of `run` until a split is decided (at most `max`); it must not come before
     * the window's fourth interval. A window's last interval may find no candidate good enough
     * (the reservoir missed the middle): the next interval tries again.
     */
    untilSplit(run: () => LoadSplitDecision[], max = 8): LoadSplitDecision | undefined {
      for (let i = 1; i <= max; i++) {
        const [d] = run();
        if (d) {
          assert.ok(i >= 4, `decided after ${i} intervals, before the window`);
          return d;
        }
      }
      return undefined;
    },
  };
}

Deno.test("a load on 1% of the keys splits at a key that halves it, after the window", () => {
  const h = harness();
  assert.equal(h.sampler.windowIntervals, 4);
  // Keys 500..599 of 10,000 take every request, 300 a second (threshold 100).
  const hot = () => 500 + Math.floor(h.random() * 100);
  const d = h.untilSplit(() => h.interval(hot, 300));
  assert.ok(d, "hot for the whole window: split");
  const n = Number(dec.decode(d.key).slice(4));
  assert.ok(n >= 530 && n <= 570, `split key ${n} is near the middle of the hot range`);
  assert.ok(d.imbalance <= 0.25);
  assert.ok(d.qps >= 299 && d.qps <= 301, `qps ${d.qps}`);
  // The streak starts over: the next interval decides nothing.
  assert.deepEqual(h.interval(hot, 300), []);
});

Deno.test("a skewed load splits where the load halves, not where the keys do", () => {
  const h = harness();
  // 80% of requests on keys 0..9, 20% spread over 10..999: the load's middle is among 0..9.
  const skewed = () =>
    h.random() < 0.8 ? Math.floor(h.random() * 10) : 10 + Math.floor(h.random() * 990);
  const d = h.untilSplit(() => h.interval(skewed, 400));
  assert.ok(d);
  const n = Number(dec.decode(d.key).slice(4));
  assert.ok(n >= 2 && n <= 9, `split key ${n} is inside the heavy keys`);
});

Deno.test("no split below the threshold, nor when the load stops before the window ends", () => {
  const h = harness();
  const hot = () => 500 + Math.floor(h.random() * 100);
  for (let i = 0; i < 10; i++) assert.deepEqual(h.interval(hot, 90), [], "90/s < 100/s");
  assert.equal(h.sampler.trackedRegions, 0, "a cold region keeps no state");
  for (let i = 0; i < 3; i++) assert.deepEqual(h.interval(hot, 300), []);
  assert.deepEqual(h.interval(hot, 50), [], "one cold interval ends the streak");
  for (let i = 0; i < 3; i++) assert.deepEqual(h.interval(hot, 300), [], "the window restarts");
  assert.equal(h.interval(hot, 300).length, 1);
});

Deno.test("a load on one key never splits (no key halves it)", () => {
  const h = harness();
  for (let i = 0; i < 8; i++) assert.deepEqual(h.interval(() => 42, 500), []);
});

Deno.test("a split or merge (version change) restarts the window", () => {
  const h = harness();
  const hot = () => 500 + Math.floor(h.random() * 100);
  for (let i = 0; i < 3; i++) h.interval(hot, 300);
  h.byId.set(1, region(1, "", "", 2));
  for (let i = 0; i < 3; i++) assert.deepEqual(h.interval(hot, 300), [], `interval ${i}`);
  assert.equal(h.interval(hot, 300).length, 1);
});

Deno.test("only legal split keys: strictly inside the region", () => {
  // The region starts at key 500: half the load is on that very key, the rest on 501..599.
  const h = harness({}, [region(1, "key-00500", "key-00600")]);
  const load = () => h.random() < 0.5 ? 500 : 501 + Math.floor(h.random() * 99);
  const d = h.untilSplit(() => h.interval(load, 400));
  assert.ok(d, "keys just past the start halve the load");
  const k = dec.decode(d.key);
  assert.ok(k > "key-00500" && k < "key-00530", `split key ${k}`);
  // A region whose leader moved away is forgotten.
  h.byId.delete(1);
  h.interval(load, 400);
  assert.equal(h.sampler.trackedRegions, 0);
});

Deno.test("scans that cross a candidate count against it", () => {
  const h = harness();
  // Every request scans keys 100..199: no key inside splits it without cutting every scan.
  for (let i = 0; i < 8; i++) {
    for (let j = 0; j < 300; j++) h.sampler.record(1, key(100 + (j % 50)), key(199), 100);
    assert.deepEqual(h.interval(() => 0, 0), []);
  }
});

Deno.test("bytes decide when only the byte threshold is reached", () => {
  const h = harness({ qpsThreshold: 0, byteThreshold: 100_000 });
  // Keys 0..9 get few large requests, 10..99 many small ones: bytes halve among 0..9.
  const d = h.untilSplit(() => {
    for (let j = 0; j < 600; j++) {
      const big = j % 3 === 0;
      const k = big ? (j / 3) % 10 : 10 + (j % 90);
      h.sampler.record(1, key(k), undefined, big ? 2_000 : 10);
    }
    return h.interval(() => 0, 0);
  });
  assert.ok(d);
  const n = Number(dec.decode(d.key).slice(4));
  assert.ok(n >= 1 && n <= 10, `split key ${n} halves the bytes`);
});

Deno.test("memory is bounded: regions counted, regions sampled, keys per region", () => {
  const regions = Array.from({ length: MAX_TRACKED_REGIONS + 500 }, (_, i) => region(i + 1));
  const h = harness({}, regions);
  for (const r of regions) {
    for (let j = 0; j < 150; j++) h.sampler.record(r.id, key(j), undefined, 10);
  }
  assert.equal(h.sampler.trackedRegions, MAX_TRACKED_REGIONS);
  assert.deepEqual(h.interval(() => 0, 0), []);
  for (const r of regions) {
    for (let j = 0; j < 150; j++) h.sampler.record(r.id, key(j), undefined, 10);
  }
  assert.ok(h.sampler.sampledKeys <= MAX_SAMPLED_REGIONS * SAMPLE_KEYS, "sampled keys bounded");
  assert.equal(h.sampler.sampledKeys, MAX_SAMPLED_REGIONS * SAMPLE_KEYS);
});

Deno.test("off: nothing is recorded", () => {
  const h = harness({ enabled: false });
  for (let i = 0; i < 6; i++) assert.deepEqual(h.interval(() => 500, 1000), []);
  assert.equal(h.sampler.trackedRegions, 0);
});

Deno.test("the worker splits a leader's hot region, never a merging one or one already splitting", () => {
  let now = 0;
  const random = seededRandom(3);
  const sampler = new LoadSampler(CONFIG, () => now, random);
  const peer = (id: number) => ({
    regionId: id,
    region: region(id),
    destroyed: false,
    mergeState: undefined as unknown,
    mergedInto: undefined as unknown,
    isLeader: () => true,
  });
  const peers = new Map([1, 2, 3, 4].map((id) => [id, peer(id)]));
  peers.get(2)!.mergeState = { target: region(9) };
  peers.get(4)!.isLeader = () => false;
  const quiet = () => {};
  const store = { stopped: false, peers, log: { info: quiet, warn: quiet, error: quiet } };
  const asked: number[] = [];
  const split = {
    isSplitting: (id: number) => id === 3,
    splitRegion: (p: { regionId: number }) => {
      asked.push(p.regionId);
      return Promise.resolve();
    },
  };
  const worker = new LoadSplitWorker(
    store as unknown as Store,
    split as unknown as SplitWorker,
    sampler,
  );
  for (let i = 0; i < 4; i++) {
    for (const id of [1, 2, 3, 4]) {
      for (let j = 0; j < 300; j++) {
        sampler.record(id, key(500 + Math.floor(random() * 100)), undefined, 10);
      }
    }
    now += sampler.intervalMs;
    worker.check();
  }
  assert.deepEqual(asked, [1], "2 is merging, 3 is splitting, 4 is led elsewhere");
  assert.equal(worker.splits, 1);
  assert.equal(sampler.trackedRegions, 3, "the region led elsewhere is forgotten");
});
