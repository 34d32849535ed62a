/**
 * Data dirs of the previous version, which kept every region's Raft entries and hard state in
 * Deno KV: a cluster of them upgrades in place (each store moves its logs on start), and a data
 * dir whose moved log has gone is refused with a clear error instead of starting without it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { RAFT_LOG_DIR } from "../raftstore/node.ts";
import { type HardState, Keys, KvEngine, RaftLogEngine } from "../storage/mod.ts";
import { type TestCluster, waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function dataDir(c: TestCluster, slot: number): string {
  return `${c.dir}/store${slot}`;
}

/**
 * Turns a stopped store's data dir back into the previous version's layout: its log's entries
 * and hard states written to Deno KV under the keys that version used, the log directory
 * removed and the migration mark cleared.
 */
async function toPreviousLayout(dir: string): Promise<void> {
  const kv = await KvEngine.open(dir);
  const log = await RaftLogEngine.open(join(dir, RAFT_LOG_DIR), { autoGc: false });
  try {
    const wb = kv.batch();
    for (const regionId of log.regionIds()) {
      const hs = log.hardState(regionId);
      if (hs) wb.putHardState(regionId, hs);
      const bounds = log.bounds(regionId);
      if (!bounds) continue;
      const entries = await log.entries(regionId, bounds.first, bounds.last + 1);
      entries.forEach((e, i) => wb.putRaftEntry(regionId, bounds.first + i, e));
    }
    wb.delete(Keys.raftLogMoved());
    await kv.write(wb);
  } finally {
    await log.close();
    kv.close();
  }
  await Deno.remove(join(dir, RAFT_LOG_DIR), { recursive: true });
}

Deno.test(
  "a cluster of data dirs with their raft logs in Deno KV upgrades in place: logs move on start, Raft terms and votes are kept, every acknowledged write is served",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      const acked = new Map<string, string>();
      for (let i = 0; i < 40; i++) {
        await c.put(`up${i}`, `v${i}`);
        acked.set(`up${i}`, `v${i}`);
      }
      await waitFor(
        "every store to apply every write",
        async () =>
          (await Promise.all([0, 1, 2].map((i) => c.localGet(i, "up39")))).every((v) =>
            v === "v39"
          ),
      );
      // What each store's Raft state was when it stopped.
      const before: { hs: HardState; last: number }[] = [];
      for (const i of [0, 1, 2]) {
        const p = c.node(i).store.peers.get(1)!;
        before[i] = { hs: { ...p.storage.hardState }, last: p.storage.lastIndex() };
      }
      for (const i of [0, 1, 2]) await c.stopStore(i);
      for (const i of [0, 1, 2]) {
        await toPreviousLayout(dataDir(c, i));
        const kv = await KvEngine.open(dataDir(c, i));
        assert.ok(await kv.raftLogBounds(1), `slot ${i}: the previous layout holds region 1's log`);
        kv.close();
      }

      for (const i of [0, 1, 2]) await c.startStore(i);
      for (const i of [0, 1, 2]) {
        const { store } = c.node(i);
        assert.ok(
          await RaftLogEngine.existsAt(join(dataDir(c, i), RAFT_LOG_DIR)),
          `slot ${i}: a log directory`,
        );
        assert.equal(await store.engine.raftLogBounds(1), undefined, `slot ${i}: none in Deno KV`);
        assert.equal(await store.engine.hardState(1), undefined, `slot ${i}: no hard state there`);
        const hs = store.raftLog.hardState(1)!;
        // Raft may have moved on since the restart (an election), never back.
        assert.ok(hs.term >= before[i]!.hs.term, `slot ${i}: term ${hs.term} kept`);
        if (hs.term === before[i]!.hs.term) {
          assert.equal(hs.vote, before[i]!.hs.vote, `slot ${i}: vote kept`);
        }
        assert.ok((store.raftLog.bounds(1)?.last ?? 0) >= before[i]!.last, `slot ${i}: entries`);
      }
      await c.put("after-upgrade", "yes");
      for (const i of [0, 1, 2]) {
        await c.waitLocal(i, "after-upgrade", "yes");
        for (const [key, value] of acked) {
          assert.equal(await c.localGet(i, key), value, `slot ${i}: acknowledged ${key}`);
        }
      }
      // Restarted again, a store opens its moved log as it is.
      await c.stopStore(0);
      const node = await c.startStore(0);
      assert.ok(node.store.raftLog.hardState(1), "the log is there after a second start");
      await c.waitLocal(0, "after-upgrade", "yes");
    }),
);

Deno.test(
  "a data dir whose moved raft log is missing is refused with an error naming it, stays refused, and starts once the log is back",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await c.put("k", "v");
      await c.waitLocal(2, "k", "v");
      await c.stopStore(2);
      const logDir = join(dataDir(c, 2), RAFT_LOG_DIR);
      const aside = `${c.dir}/raftlog-aside`;
      await Deno.rename(logDir, aside);
      for (const attempt of [1, 2]) {
        await assert.rejects(
          c.startStore(2),
          (e: Error) =>
            e.name === "RaftLogMissingError" && e.message.includes(logDir) &&
            e.message.includes("missing"),
          `attempt ${attempt} is refused`,
        );
        assert.equal(await RaftLogEngine.existsAt(logDir), false, "a refusal creates no log");
      }
      // An empty directory in its place is no better.
      await Deno.mkdir(logDir);
      await assert.rejects(c.startStore(2), /missing or empty/);
      await Deno.remove(logDir);
      await Deno.rename(aside, logDir);
      await c.startStore(2);
      await c.put("k2", "v2");
      await c.waitLocal(2, "k2", "v2");
      assert.equal(await c.localGet(2, "k"), "v");
    }),
);
