/**
 * Crash points inside the Ready loop. A store is made to die on its next engine write — the
 * write never lands, as if the process were killed just before it — while clients keep writing.
 * A leader has already sent that pass's appends (they leave before its own write, Raft thesis
 * §10.2.1), so this is the window where followers hold entries the leader lost. No acknowledged
 * write may be lost, and every store must end with the same data.
 */
import assert from "node:assert/strict";
import { b, str, waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "leaders and followers crashing just before a Ready-loop write lose no acknowledged write",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      const acked = new Map<string, string>();
      const failed = new Set<string>();
      let running = true;
      const writer = async (id: number) => {
        for (let n = 0; running; n++) {
          const key = `w${id}-${String(n).padStart(4, "0")}`;
          const up = c.nodes.map((x, i) => (x ? i : -1)).filter((i) => i >= 0);
          try {
            await c.put(key, `v${n}`, up[n % up.length]);
            acked.set(key, `v${n}`);
          } catch {
            failed.add(key);
          }
        }
      };
      const writers = Array.from({ length: 6 }, (_, i) => writer(i));
      for (let round = 0; round < 6; round++) {
        await waitFor("a leader", () => c.leaderOf(1) !== undefined);
        await new Promise((r) => setTimeout(r, 300));
        // Leaders and followers in turn: a follower must never acknowledge what it has not
        // written.
        const leader = c.leaderOf(1)!;
        const slot = c.nodes.findIndex((n) =>
          n !== undefined && (n.store.storeId === leader.storeId) === (round % 2 === 0)
        );
        await c.crashOnNextWrite(slot);
        await new Promise((r) => setTimeout(r, 300));
        await c.startStore(slot);
      }
      running = false;
      await Promise.all(writers);
      assert.ok(acked.size > 50, `clients made progress (${acked.size} acknowledged writes)`);
      for (const [i] of c.nodes.entries()) {
        for (const [key, value] of acked) {
          assert.equal(await c.get(key, i), value, `acknowledged ${key} through store slot ${i}`);
        }
      }
      // Every store's engine converges to the same data (followers catch up by log or snapshot).
      const leader = c.leaderOf(1)!;
      await waitFor(
        "every store to apply everything",
        () => c.running().every((n) => n.store.peers.get(1)!.appliedIndex >= leader.appliedIndex),
      ).catch((e) => {
        const state = c.running().map((n) => {
          const p = n.store.peers.get(1)!;
          const st = p.raw.status();
          return `store ${n.store.storeId} peer ${p.meta.id} region ${
            JSON.stringify(p.region.peers)
          }: ` +
            `${st.softState.raftState} term ${st.hardState.term} ` +
            `commit ${st.hardState.commit} applied ${p.appliedIndex} last ${p.storage.lastIndex()} ` +
            `truncated ${p.storage.applyState.truncatedIndex} progress ${
              JSON.stringify(st.progress)
            }`;
        });
        throw new Error(`${(e as Error).message}\n${state.join("\n")}`);
      });
      const dumps = await Promise.all(
        c.running().map(async (n) =>
          (await n.store.engine.scan(b("w"), b("x"), 100_000)).map((kv) =>
            `${str(kv.key)}=${str(kv.value)}`
          ).join(",")
        ),
      );
      assert.equal(new Set(dumps).size, 1, "all stores hold the same data");
      for (const key of failed) {
        const got = await c.get(key);
        assert.ok(
          got === null || got.startsWith("v"),
          `a failed write is absent or whole (${key})`,
        );
      }
    }),
);

Deno.test(
  "a leader store killed part way through a large log compaction restarts and catches up",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      // Small engine commits on every store, so compacting a few hundred entries takes several.
      const small = { commitLimits: { maxMutations: 40 } };
      for (const i of [0, 1, 2]) {
        await c.stopStore(i);
        await c.startStore(i, small);
      }
      await c.waitReplicas(1, 3);
      const acked = new Map<string, string>();
      let n = 0;
      let running = true;
      const writer = (async () => {
        while (running) {
          const key = `k${String(n++).padStart(5, "0")}`;
          try {
            await c.put(key, `v${n}`, c.nodes.findIndex((x) => x !== undefined));
            acked.set(key, `v${n}`);
          } catch {
            // The store died under it: unknown, and not checked. Back off as a client would (a
            // dead store fails at once, and a tight retry loop would starve the event loop).
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      })();
      try {
        for (const cut of [1, 2, 3]) {
          await waitFor("a leader", () => c.leaderOf(1) !== undefined);
          const leader = c.leaderOf(1)!;
          const slot = c.nodes.findIndex((x) => x?.store.storeId === leader.storeId);
          await waitFor(
            "200 entries to compact",
            () => leader.appliedIndex - leader.storage.firstIndex() > 200,
            30_000,
          );
          // Die after the `cut`-th engine commit of the compaction, wherever it is done.
          let seen = 0;
          const node = c.node(slot);
          const died = node.finished.then(() => false, () => true);
          node.store.engine.afterCommit = (info) => {
            if (info.operation !== "deleteRange" && info.commits === 1) return;
            if (++seen === cut) throw new Error(`injected crash after compaction commit ${cut}`);
          };
          const compactIndex = leader.appliedIndex - 1;
          void leader.propose({
            header: { regionId: 1, peerId: leader.meta.id, epoch: leader.region.epoch },
            admin: {
              type: "CompactLog",
              compactIndex,
              compactTerm: leader.storage.term(compactIndex),
            },
          }).catch(() => {});
          c.node(slot).store.schedule(leader);
          await waitFor(`the injected crash (cut ${cut})`, () => seen >= cut, 15_000);
          // A broken engine fails the store's next write: it dies as a killed process would.
          // (The writer keeps writing, so that write comes; bounded all the same.)
          let dead = false;
          void died.then((d) => dead = d);
          await waitFor(`the store to die after the crash (cut ${cut})`, () => dead, 20_000);
          await c.stopStore(slot);
          await c.startStore(slot, small); // must not refuse to start
          const restarted = c.node(slot).store.peers.get(1)!;
          assert.ok(restarted.storage.firstIndex() > 1);
          const bounds = await c.node(slot).store.engine.raftLogBounds(1);
          assert.ok(
            bounds === undefined || bounds.first >= restarted.storage.firstIndex(),
            `cut ${cut}: no entry below the truncated index is left (${JSON.stringify(bounds)})`,
          );
        }
      } finally {
        running = false;
        await writer;
      }
      assert.ok(acked.size > 300, `clients made progress (${acked.size} acknowledged writes)`);
      const leader = c.leaderOf(1)!;
      await waitFor(
        "every store to apply everything",
        () => c.running().every((x) => x.store.peers.get(1)!.appliedIndex >= leader.appliedIndex),
      );
      for (const i of [0, 1, 2]) {
        for (const [key, value] of acked) {
          assert.equal(await c.localGet(i, key), value, `acknowledged ${key} on store slot ${i}`);
        }
      }
    }),
);
