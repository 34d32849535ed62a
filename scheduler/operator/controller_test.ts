/** Operator lifecycle: steps judged from heartbeats, one per region, priorities, timeouts, history. */
import assert from "node:assert/strict";
import { regionInfoFromMeta } from "../region_info.ts";
import type { RegionInfo } from "../region_info.ts";
import {
  createMovePeerOperator,
  createSplitOperator,
  createTransferLeaderOperator,
} from "./builder.ts";
import { HISTORY_LIMIT, OperatorController } from "./controller.ts";
import { createMergeRegionOperators } from "./merge_builder.ts";
import { Operator, OPERATOR_TRANSITIONS } from "./operator.ts";

const T0 = 1_000_000;
const b = (s: string) => new TextEncoder().encode(s);
const voter = (id: number, storeId: number) => ({ id, storeId, role: "Voter" as const });

function regionOn(
  stores: number[],
  leaderStore = stores[0]!,
  confVer = 1,
  version = 1,
): RegionInfo {
  const peers = stores.map((s) => voter(100 + s, s));
  return regionInfoFromMeta(
    {
      id: 7,
      startKey: new Uint8Array(),
      endKey: new Uint8Array(),
      epoch: { confVer, version },
      peers,
    },
    peers.find((p) => p.storeId === leaderStore)!,
  );
}

function ctx(now = T0) {
  let next = 500;
  return { now, allocPeerId: () => next++, timeouts: { slowStepMs: 1000, fastStepMs: 100 } };
}

Deno.test("a move-peer operator advances only as heartbeats show each step done", () => {
  const oc = new OperatorController();
  const r0 = regionOn([1, 2, 3]);
  const op = createMovePeerOperator("test", "region", r0, 1, 4, ctx());
  assert.deepEqual(op.steps.map((s) => s.type), [
    "AddLearner",
    "PromoteLearner",
    "TransferLeader",
    "RemovePeer",
  ]);
  assert.equal(op.deadline, T0 + 1000 + 3 * 100);
  assert.ok(oc.addOperator(op, T0));
  assert.equal(op.status, "Created");
  assert.equal(oc.dispatch(r0, T0)?.type, "AddLearner");
  assert.equal(op.status, "Running");
  const learner = { id: 500, storeId: 4, role: "Learner" as const };
  const withLearner = { ...r0, meta: { ...r0.meta, peers: [...r0.meta.peers, learner] } };
  assert.equal(
    oc.dispatch({ ...withLearner, pendingPeers: [learner] }, T0 + 1)?.type,
    "AddLearner",
    "still catching up",
  );
  assert.equal(oc.dispatch(withLearner, T0 + 2)?.type, "PromoteLearner");
  const promoted = {
    ...r0,
    meta: { ...r0.meta, peers: [...r0.meta.peers, { ...learner, role: "Voter" as const }] },
  };
  assert.equal(oc.dispatch(promoted, T0 + 3)?.type, "TransferLeader");
  const led = { ...promoted, leader: { ...learner, role: "Voter" as const } };
  assert.equal(oc.dispatch(led, T0 + 4)?.type, "RemovePeer");
  const done = {
    ...led,
    meta: { ...led.meta, peers: led.meta.peers.filter((p) => p.storeId !== 1) },
  };
  assert.equal(oc.dispatch(done, T0 + 5), undefined);
  assert.equal(op.status, "Finished");
  assert.equal(oc.get(7), undefined);
  assert.equal(oc.lastEnded(7), op);
});

Deno.test("one operator per region: equal priority is refused, higher priority replaces", () => {
  const oc = new OperatorController();
  const r = regionOn([1, 2, 3]);
  const a = createTransferLeaderOperator("a", "leader", r, 2, ctx());
  const b = createTransferLeaderOperator("b", "region", r, 3, ctx());
  const admin = createTransferLeaderOperator("admin", "admin", r, 3, ctx());
  assert.ok(oc.addOperator(a, T0));
  assert.ok(!oc.addOperator(b, T0));
  assert.ok(oc.addOperator(admin, T0));
  assert.equal(a.status, "Cancelled");
  assert.match(a.reason, /replaced by admin/);
  assert.equal(oc.get(7), admin);
});

