/**
 * Region merge on a real cluster, driven by the scheduler's `merge-region` operator: the source
 * region's range goes to the target, no data moves, every key stays readable and writable, and
 * the source's peers are retired everywhere — also on a store that was cut off during the merge
 * and on one that restarted in the middle of it.
 */
import assert from "node:assert/strict";
import { MrkvError } from "../proto/errors.ts";
import type { Region } from "../proto/metapb.ts";
import type { NetworkFilter } from "../raftstore/transport_memory.ts";
import { b, pauseBalancers, str, type TestCluster, waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const LETTERS = "abcdefghijklmnopqrstuvwxyz";

async function postOperator(c: TestCluster, body: Record<string, unknown>): Promise<Response> {
  return await fetch(`http://${c.scheduler.addr}/pd/api/v1/operators`, {
    method: "POST",
    body: JSON.stringify(body),
  });
}

/** Writes a key per letter, splits region 1 at "m" and returns both halves once known. */
async function splitAtM(c: TestCluster): Promise<{ left: Region; right: Region }> {
  for (const ch of LETTERS) await c.put(`${ch}-key`, `value of ${ch}`);
  const res = await postOperator(c, { name: "split-region", region_id: 1, keys: ["m"] });
  assert.equal(res.status, 201, await res.text());
  await waitFor(
    "region 1 to split at m on every store holding it",
    () =>
      c.running().every((n) => !n.store.peers.has(1) || n.store.meta.sortedRegions().length === 2),
  );
  const holder = c.running().find((n) => n.store.peers.has(1))!;
  const right = holder.store.meta.regionForKey(b("x"))!;
  await waitFor("the scheduler to know both regions at their current epochs", () => {
    const known = (r: Region) => {
      const info = c.scheduler.cluster.regions.getRegion(r.id);
      return info?.leader !== undefined && info.meta.epoch.version === r.epoch.version;
    };
    return known(holder.store.meta.regionForKey(b("a"))!) && known(right);
  });
  return { left: holder.store.meta.regionForKey(b("a"))!, right };
}

/** Asks the scheduler to merge `source` into `target`; expects the operator to be accepted. */
async function mergeRegion(
  c: TestCluster,
  source: number,
  target: number,
): Promise<{ steps: { type: string }[] }> {
  const res = await postOperator(c, {
    name: "merge-region",
    source_region_id: source,
    target_region_id: target,
  });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  assert.equal(body.region_id, source);
  return body;
}

/** Waits until every running store holds only region `target`, covering the whole key space. */
async function waitMerged(c: TestCluster, source: number, target: number): Promise<void> {
  await waitFor(
    `region ${source} to be merged into region ${target} on every store`,
    () =>
      c.running().every((n) => {
        const regions = n.store.meta.sortedRegions();
        return regions.length === 1 && regions[0]!.id === target &&
          regions[0]!.startKey.length === 0 && regions[0]!.endKey.length === 0 &&
          !n.store.peers.has(source);
      }),
    30_000,
  );
}

/** Every letter's key reads back, and keys on both sides of the old boundary take writes. */
async function checkData(c: TestCluster, via?: number): Promise<void> {
  for (const ch of LETTERS) assert.equal(await c.get(`${ch}-key`, via), `value of ${ch}`);
  await c.put("a-after", "1", via);
  await c.put("z-after", "2", via);
  assert.equal(await c.get("a-after", via), "1");
  assert.equal(await c.get("z-after", via), "2");
  const page = await c.node(via).kv.scan(b(""), undefined, 10_000);
  const seen = new Set(page.kvs.map((kv) => str(kv.key)));
  for (const key of [...LETTERS.split("").map((ch) => `${ch}-key`), "a-after", "z-after"]) {
    assert.ok(seen.has(key), `one scan over the merged range sees ${key}`);
  }
}

/** Drops Raft messages of `regionId` to and from store `storeId`. */
function cutRegion(regionId: number, storeId: number): NetworkFilter {
  return (from, to, env) =>
    env.regionId === regionId && (from === storeId || to === storeId) ? "drop" : undefined;
}

Deno.test(
  "merge-region: the right half merges into the left; epochs bump, all keys read and write, the source is gone",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      const { left, right } = await splitAtM(c);
      assert.equal(left.id, 1);
      // Writes keep going during the merge; each acknowledged one must read back afterwards.
      const acked: string[] = [];
      let writing = true;
      const writer = (async () => {
        for (let i = 0; writing; i++) {
          const key = `${LETTERS[i % 26]}-during-${i}`;
          await c.put(key, String(i));
          acked.push(key);
        }
      })();
      await mergeRegion(c, right.id, left.id);
      await waitMerged(c, right.id, left.id);
      writing = false;
      await writer;
      const merged = (await c.waitLeader(left.id)).region;
      assert.ok(
        merged.epoch.version > Math.max(left.epoch.version, right.epoch.version + 1),
        `the target's version (${merged.epoch.version}) is newer than both regions' ` +
          `(${left.epoch.version}, ${right.epoch.version} + 1 for the PrepareMerge)`,
      );
      assert.equal(merged.epoch.confVer, left.epoch.confVer, "no membership changed");
      for (const n of c.running()) {
        const tomb = n.store.tombstones.get(right.id);
        assert.equal(tomb?.merge?.target.id, left.id, "each store remembers where it went");
      }
      await checkData(c);
      for (const key of acked) {
        assert.equal(await c.get(key), key.split("-").pop(), `acknowledged write ${key}`);
      }
      assert.ok(acked.length > 0, "writes were acknowledged during the merge");
      // The scheduler sees one region covering everything, and the operator finished.
      await waitFor("the scheduler to see one region", async () => {
        const body = await (await fetch(`http://${c.scheduler.addr}/pd/api/v1/regions`)).json();
        return body.count === 1;
      });
      await waitFor(
        "the merge operators to finish",
        () => c.scheduler.cluster.operators.get(right.id) === undefined,
      );
      // A merged region still splits, and the new half is served.
      const res = await postOperator(c, { name: "split-region", region_id: left.id, keys: ["q"] });
      assert.equal(res.status, 201, await res.text());
      await waitFor("the merged region to split again", () =>
        c.running().every((n) => n.store.meta.sortedRegions().length === 2));
      await checkData(c, 2);
    }),
);

