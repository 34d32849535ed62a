/**
 * Crash tests: a write is cut after its k-th Deno KV commit (for every k), the engine is
 * reopened from disk, and the state it recovers must be consistent — no torn value, no orphaned
 * chunk piece, and no state record ahead of the data it vouches for.
 */
import assert from "node:assert/strict";
import { KvEngine } from "./engine.ts";
import { keyId, parseChunkKey } from "./keys.ts";
import { decodeFrame } from "./records.ts";
import type { CommitLimits, WriteBatch } from "./write_batch.ts";

const enc = new TextEncoder();
const b = (s: string) => enc.encode(s);
const bytes = (n: number, seed = 1) => {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = (i * 31 + seed) & 0xff;
  return a;
};

/** Small budgets so that modest batches span many commits. */
const LIMITS: Partial<CommitLimits> = { maxMutations: 40, maxCommitBytes: 200_000 };

class Crash extends Error {}

/** Every chunk piece belongs to the version its head names, and every head has all pieces. */
async function assertChunksConsistent(e: KvEngine): Promise<void> {
  const pieces = new Map<string, number>();
  for await (const entry of e.rawKv.list({ prefix: ["x"] })) {
    const p = parseChunkKey(entry.key);
    assert.ok(p, "malformed chunk key");
    const head = await e.rawKv.get(p.logical);
    assert.ok(head.value !== null, `orphan piece: no head at ${String(p.logical)}`);
    const f = decodeFrame(head.value, () => "head");
    assert.ok(f.kind === "chunked" && f.version === p.version, "orphan piece of another version");
    const id = keyId(p.logical);
    pieces.set(id, (pieces.get(id) ?? 0) + 1);
  }
  for await (const entry of e.rawKv.list({ prefix: [] })) {
    if (entry.key[0] === "x") continue;
    const f = decodeFrame(entry.value, () => "value");
    if (f.kind === "chunked") {
      assert.equal(pieces.get(keyId(entry.key as never)), f.chunks, "head without all its pieces");
    }
  }
}

interface Scenario {
  /** State on disk before the batch. */
  setup(e: KvEngine): Promise<void>;
  /** The batch that gets cut. */
  build(e: KvEngine): WriteBatch;
  /** Checks the reopened engine after a cut after commit `k` of `total` (k = total: none). */
  check(e: KvEngine, k: number, total: number): Promise<void>;
}

