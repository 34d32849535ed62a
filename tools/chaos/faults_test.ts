import assert from "node:assert/strict";
import { seededRandom } from "../../raft/mod.ts";
import {
  bridgeShape,
  FAULT_KINDS,
  isolateShape,
  KindSequence,
  minoritySize,
  parseFaults,
  splitShape,
} from "./faults.ts";

Deno.test("--faults takes kinds and groups, in catalogue order, and names what it rejects", () => {
  assert.deepEqual(parseFaults("all"), [...FAULT_KINDS]);
  assert.deepEqual(parseFaults("kill, pause"), ["pause", "kill"]);
  assert.deepEqual(parseFaults("admin,kill"), [
    "kill",
    "transfer-leader",
    "split-region",
    "merge-region",
    "membership",
  ]);
  assert.deepEqual(parseFaults("none"), []);
  assert.throws(() => parseFaults("pause,explode"), /unknown fault "explode"/);
});

Deno.test("every kind comes once per round, in a seeded order", () => {
  const seq = new KindSequence(FAULT_KINDS, seededRandom(5));
  const round = Array.from({ length: FAULT_KINDS.length }, () => seq.next());
  assert.deepEqual([...round].sort(), [...FAULT_KINDS].sort());
  const again = new KindSequence(FAULT_KINDS, seededRandom(5));
  assert.deepEqual(Array.from({ length: FAULT_KINDS.length }, () => again.next()), round);
  assert.throws(() => new KindSequence([], seededRandom(1)), /no fault kinds/);
});

Deno.test("isolating a store cuts it from every other server; the rest keep a quorum", () => {
  const shape = isolateShape("s2", ["sched", "s1", "s2", "s3"]);
  assert.deepEqual(shape.cuts, [["s2", "sched"], ["s2", "s1"], ["s2", "s3"]]);
  assert.deepEqual(shape.live, ["s1", "s3"]);
  assert.equal(isolateShape("sched", ["sched", "s1"]).live, undefined);
});

Deno.test("a majority/minority split puts the scheduler on the side asked for", () => {
  const minority = splitShape(["s1", "s2", "s3"], ["s1"], "minority");
  assert.deepEqual(minority.cuts, [["sched", "s2"], ["sched", "s3"], ["s1", "s2"], ["s1", "s3"]]);
  assert.deepEqual(minority.live, ["s2", "s3"]);
  assert.equal(minority.description, "{sched,s1} | {s2,s3}");
  const majority = splitShape(["s1", "s2", "s3", "s4", "s5"], ["s4", "s5"], "majority");
  assert.equal(majority.description, "{s4,s5} | {sched,s1,s2,s3}");
  assert.equal(majority.cuts.length, 2 * 4);
  assert.throws(() => splitShape(["s1", "s2"], ["s1"], "majority"), /not a minority/);
  // A system without a scheduler (etcd).
  assert.deepEqual(splitShape(["s1", "s2", "s3"], ["s3"], "none").cuts, [["s3", "s1"], [
    "s3",
    "s2",
  ]]);
  assert.equal(minoritySize(3), 1);
  assert.equal(minoritySize(5), 2);
});

Deno.test("a bridge store is cut from nobody", () => {
  const shape = bridgeShape("s3", ["s1"], ["s2"]);
  assert.deepEqual(shape.cuts, [["sched", "s2"], ["s1", "s2"]]);
  assert.ok(shape.cuts.every(([a, b]) => a !== "s3" && b !== "s3"));
  assert.match(shape.description, /s3 sees both/);
  assert.deepEqual(bridgeShape("s3", ["s1"], ["s2"], false).cuts, [["s1", "s2"]]);
});