Deno.test(
  "merge-region: a source follower cut off during the merge is caught up and retired when it returns",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      const { left, right } = await splitAtM(c);
      const leader = await c.waitLeader(right.id);
      const victim = right.peers.find((p) => p.storeId !== leader.storeId)!;
      const slot = c.nodes.findIndex((n) => n?.store.storeId === victim.storeId);
      c.network.isolate(victim.storeId);
      // The cut-off store misses writes to the source before the merge...
      for (let i = 0; i < 5; i++) await c.put(`x-missed-${i}`, String(i), (slot + 1) % 3);
      await mergeRegion(c, right.id, left.id);
      await waitFor(
        "the merge on the connected stores",
        () =>
          c.running().every((n) =>
            n.store.storeId === victim.storeId || !n.store.peers.has(right.id)
          ),
        30_000,
      );
      // ... and writes to the merged range after it.
      await c.put("y-after-merge", "1", (slot + 1) % 3);
      const cutOff = c.node(slot).store;
      assert.ok(cutOff.peers.has(right.id), "the cut-off store has not heard of the merge");
      assert.equal(cutOff.peers.get(right.id)!.mergeState, undefined);
      c.network.clearFilters();
      await waitMerged(c, right.id, left.id);
      assert.equal(cutOff.tombstones.get(right.id)?.merge?.target.id, left.id);
      for (let i = 0; i < 5; i++) await c.waitLocal(slot, `x-missed-${i}`, String(i));
      await c.waitLocal(slot, "y-after-merge", "1");
      await checkData(c, slot);
    }),
);