Deno.test("operators time out at their deadline, on heartbeat or on the periodic check", () => {
  const oc = new OperatorController();
  const r = regionOn([1, 2, 3]);
  const op = createTransferLeaderOperator("t", "leader", r, 2, ctx());
  oc.addOperator(op, T0);
  assert.equal(oc.dispatch(r, T0 + 100)?.type, "TransferLeader");
  assert.equal(oc.dispatch(r, T0 + 101), undefined);
  assert.equal(op.status, "TimedOut");
  const op2 = createTransferLeaderOperator("t", "leader", r, 2, ctx(T0));
  oc.addOperator(op2, T0);
  oc.checkAll(T0 + 50, () => true);
  assert.equal(op2.status, "Created");
  oc.checkAll(T0 + 500, () => true);
  assert.equal(op2.status, "TimedOut");
  assert.equal(oc.ended.TimedOut, 2);
});

Deno.test("an operator is cancelled when its region splits under it or disappears", () => {
  const oc = new OperatorController();
  const r = regionOn([1, 2, 3]);
  const op = createTransferLeaderOperator("t", "leader", r, 2, ctx());
  oc.addOperator(op, T0);
  assert.equal(oc.dispatch(regionOn([1, 2, 3], 1, 1, 2), T0), undefined);
  assert.equal(op.status, "Cancelled");
  const gone = createTransferLeaderOperator("g", "leader", r, 2, ctx());
  oc.addOperator(gone, T0);
  oc.checkAll(T0, () => false);
  assert.equal(gone.status, "Cancelled");
});

/** `r` after a split: version 2, ending at `end`. */
function splitTo(r: RegionInfo, end: string): RegionInfo {
  return {
    ...r,
    meta: { ...r.meta, endKey: b(end), epoch: { ...r.meta.epoch, version: 2 } },
  };
}

Deno.test("a split operator finishes when its region ends at the first split key, from the old region's report or a new region's", () => {
  const oc = new OperatorController();
  const r = regionOn([1, 2, 3]);
  const split = createSplitOperator("s", "admin", r, [b("t"), b("m"), b("m")], ctx());
  const step = split.steps[0]!;
  assert.ok(step.type === "SplitRegion");
  assert.deepEqual(step.keys, [b("m"), b("t")], "sorted, duplicates dropped");
  oc.addOperator(split, T0);
  assert.equal(oc.dispatch(r, T0)?.type, "SplitRegion");
  assert.equal(oc.dispatch(splitTo(r, "m"), T0), undefined);
  assert.equal(split.status, "Finished");

  // A new region reports before the old one: it starts at a split key with a newer version.
  const again = createSplitOperator("s2", "admin", r, [b("m")], ctx());
  oc.addOperator(again, T0);
  const child = regionInfoFromMeta({
    ...r.meta,
    id: 8,
    startKey: b("m"),
    epoch: { confVer: 1, version: 2 },
  });
  oc.onRegionsOverlapped([regionOn([1, 2, 3])], { ...child, meta: { ...child.meta, id: 9 } }, T0);
  assert.equal(again.status, "Finished");
  assert.equal(again.currentStep, 1, "every step shown done");
});

Deno.test("a split operator whose region was split elsewhere first is cancelled; a midpoint split finishes on any split", () => {
  const oc = new OperatorController();
  const r = regionOn([1, 2, 3]);
  const keyed = createSplitOperator("s", "admin", r, [b("m")], ctx());
  oc.addOperator(keyed, T0);
  assert.equal(oc.dispatch(splitTo(r, "x"), T0), undefined);
  assert.equal(keyed.status, "Cancelled");
  assert.match(keyed.reason, /split at other keys/);
  const sized = { ...r, approximateSizeBytes: 1 << 20 };
  const midpoint = createSplitOperator("s", "admin", sized, [], ctx());
  oc.addOperator(midpoint, T0);
  assert.equal(oc.dispatch(splitTo(sized, "x"), T0), undefined);
  assert.equal(midpoint.status, "Finished");
});