/** Runs the batch whole, then cut after each of its commits, checking the reopened state. */
async function everyCut(s: Scenario): Promise<number> {
  const root = await Deno.makeTempDir({ prefix: "mrkv-crash-" });
  try {
    let total = 0;
    for (let k = 0;; k++) {
      const dir = `${root}/cut-${k}`;
      const e = await KvEngine.open(dir, { commitLimits: LIMITS });
      await s.setup(e);
      let commits = 0;
      e.afterCommit = () => {
        commits++;
        if (k > 0 && commits === k) throw new Crash(`crash after commit ${k}`);
      };
      if (k === 0) {
        await e.write(s.build(e));
        total = commits;
        assert.ok(total >= 3, `scenario needs several commits, got ${total}`);
      } else {
        await assert.rejects(e.write(s.build(e)), (err: Error) => err.cause instanceof Crash);
        await assert.rejects(e.write(e.batch().putData(b("x"), b("y"))), /reopen it/);
      }
      e.close();
      const r = await KvEngine.open(dir);
      try {
        await assertChunksConsistent(r);
        await s.check(r, k === 0 ? total : k, total);
      } finally {
        r.close();
      }
      await Deno.remove(dir, { recursive: true });
      if (k === total - 1) return total;
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const entry = (i: number) => bytes(i === 60 ? 1024 * 1024 : i % 25 === 0 ? 100_000 : 300, i);

Deno.test("a Ready cut between commits never leaves a hard state ahead of its entries", async () => {
  // Two regions, written the way a Ready loop does: per region, its hard state (phase 1) is even
  // added before its entries (phase 0); the phases, not the call order, decide what lands first.
  const regions = [1, 2];
  const total = await everyCut({
    async setup(e) {
      const batch = e.batch();
      for (const r of regions) {
        for (let i = 1; i <= 10; i++) batch.atPhase(0).putRaftEntry(r, i, entry(i));
        batch.atPhase(1).putHardState(r, { term: 1, vote: 1, commit: 10 });
      }
      await e.write(batch);
    },
    build(e) {
      const batch = e.batch();
      for (const r of regions) {
        batch.atPhase(1).putHardState(r, { term: 2, vote: 1, commit: 70 });
        for (let i = 11; i <= 70; i++) batch.atPhase(0).putRaftEntry(r, i, entry(i));
      }
      return batch;
    },
    async check(e, k, total) {
      for (const r of regions) {
        const hs = await e.hardState(r);
        const bounds = await e.raftLogBounds(r);
        assert.ok(bounds);
        // Every entry present is whole (never torn), whatever the cut.
        const stored = await e.raftEntries(r, 1, bounds.last + 1);
        stored.forEach((v, i) => assert.deepEqual(v, entry(i + 1), `entry ${i + 1}`));
        if (hs?.commit === 70) assert.equal(stored.length, 70, "hard state ahead of entries");
        else assert.deepEqual(hs, { term: 1, vote: 1, commit: 10 });
        if (k === total) assert.equal(hs?.commit, 70);
      }
    },
  });
  assert.ok(total >= 10, `only ${total} commits`);
});

Deno.test("overwrites of chunked values cut at any commit read back whole, old or new", async () => {
  const A = bytes(1024 * 1024, 7);
  const B = bytes(200_000, 8);
  await everyCut({
    async setup(e) {
      await e.write(e.batch().putData(b("K"), A).putData(b("S"), A));
    },
    build(e) {
      const batch = e.batch();
      for (let i = 0; i < 100; i++) batch.putData(b(`d${i}`), bytes(500, i));
      batch.putData(b("K"), B).putData(b("S"), b("small"));
      return batch.barrier().putApplyState(1, {
        appliedIndex: 50,
        truncatedIndex: 0,
        truncatedTerm: 0,
      });
    },
    async check(e) {
      const k = await e.get(b("K"));
      const s = await e.get(b("S"));
      assert.ok(k !== null && (equal(k, A) || equal(k, B)), "K torn");
      assert.ok(s !== null && (equal(s, A) || equal(s, b("small"))), "S torn");
      if ((await e.applyState(1))?.appliedIndex === 50) {
        assert.deepEqual(k, B);
        assert.deepEqual(s, b("small"));
        const data = await e.scan(b("d"), b("e"), 1000);
        assert.equal(data.length, 100, "applied index ahead of applied data");
      }
    },
  });
});

Deno.test("snapshot data cut at any commit is never marked Normal before it is all there", async () => {
  const region = { id: 5, startKey: b("s"), endKey: b("t") };
  await everyCut({
    async setup(e) {
      await e.write(e.batch().putRegionState(5, { peerState: "Normal", region }));
    },
    build(e) {
      const batch = e.batch().putRegionState(5, { peerState: "Applying", region });
      batch.barrier();
      for (let i = 0; i < 200; i++) batch.putData(b(`s${String(i).padStart(3, "0")}`), b(`v${i}`));
      batch.putData(b("s-big"), bytes(150_000));
      batch.barrier();
      batch.putApplyState(5, { appliedIndex: 77, truncatedIndex: 77, truncatedTerm: 3 });
      return batch.putRegionState(5, { peerState: "Normal", region });
    },
    async check(e, k, total) {
      const state = await e.regionState(5);
      const applied = (await e.applyState(5))?.appliedIndex;
      const data = await e.scan(b("s"), b("t"), 1000);
      if (applied === 77) {
        assert.equal(state?.peerState, "Normal");
        assert.equal(data.length, 201, "Normal before all snapshot data");
        assert.deepEqual(await e.get(b("s-big")), bytes(150_000));
      } else {
        // Cut before the Applying record landed: no snapshot data is visible yet.
        if (state?.peerState === "Normal") assert.equal(data.length, 0);
        else assert.equal(state?.peerState, "Applying");
        assert.ok(k < total);
      }
    },
  });
});

Deno.test("a range delete cut part way is finished by running it again", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-crash-" });
  try {
    let e = await KvEngine.open(dir, { commitLimits: LIMITS });
    const batch = e.batch();
    for (let i = 0; i < 600; i++) batch.putData(b(`r${String(i).padStart(4, "0")}`), b("v"));
    for (let i = 0; i < 3; i++) batch.putData(b(`r${i}-big`), bytes(300_000, i));
    batch.putData(b("z-outside"), bytes(100_000));
    await e.write(batch);
    let commits = 0;
    e.afterCommit = () => {
      if (++commits === 4) throw new Crash("crash in range delete");
    };
    await assert.rejects(e.deleteRange(b("r"), b("s")));
    e.close();
    e = await KvEngine.open(dir);
    try {
      await assertChunksConsistent(e);
      const left = await e.scan(b("r"), b("s"), 1000);
      assert.ok(left.length > 0 && left.length < 603, `left ${left.length}`);
      await e.deleteRange(b("r"), b("s"));
      assert.deepEqual(await e.scan(b("r"), b("s"), 1000), []);
      assert.deepEqual(await e.get(b("z-outside")), bytes(100_000));
      await assertChunksConsistent(e);
    } finally {
      e.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