Deno.test(
  "merge-region: a store restarted with its source frozen and its target not yet merged finishes the merge",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      const { left, right } = await splitAtM(c);
      const targetLeader = await c.waitLeader(left.id);
      // A store that follows the target: it cannot hear the CommitMerge while cut off.
      const slot = c.nodes.findIndex((n) => n?.store.storeId !== targetLeader.storeId);
      const storeId = c.storeId(slot);
      c.network.addFilter(cutRegion(left.id, storeId));
      await mergeRegion(c, right.id, left.id);
      await waitFor(
        "the store's source peer to apply the PrepareMerge",
        () => c.node(slot).store.peers.get(right.id)?.mergeState !== undefined,
        30_000,
      );
      await waitFor(
        "the merge on the other stores",
        () => c.running().every((n) => n.store.storeId === storeId || !n.store.peers.has(right.id)),
        30_000,
      );
      await c.stopStore(slot);
      const restarted = await c.startStore(slot);
      const source = restarted.store.peers.get(right.id);
      assert.ok(source, "the frozen source peer is loaded again");
      assert.equal(source.mergeState?.target.id, left.id, "its merge state survived the restart");
      assert.equal(
        restarted.store.peers.get(left.id)!.region.endKey.length > 0,
        true,
        "the target has not merged yet here",
      );
      c.network.clearFilters();
      await waitMerged(c, right.id, left.id);
      await checkData(c, slot);
      // And the merge survives another restart: the source is not loaded again.
      await c.stopStore(slot);
      const again = await c.startStore(slot);
      assert.ok(!again.store.peers.has(right.id));
      assert.equal(again.store.tombstones.get(right.id)?.merge?.target.id, left.id);
      assert.equal(str(again.store.peers.get(left.id)!.region.endKey) ?? "", "");
      await checkData(c, slot);
    }),
);

Deno.test(
  "merge-region: requests the regions cannot take are refused with the reason",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      const { left, right } = await splitAtM(c);
      const refuse = async (body: Record<string, unknown>, re: RegExp, status = 400) => {
        const res = await postOperator(c, { name: "merge-region", ...body });
        const text = await res.text();
        assert.equal(res.status, status, text);
        assert.match(text, re);
      };
      await refuse({ source_region_id: left.id, target_region_id: left.id }, /itself/);
      await refuse({ source_region_id: left.id, target_region_id: 999 }, /999/, 404);
      await refuse({ source_region_id: right.id }, /target_region_id/);
      const res = await postOperator(c, { name: "split-region", region_id: right.id, keys: ["t"] });
      assert.equal(res.status, 201, await res.text());
      await waitFor("the right region to split at t", () => {
        const last = c.scheduler.cluster.regions.regions().at(-1);
        return last !== undefined && str(last.meta.startKey) === "t";
      });
      const far = c.scheduler.cluster.regions.regions().at(-1)!.meta.id;
      await refuse({ source_region_id: far, target_region_id: left.id }, /not adjacent/);
      // Every region is untouched.
      await checkData(c);
      await waitFor("every store to hold the three regions", () =>
        c.running().every((n) => n.store.meta.sortedRegions().length === 3));
    }),
);

Deno.test(
  "merge: a frozen source refuses writes and reads with a retryable error; when the target moves on, it rolls back and thaws",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      const { left, right } = await splitAtM(c);
      // No store proposes a CommitMerge while the workers are stopped: the target can change
      // under the prepared merge.
      for (const n of c.running()) n.workers.merge.stop();
      const sourceLeader = await c.waitLeader(right.id);
      const sourceNode = c.running().find((n) => n.store.storeId === sourceLeader.storeId)!;
      // Just after the split the new region's leader may not know its followers' progress yet
      // (it refuses with ServerIsBusy): propose again until it does.
      let proposed = false;
      await waitFor("PrepareMerge to be proposed", async () => {
        try {
          await sourceNode.workers.merge.proposePrepareMerge(sourceLeader, left);
          proposed = true;
        } catch (e) {
          if (!(e instanceof MrkvError && e.code === "ServerIsBusy")) throw e;
        }
        return proposed;
      }, 10_000);
      const frozen = sourceLeader.region;
      assert.equal(frozen.epoch.version, right.epoch.version + 1, "PrepareMerge bumps version");
      assert.equal(frozen.epoch.confVer, right.epoch.confVer + 1, "and conf_ver");
      const busy = (e: unknown) =>
        e instanceof MrkvError && e.code === "ServerIsBusy" && /merging/.test(e.message);
      await assert.rejects(
        () =>
          sourceLeader.propose({
            header: { regionId: right.id, peerId: sourceLeader.meta.id, epoch: frozen.epoch },
            requests: [{ type: "Put", key: b("x-refused"), value: b("1") }],
          }),
        busy,
      );
      await assert.rejects(() => sourceLeader.read(), busy);
      // A client write to the source's range waits (retrying) until the region thaws.
      const waiting = c.put("x-waited", "1");
      // The target moves on: it splits, so the prepared CommitMerge can never apply.
      const res = await postOperator(c, { name: "split-region", region_id: left.id, keys: ["f"] });
      assert.equal(res.status, 201, await res.text());
      await waitFor("the target to split", () =>
        c.running().every((n) => n.store.meta.sortedRegions().length === 3));
      for (const n of c.running()) {
        n.workers.merge.start();
      }
      await waitFor("the source to roll back its merge on every store", () =>
        c.running().every((n) => {
          const p = n.store.peers.get(right.id);
          return p !== undefined && p.mergeState === undefined &&
            p.region.epoch.version === frozen.epoch.version + 1;
        }), 30_000);
      await waiting;
      assert.equal(await c.get("x-waited"), "1");
      await checkData(c);
      assert.ok(
        c.running().some((n) =>
          n.workers.merge.stats.rollbacks > 0
        ),
        "a RollbackMerge was proposed",
      );
    }),
);