Deno.test("impossible splits are refused up front with the reason", () => {
  const r = regionOn([1, 2, 3]);
  const bounded = { ...r, meta: { ...r.meta, startKey: b("c"), endKey: b("p") } };
  assert.throws(
    () => createSplitOperator("s", "admin", r, [], ctx()),
    /last reported empty: there is no size midpoint/,
  );
  assert.throws(
    () => createSplitOperator("s", "admin", bounded, [b("x")], ctx()),
    /split key "x" is not strictly inside region 7/,
  );
  assert.throws(
    () => createSplitOperator("s", "admin", bounded, [b("c")], ctx()),
    /not strictly inside/,
    "the start key would leave an empty region",
  );
});

Deno.test("operators that still have to send work to a store that may not receive any are cancelled; removals are not", () => {
  const oc = new OperatorController();
  const r = regionOn([1, 2, 3]);
  const dead = new Set<number>();
  const unusable = (id: number) => (dead.has(id) ? "Disconnected" : undefined);
  const transfer = createTransferLeaderOperator("t", "leader", r, 2, ctx());
  oc.addOperator(transfer, T0);
  assert.equal(oc.dispatch(r, T0, unusable)?.type, "TransferLeader");
  dead.add(2);
  assert.equal(oc.dispatch(r, T0, unusable), undefined, "not sent toward a Disconnected store");
  assert.equal(transfer.status, "Cancelled");
  assert.match(transfer.reason, /target store 2 is Disconnected/);
  const move = createMovePeerOperator("m", "region", r, 1, 4, ctx());
  oc.addOperator(move, T0);
  dead.add(4);
  oc.checkAll(T0, () => true, undefined, unusable);
  assert.equal(move.status, "Cancelled", "the periodic check catches it without a heartbeat");
  const remove = new Operator("r", "replica", 7, r.meta.epoch, [{
    type: "RemovePeer",
    peer: r.meta.peers[1]!,
  }], T0);
  oc.addOperator(remove, T0);
  oc.checkAll(T0, () => true, undefined, unusable);
  assert.equal(remove.status, "Created", "removing a peer on a dead store is what repair does");
});

Deno.test("a step the leader refused cancels the operator with the leader's reason", () => {
  const oc = new OperatorController();
  const r = regionOn([1, 2, 3]);
  const op = createTransferLeaderOperator("t", "leader", r, 2, ctx());
  oc.addOperator(op, T0);
  oc.dispatch(r, T0);
  assert.equal(oc.onStepRefused(7, "SplitRegion", "x", T0), undefined, "not the step in progress");
  assert.equal(oc.onStepRefused(7, "TransferLeader", "peer 102 is silent", T0), op);
  assert.equal(op.status, "Cancelled");
  assert.match(op.reason, /leader refused TransferLeader: peer 102 is silent/);
});

Deno.test("status changes follow the transition table; ended operators are kept up to the limit", () => {
  const op = new Operator("x", "admin", 1, { confVer: 1, version: 1 }, [], T0);
  assert.throws(() => op.transition("Created", T0), /illegal transition/);
  op.transition("Running", T0);
  op.transition("Finished", T0);
  assert.throws(() => op.transition("Cancelled", T0), /illegal transition Finished → Cancelled/);
  for (const [from, tos] of Object.entries(OPERATOR_TRANSITIONS)) {
    for (const to of tos) assert.notEqual(from, to);
  }
  const oc = new OperatorController();
  for (let i = 0; i < HISTORY_LIMIT + 10; i++) {
    const r = { ...regionOn([1, 2]), meta: { ...regionOn([1, 2]).meta, id: i + 1 } };
    oc.addOperator(createTransferLeaderOperator("t", "leader", r, 2, ctx()), T0);
    oc.cancel(i + 1, T0, "test");
  }
  assert.equal(oc.history().length, HISTORY_LIMIT);
  assert.equal(oc.history()[0]!.regionId, 11);
});

