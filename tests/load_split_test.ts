/**
 * Load-based split on an in-process cluster: a write load on 1% of a small region's key space
 * splits the region inside the hot range within the detection window (far below the size
 * threshold), the hot-region scheduler then spreads the hot leaders over the stores, and every
 * acknowledged write reads back.
 */
import assert from "node:assert/strict";
import { compareBytes } from "../proto/metapb.ts";
import { b, str, type TestCluster, waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const WRITERS = 16;
const key = (n: number) => `key-${String(n).padStart(5, "0")}`;
/** The hot range: keys 500..509 of 0..999, one key per writer under each. */
const HOT_START = key(500);
const HOT_END = key(510);
const hotKey = (writer: number, i: number) => `${key(500 + (i % 10))}/w${writer}`;

/** Writers that each own their keys, and what each key may read back as. */
function startWriters(c: TestCluster, stop: { now: boolean }) {
  /** Per key: the last acknowledged value and the values tried after it (outcome unknown). */
  const state = new Map<string, { acked: string | null; tried: string[] }>();
  let acked = 0;
  const run = async (w: number) => {
    for (let i = 0; !stop.now; i++) {
      const k = hotKey(w, i);
      const v = `v${i}`;
      const s = state.get(k) ?? { acked: null, tried: [] };
      state.set(k, s);
      s.tried.push(v);
      try {
        await c.put(k, v, w % c.storeCount);
        s.acked = v;
        s.tried = [];
        acked++;
      } catch {
        // Unknown outcome: the value may or may not have been written.
      }
    }
  };
  const done = Promise.all(Array.from({ length: WRITERS }, (_, w) => run(w)));
  return { state, done, acked: () => acked };
}

/** The regions (as the scheduler's leaders report them) that overlap the hot range. */
function hotRegions(c: TestCluster) {
  return c.scheduler.cluster.regions.regions().filter((r) =>
    (r.meta.endKey.length === 0 || compareBytes(r.meta.endKey, b(HOT_START)) > 0) &&
    compareBytes(r.meta.startKey, b(HOT_END)) < 0
  );
}

Deno.test(
  "a write load on 1% of the keys splits its small region within the window and spreads its leaders",
  opts,
  () =>
    withCluster({
      stores: 3,
      store: { splitQpsThreshold: 40, splitByteThreshold: 0, splitDetectWindow: 2_000 },
    }, async (c) => {
      // Only the hot-region scheduler moves leaders here (balance-leader would even out the
      // leader counts of the split's two halves on its own).
      for (const name of ["balance-leader-scheduler", "balance-region-scheduler"]) {
        const res = await fetch(`http://${c.scheduler.addr}/pd/api/v1/schedulers/${name}`, {
          method: "DELETE",
        });
        assert.equal(res.status, 200, await res.text());
      }
      // A small region: 200 cold keys over the whole key space (a few KiB, far below 96 MiB).
      for (let i = 0; i < 1000; i += 5) await c.put(key(i), "cold");
      assert.equal(c.scheduler.cluster.regions.regions().length, 1);
      // The loading was load too: wait until no store counts it any more.
      await waitFor(
        "the loading's traffic to be forgotten",
        () => c.running().every((n) => n.workers.loadSplit.sampler.trackedRegions === 0),
      );
      const stop = { now: false };
      const writers = startWriters(c, stop);
      const started = Date.now();
      try {
        await waitFor("the hot region to split by load", () => hotRegions(c).length >= 2, 30_000);
        const splitAfter = Date.now() - started;
        // Hot for the whole window first: 4 intervals of 500 ms, the first possibly partial.
        assert.ok(splitAfter >= 1_400, `split after ${splitAfter} ms, before the window`);
        const splits = c.running().reduce((n, x) => n + x.workers.loadSplit.splits, 0);
        assert.ok(splits >= 1, "the split was a load split");
        // Every split key lies inside the hot range: it halves the hot load.
        for (const n of c.running()) {
          for (const d of n.workers.loadSplit.recent) {
            const k = str(d.key)!;
            assert.ok(k > HOT_START && k < HOT_END, `load split at ${k}`);
          }
        }
        await waitFor("the hot regions' leaders to be on two stores", () => {
          const stores = new Set(hotRegions(c).map((r) => r.leader?.storeId));
          return stores.size >= 2;
        }, 40_000);
        const ops = c.scheduler.cluster.operators;
        const hotOps = [...ops.history(), ...ops.running()].filter((op) => op.kind === "hot");
        assert.ok(hotOps.length >= 1, "a hot-region operator moved a leader");
        console.log(
          `split ${splitAfter} ms after the load started, leaders spread after ` +
            `${Date.now() - started} ms; ${writers.acked()} writes acknowledged; ` +
            `hot operators: ${hotOps.map((op) => `${op.desc}:${op.status}`).join(", ")}`,
        );
      } finally {
        stop.now = true;
        await writers.done;
      }
      for (const [k, s] of writers.state) {
        const got = await c.get(k);
        assert.ok(
          got === s.acked || s.tried.includes(got!),
          `${k}: read ${got}, last acknowledged ${s.acked}, tried since ${s.tried}`,
        );
      }
      for (let i = 0; i < 1000; i += 5) assert.equal(await c.get(key(i)), "cold");
    }),
);