Deno.test(
  "merge checker: small regions merge on their own once split-merge-interval has passed",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await splitAtM(c);
      for (const key of ["g", "t"]) {
        const r = c.scheduler.cluster.regions.getRegionByKey(b(key))!;
        const res = await postOperator(c, {
          name: "split-region",
          region_id: r.meta.id,
          keys: [key],
        });
        assert.equal(res.status, 201, await res.text());
        await waitFor(`the split at ${key}`, () =>
          c.scheduler.cluster.regions.getRegionByKey(b(key))?.meta.startKey.length === 1);
      }
      await waitFor("four regions on every store", () =>
        c.running().every((n) =>
          n.store.meta.sortedRegions().length === 4
        ));
      // Cool-down of an hour by default: nothing merges.
      assert.ok(c.scheduler.cluster.config.splitMergeInterval >= 60 * 60_000);
      const res = await fetch(`http://${c.scheduler.addr}/pd/api/v1/config`, {
        method: "POST",
        body: JSON.stringify({ split_merge_interval: 0 }),
      });
      assert.equal(res.status, 200, await res.text());
      await waitFor("the regions to merge down to one on every store", () =>
        c.running().every((n) =>
          n.store.meta.sortedRegions().length === 1
        ), 60_000);
      const only = c.node(0).store.meta.sortedRegions()[0]!;
      assert.equal(only.startKey.length + only.endKey.length, 0, "it covers every key");
      await checkData(c);
    }),
);

Deno.test(
  "merge-region: a source on other stores first moves its peers onto the target's, then merges",
  opts,
  () =>
    withCluster({ stores: 4 }, async (c) => {
      await pauseBalancers(c);
      const { left, right } = await splitAtM(c);
      const stores = left.peers.map((p) => p.storeId);
      const spare = c.running().map((n) => n.store.storeId).find((id) => !stores.includes(id))!;
      const leaderStore = (await c.waitLeader(right.id)).storeId;
      const moved = [...stores.filter((id) => id !== stores.find((s) => s !== leaderStore)), spare];
      const res = await postOperator(c, {
        name: "transfer-region",
        region_id: right.id,
        to_store_ids: moved,
      });
      assert.equal(res.status, 201, await res.text());
      const placedOn = (want: number[]) => () => {
        const r = c.leaderOf(right.id)?.region;
        return r !== undefined && r.peers.every((p) => p.role === "Voter") &&
          r.peers.map((p) => p.storeId).sort().join() === [...want].sort().join();
      };
      await waitFor("the right region to move onto the spare store", placedOn(moved), 30_000);
      await waitFor("the move to end", () => !c.scheduler.cluster.operators.get(right.id));
      await waitFor("the scheduler to see the move", () => {
        const r = c.scheduler.cluster.regions.getRegion(right.id);
        return r?.meta.peers.some((p) => p.storeId === spare) === true && r.leader !== undefined;
      });
      const op = await mergeRegion(c, right.id, left.id);
      const steps = op.steps.map((s) => s.type);
      assert.deepEqual(
        [steps[0], steps.at(-1)],
        ["AddLearner", "MergeRegion"],
        `the peers move first: ${steps}`,
      );
      await waitFor(
        "region 1 to be the only region on its stores",
        () =>
          c.running().filter((n) => stores.includes(n.store.storeId)).every((n) => {
            const regions = n.store.meta.sortedRegions();
            return regions.length === 1 && regions[0]!.id === left.id &&
              regions[0]!.endKey.length === 0;
          }),
        60_000,
      );
      const spareNode = c.running().find((n) => n.store.storeId === spare)!;
      await waitFor("the spare store to hold nothing", () => spareNode.store.peers.size === 0);
      await checkData(c);
    }),
);