Deno.test("a merge's two operators: the source is told, the target held; they end together", () => {
  const left = regionInfoFromMeta({
    id: 1,
    startKey: new Uint8Array(),
    endKey: new Uint8Array([5]),
    epoch: { confVer: 1, version: 3 },
    peers: [voter(11, 1), voter(12, 2), voter(13, 3)],
  }, voter(11, 1));
  const right = regionInfoFromMeta({
    id: 2,
    startKey: new Uint8Array([5]),
    endKey: new Uint8Array(),
    epoch: { confVer: 1, version: 4 },
    peers: [voter(21, 1), voter(22, 2), voter(23, 3)],
  }, voter(22, 2));
  const run = () => {
    const oc = new OperatorController();
    const ops = createMergeRegionOperators("merge", "admin", right, left, ctx());
    assert.ok(oc.addMergeOperators(ops, T0));
    assert.equal(oc.dispatch(right, T0 + 1)?.type, "MergeRegion", "the source's leader is told");
    assert.equal(oc.dispatch(left, T0 + 1), undefined, "nothing is sent to the target");
    // PrepareMerge applied: the source's version is one more; the step is repeated.
    const frozen = { ...right, meta: { ...right.meta, epoch: { confVer: 2, version: 5 } } };
    assert.equal(oc.dispatch(frozen, T0 + 2)?.type, "MergeRegion");
    return { oc, ops, frozen };
  };
  // The target reports the merge: both end Finished.
  const a = run();
  const merged = {
    ...left,
    meta: { ...left.meta, endKey: new Uint8Array(), epoch: { confVer: 1, version: 6 } },
  };
  assert.equal(a.oc.dispatch(merged, T0 + 3), undefined);
  assert.deepEqual(a.ops.map((op) => op.status), ["Finished", "Finished"]);
  // The source vanishes from the map first: the periodic check sees the target took it in.
  const b = run();
  b.oc.checkAll(T0 + 3, (id) => id !== 2, (id) => (id === 1 ? merged : undefined));
  assert.deepEqual(b.ops.map((op) => op.status), ["Finished", "Finished"]);
  // A rolled-back merge (the source's version + 2) cancels both.
  const c = run();
  const thawed = { ...right, meta: { ...right.meta, epoch: { confVer: 2, version: 6 } } };
  assert.equal(c.oc.dispatch(thawed, T0 + 3), undefined);
  assert.deepEqual(c.ops.map((op) => op.status), ["Cancelled", "Cancelled"]);
  // Either region busy with an operator of equal or higher priority: neither is added.
  const d = new OperatorController();
  d.addOperator(createTransferLeaderOperator("t", "admin", left, 2, ctx()), T0);
  assert.ok(
    !d.addMergeOperators(createMergeRegionOperators("m", "merge", right, left, ctx()), T0),
  );
  assert.equal(d.get(2), undefined, "the source got no operator either");
});

Deno.test("a transfer-leader to a pending peer is built (its leader holds it back); to a down peer it is refused", () => {
  const r0 = regionOn([1, 2, 3]);
  const target = r0.meta.peers.find((p) => p.storeId === 2)!;
  const pending = { ...r0, pendingPeers: [target] };
  const op = createTransferLeaderOperator("test", "admin", pending, 2, ctx());
  assert.deepEqual(op.steps, [{ type: "TransferLeader", peer: target }]);
  const down = { ...r0, downPeers: [{ peer: target, downSeconds: 12 }] };
  assert.throws(
    () => createTransferLeaderOperator("test", "admin", down, 2, ctx()),
    /peer on store 2 has not answered its leader for 12 s/,
  );
});
