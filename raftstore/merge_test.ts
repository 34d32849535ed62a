/** The merge commands as apply executes them: freezing, refusals, rollback, and the commit. */
import assert from "node:assert/strict";
import { encodeEntry, type Entry } from "../raft/mod.ts";
import type { Region } from "../proto/metapb.ts";
import { WriteBatch } from "../storage/write_batch.ts";
import { AppliedRequests } from "./applied_requests.ts";
import { type ApplyContext, applyEntries } from "./apply.ts";
import { encodeCmd, type RaftCmd } from "./cmd.ts";
import { mergeShapeProblem } from "./merge.ts";

const enc = new TextEncoder();
const PHASES = { data: 0, state: 1 };
const peers = (base: number) =>
  [1, 2, 3].map((s) => ({ id: base + s, storeId: s, role: "Voter" as const }));
const LEFT: Region = {
  id: 1,
  startKey: new Uint8Array(),
  endKey: enc.encode("m"),
  epoch: { confVer: 3, version: 4 },
  peers: peers(10),
};
const RIGHT: Region = {
  id: 2,
  startKey: enc.encode("m"),
  endKey: new Uint8Array(),
  epoch: { confVer: 5, version: 2 },
  peers: peers(20),
};

const entry = (index: number, cmd: RaftCmd): Entry => ({
  index,
  term: 2,
  type: "Normal",
  data: encodeCmd(cmd),
});
const header = (r: Region) => ({ regionId: r.id, peerId: r.peers[0]!.id, epoch: r.epoch });
const prepare = (index: number, source = RIGHT, target = LEFT) =>
  entry(index, { header: header(source), admin: { type: "PrepareMerge", target, minIndex: 7 } });
const put = (index: number, r: Region, key: string) =>
  entry(index, {
    header: header(r),
    requests: [{ type: "Put", key: enc.encode(key), value: enc.encode("v") }],
  });

function apply(region: Region, applied: number, entries: Entry[], ctx: ApplyContext = {}) {
  return applyEntries(
    region,
    applied,
    entries,
    new WriteBatch(),
    PHASES,
    new AppliedRequests(),
    ctx,
  );
}

Deno.test("PrepareMerge freezes the source: both epoch fields grow, writes and log compaction are refused", () => {
  const out = apply(RIGHT, 9, [prepare(10)]);
  assert.equal(out.results[0]!.error, undefined);
  assert.deepEqual(out.region.epoch, { confVer: 6, version: 3 });
  assert.deepEqual(out.merge, { target: LEFT, minIndex: 7, commit: 10 });
  assert.deepEqual(out.effects.map((e) => e.type), ["PrepareMerge"]);

  const frozen = out.region;
  const after = apply(frozen, 10, [
    put(11, RIGHT, "x"), // proposed before the PrepareMerge: its epoch is stale
    put(12, frozen, "y"), // names the frozen epoch: still refused
    entry(13, {
      header: header(frozen),
      admin: { type: "CompactLog", compactIndex: 10, compactTerm: 2 },
    }),
    prepare(14, frozen),
  ], { merge: out.merge });
  assert.deepEqual(after.results.map((r) => r.error?.code), [
    "EpochNotMatch",
    "ServerIsBusy",
    "StaleCommand",
    "StaleCommand",
  ]);
  assert.deepEqual(after.region, frozen, "nothing changed the frozen region");
  assert.equal(after.appliedIndex, 14, "every refused entry is applied as a no-op");
});

Deno.test("RollbackMerge thaws the source (version + 1) only for the merge it names", () => {
  const { region: frozen, merge } = apply(RIGHT, 9, [prepare(10)]);
  const rollback = (index: number, commit: number) =>
    entry(index, { header: header(frozen), admin: { type: "RollbackMerge", commit } });
  const wrong = apply(frozen, 10, [rollback(11, 9)], { merge });
  assert.equal(wrong.results[0]!.error?.code, "StaleCommand");
  assert.ok(wrong.merge, "still merging");
  const right = apply(frozen, 10, [rollback(11, 10)], { merge });
  assert.equal(right.results[0]!.error, undefined);
  assert.equal(right.merge, undefined);
  assert.deepEqual(right.region.epoch, { confVer: 6, version: 4 });
  const thawed = apply(right.region, 11, [put(12, right.region, "z")]);
  assert.equal(thawed.results[0]!.error, undefined, "writes are taken again");
});