Deno.test(
  "merge: a store that dies between the merged target's state and the source's tombstone finishes the merge at start-up",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      const { left, right } = await splitAtM(c);
      // A follower store of the target, with one mutation per engine commit: the CommitMerge's
      // write lands in many commits, in its phase order.
      const targetLeaderStore = (await c.waitLeader(left.id)).storeId;
      const slot = c.nodes.findIndex((n) => n && n.store.storeId !== targetLeaderStore);
      await c.stopStore(slot);
      const node = await c.startStore(slot, { commitLimits: { maxMutations: 1 } });
      await c.waitReplicas(left.id, 3);
      const engine = node.store.engine;
      let cut: string | undefined;
      // Die right after the commit that made the target's merged range durable, while the
      // source is still Merging on disk.
      engine.afterCommit = async () => {
        const target = await engine.regionState(left.id);
        const source = await engine.regionState(right.id);
        const merged = target && (target.region as Region).endKey.length === 0;
        if (merged && source?.peerState === "Merging") {
          cut = `target merged, source ${source.peerState}`;
          throw new Error("injected crash between the merge's two states");
        }
      };
      const died = node.finished.then(() => false, () => true);
      await mergeRegion(c, right.id, left.id);
      assert.ok(await died, "the store died in the CommitMerge's write");
      assert.equal(cut, "target merged, source Merging");
      c.nodes[slot] = undefined;
      await node.stop();
      const restarted = await c.startStore(slot);
      assert.ok(!restarted.store.peers.has(right.id), "start-up retired the merged source");
      assert.equal(restarted.store.tombstones.get(right.id)?.merge?.target.id, left.id);
      assert.equal(restarted.store.peers.get(left.id)!.region.endKey.length, 0);
      await waitMerged(c, right.id, left.id);
      await checkData(c, slot);
    }),
);

Deno.test(
  "merge: a store cut off long enough that its target needs a snapshot retires its stale source first",
  opts,
  () =>
    withCluster({ stores: 3, store: { raftLogGcCountLimit: 20 } }, async (c) => {
      const { left, right } = await splitAtM(c);
      const leaderStores = [
        (await c.waitLeader(left.id)).storeId,
        (await c.waitLeader(right.id)).storeId,
      ];
      const slot = c.nodes.findIndex((n) => n && !leaderStores.includes(n.store.storeId));
      assert.ok(slot >= 0, "a store that leads neither region");
      const cutOff = c.node(slot).store;
      const via = (slot + 1) % 3;
      c.network.isolate(cutOff.storeId);
      // The target's log moves on and is compacted past the cut-off store; the source's is left
      // alone (its slowest peer must still have its log from the merge's min index on).
      for (let i = 0; i < 60; i++) await c.put(`b-gc-${i}`, String(i), via);
      await mergeRegion(c, right.id, left.id);
      await waitFor(
        "the merge on the connected stores",
        () => c.running().every((n) => n === c.nodes[slot] || !n.store.peers.has(right.id)),
        30_000,
      );
      for (let i = 0; i < 60; i++) await c.put(`x-after-${i}`, String(i), via);
      await waitFor(
        "the target's log to be compacted past the cut-off store",
        () =>
          c.running().every((n) =>
            n === c.nodes[slot] ||
            n.store.peers.get(left.id)!.storage.applyState.truncatedIndex >
              cutOff.peers.get(left.id)!.storage.lastIndex()
          ),
      );
      assert.equal(cutOff.peers.get(right.id)?.mergeState, undefined, "it missed the merge");
      const snapshotsBefore = cutOff.stats.snapshotsApplied;
      c.network.clearFilters();
      await waitMerged(c, right.id, left.id);
      assert.ok(cutOff.stats.snapshotsApplied > snapshotsBefore, "the target came by snapshot");
      assert.ok(cutOff.tombstones.has(right.id), "the stale source left a tombstone");
      await c.waitLocal(slot, "x-after-59", "59");
      await c.waitLocal(slot, "b-gc-59", "59");
      await checkData(c, slot);
    }),
);
