/** The merge checker: which small regions merge into which neighbour, and when not. */
import assert from "node:assert/strict";
import { MockCluster } from "../_mock_cluster.ts";
import { DEFAULT_SCHEDULE_CONFIG, type ScheduleConfig } from "../config.ts";
import { checkMerge, type MergeView } from "./merge_checker.ts";

const HOUR = 60 * 60_000;

/** Regions 1..3 side by side ([k, k+1)), each on stores 1-3; small unless resized. */
function setup(over: Partial<ScheduleConfig> = {}) {
  const tc = new MockCluster();
  tc.addRegionStore(1, 3).addRegionStore(2, 3).addRegionStore(3, 3).addRegionStore(4, 0);
  for (const id of [1, 2, 3]) tc.addLeaderRegion(id, 1, 2, 3);
  // Peers on the same stores in every region (the mock gives each region fresh peer IDs).
  const splitAgo = new Map<number, number>();
  const hot = new Set<number>();
  const view: MergeView = {
    config: { ...DEFAULT_SCHEDULE_CONFIG, ...over },
    build: tc.build,
    store: (id) => tc.store(id),
    hasOperator: (id) => tc.hasOperator(id),
    neighbors: (r) => ({ prev: tc.region(r.meta.id - 1), next: tc.region(r.meta.id + 1) }),
    sinceSplit: (id) => splitAgo.get(id) ?? 2 * HOUR,
    isHot: (id) => hot.has(id),
  };
  const resize = (id: number, size: number, keys = 1000) => {
    const r = tc.region(id)!;
    tc.putRegion({ ...r, approximateSize: size, approximateKeys: keys });
  };
  return { tc, view, splitAgo, hot, resize };
}

const shape = (ops: ReturnType<typeof checkMerge>) =>
  ops?.map((op) => `${op.regionId}:${op.steps.map((s) => s.type).join("+")}`);

Deno.test("a small region merges into its smaller neighbour; both operators are built", () => {
  const { tc, view, resize } = setup();
  resize(1, 15);
  resize(2, 1);
  resize(3, 5);
  const ops = checkMerge(view, tc.region(2)!);
  assert.deepEqual(shape(ops), ["2:MergeRegion", "3:MergeRegion"]);
  const [source, target] = ops!;
  const step = (op: typeof source) => op.steps[0] as { passive: boolean; target: { id: number } };
  assert.equal(step(source).passive, false);
  assert.equal(step(target).passive, true, "the target's operator only holds it still");
  assert.equal(step(source).target.id, 3);
  assert.equal(source.deadline, target.deadline, "they end together");
  assert.equal(source.kind, "merge");
});

Deno.test("size, keys and the merged size bound merges", () => {
  const { tc, view, resize } = setup({ maxMergeRegionSize: 20, maxMergedRegionSize: 30 });
  resize(2, 21);
  assert.equal(checkMerge(view, tc.region(2)!), null, "above max-merge-region-size");
  resize(2, 1, 300_000);
  assert.equal(checkMerge(view, tc.region(2)!), null, "above max-merge-region-keys");
  resize(2, 10);
  resize(1, 25);
  resize(3, 25);
  assert.equal(checkMerge(view, tc.region(2)!), null, "either merge would pass 30 MiB");
  resize(1, 20);
  assert.deepEqual(shape(checkMerge(view, tc.region(2)!)), ["2:MergeRegion", "1:MergeRegion"]);
});

Deno.test("a region or target that split within split-merge-interval is not merged", () => {
  const { tc, view, splitAgo, resize } = setup({ splitMergeInterval: HOUR });
  for (const id of [1, 2, 3]) resize(id, 1);
  splitAgo.set(2, HOUR / 2);
  assert.equal(checkMerge(view, tc.region(2)!), null, "the source split recently");
  splitAgo.delete(2);
  splitAgo.set(1, HOUR / 2);
  resize(3, 2);
  assert.deepEqual(
    shape(checkMerge(view, tc.region(2)!)),
    ["2:MergeRegion", "3:MergeRegion"],
    "the neighbour that split recently is skipped, though smaller",
  );
  splitAgo.set(3, 0);
  assert.equal(checkMerge(view, tc.region(2)!), null, "both neighbours split recently");
});

Deno.test("unhealthy regions, running operators and a zero limit stop merges", () => {
  const { tc, view, resize } = setup();
  for (const id of [1, 2, 3]) resize(id, 1);
  tc.setPending(2, 3);
  assert.equal(checkMerge(view, tc.region(2)!), null, "a pending peer");
  tc.addLeaderRegion(2, 1, 2, 3);
  resize(2, 1);
  tc.setOperator(1).setOperator(3);
  assert.equal(checkMerge(view, tc.region(2)!), null, "both neighbours busy");
  const off = setup({ mergeScheduleLimit: 0 });
  for (const id of [1, 2, 3]) off.resize(id, 1);
  assert.equal(checkMerge(off.view, off.tc.region(2)!), null, "merge-schedule-limit 0: off");
  const two = setup();
  two.tc.addLeaderRegion(2, 1, 2);
  two.resize(2, 1);
  assert.equal(checkMerge(two.view, two.tc.region(2)!), null, "not max-replicas voters");
});

Deno.test("a source on other stores first moves its peers onto the target's", () => {
  const { tc, view, resize } = setup();
  tc.addLeaderRegion(2, 1, 2, 4);
  for (const id of [1, 2, 3]) resize(id, id === 3 ? 1 : 5);
  const ops = checkMerge(view, tc.region(2)!)!;
  const source = ops[0];
  const types = source.steps.map((s) => s.type);
  assert.equal(types.at(-1), "MergeRegion");
  assert.ok(types.includes("AddLearner"), `a peer is added on store 3: ${types}`);
  const added = source.steps.find((s) => s.type === "AddLearner") as { peer: { storeId: number } };
  assert.equal(added.peer.storeId, 3);
  assert.ok(
    source.steps.some((s) => s.type === "RemovePeer" && s.peer.storeId === 4),
    "the peer on store 4 goes",
  );
  assert.deepEqual(ops[1].steps.map((s) => s.type), ["MergeRegion"]);
});

Deno.test("a hot region is neither merged nor merged into", () => {
  const { tc, view, hot, resize } = setup();
  resize(1, 15);
  resize(2, 1);
  resize(3, 5);
  hot.add(3);
  assert.deepEqual(shape(checkMerge(view, tc.region(2)!)), ["2:MergeRegion", "1:MergeRegion"]);
  hot.add(1);
  assert.equal(checkMerge(view, tc.region(2)!), null, "both neighbours are hot");
  hot.clear();
  hot.add(2);
  assert.equal(checkMerge(view, tc.region(2)!), null, "the small region itself is hot");
});