Deno.test("CommitMerge waits for the local source, checks the carried log, then extends the target", () => {
  const { region: frozen } = apply(RIGHT, 9, [prepare(10)]);
  const log = [put(8, RIGHT, "x"), put(9, RIGHT, "y"), prepare(10)].map(encodeEntry);
  const commit = (index: number, entries: Uint8Array[], source = frozen) =>
    entry(index, {
      header: header(LEFT),
      admin: { type: "CommitMerge", source, commit: 10, entries },
    });
  const sourceRequests = new AppliedRequests();

  const waiting = apply(LEFT, 20, [put(21, LEFT, "a"), commit(22, log), put(23, LEFT, "b")], {
    mergeSource: () => undefined,
  });
  assert.equal(waiting.blockedAt, 22, "apply stops at the CommitMerge");
  assert.equal(waiting.appliedIndex, 21);
  assert.equal(waiting.waitingFor?.source.id, 2);
  assert.deepEqual(waiting.region, LEFT);

  const bad = apply(LEFT, 20, [
    commit(21, [log[0]!, log[2]!]), // a hole
    commit(22, log.slice(0, 2)), // does not end with the PrepareMerge
    commit(23, log, { ...frozen, startKey: enc.encode("n") }), // not adjacent
  ], { mergeSource: () => sourceRequests });
  assert.deepEqual(bad.results.map((r) => r.error?.code), [
    "BadRequest",
    "BadRequest",
    "BadRequest",
  ]);
  assert.equal(bad.blockedAt, undefined, "a CommitMerge that fails, fails without waiting");

  const done = apply(LEFT, 20, [commit(21, log)], { mergeSource: () => sourceRequests });
  assert.equal(done.results[0]!.error, undefined);
  assert.deepEqual(done.region.endKey, new Uint8Array(), "the target takes the source's range");
  assert.deepEqual(done.region.startKey, LEFT.startKey);
  assert.equal(done.region.epoch.version, Math.max(frozen.epoch.version, LEFT.epoch.version) + 1);
  assert.equal(done.region.epoch.confVer, LEFT.epoch.confVer);
  assert.deepEqual(done.effects.map((e) => e.type), ["CommitMerge"]);
});

Deno.test("merge shape: adjacent, different regions, peers on the same stores in the same roles", () => {
  assert.equal(mergeShapeProblem(RIGHT, LEFT), undefined);
  assert.equal(mergeShapeProblem(LEFT, RIGHT), undefined, "either side may be the source");
  assert.match(mergeShapeProblem(LEFT, LEFT)!, /itself/);
  assert.match(
    mergeShapeProblem({ ...RIGHT, startKey: enc.encode("n") }, LEFT)!,
    /not adjacent/,
  );
  const moved = {
    ...RIGHT,
    peers: [...RIGHT.peers.slice(0, 2), { id: 24, storeId: 4, role: "Voter" as const }],
  };
  assert.match(mergeShapeProblem(moved, LEFT)!, /same stores/);
  const learner = {
    ...RIGHT,
    peers: RIGHT.peers.map((p, i) => (i === 2 ? { ...p, role: "Learner" as const } : p)),
  };
  assert.match(mergeShapeProblem(learner, LEFT)!, /same stores/);
  const joint = {
    ...RIGHT,
    peers: RIGHT.peers.map((p, i) => (i === 2 ? { ...p, role: "DemotingVoter" as const } : p)),
  };
  assert.match(mergeShapeProblem(joint, LEFT)!, /joint/);
});
