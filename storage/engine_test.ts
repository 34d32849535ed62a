import assert from "node:assert/strict";
import { compareBytes, Keys } from "./keys.ts";
import { KvEngine } from "./engine.ts";
import { KeyTooLargeError } from "./write_batch.ts";

const enc = new TextEncoder();
const b = (s: string) => enc.encode(s);
const bytes = (n: number, seed = 1) => {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = (i * 31 + seed) & 0xff;
  return a;
};

/** Runs `f` with an engine on a fresh temp dir, then removes the dir. */
async function withDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-storage-" });
  try {
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function countRaw(engine: KvEngine, prefix: Deno.KvKey): Promise<number> {
  let n = 0;
  for await (const _ of engine.rawKv.list({ prefix })) n++;
  return n;
}

Deno.test("put, get, getMany and delete user keys", async () => {
  const e = await KvEngine.openInMemory();
  try {
    await e.write(e.batch().putData(b("a"), b("1")).putData(b("b"), b("2")));
    assert.deepEqual(await e.get(b("a")), b("1"));
    assert.equal(await e.get(b("zz")), null);
    const keys = Array.from({ length: 25 }, (_, i) => b(i % 2 ? "a" : `missing${i}`));
    const many = await e.getMany(keys);
    assert.equal(many.length, 25);
    assert.deepEqual(many[1], b("1"));
    assert.equal(many[0], null);
    await e.write(e.batch().deleteData(b("a")).deleteData(b("never-there")));
    assert.equal(await e.get(b("a")), null);
    assert.deepEqual(await e.get(b("b")), b("2"));
  } finally {
    e.close();
  }
});

Deno.test("gets asked for together are read together, and one bad key fails only itself", async () => {
  const e = await KvEngine.openInMemory();
  try {
    const big = bytes(200 * 1024, 7); // stored in pieces
    await e.write(e.batch().putData(b("a"), b("1")).putData(b("big"), big));
    const reads: Deno.KvKey[][] = [];
    const getMany = e.rawKv.getMany.bind(e.rawKv);
    e.rawKv.getMany = ((keys: Deno.KvKey[]) => {
      reads.push(keys);
      return getMany(keys);
    }) as typeof e.rawKv.getMany;
    // 23 gets in one turn: three shared reads (10, 10 and 3 keys), every answer in its place.
    const keys = Array.from({ length: 23 }, (_, i) => ["a", "big", `missing${i}`][i % 3]!);
    const got = await Promise.all(keys.map((k) => e.get(b(k))));
    assert.deepEqual(reads.map((r) => r.length), [10, 10, 3]);
    for (const [i, k] of keys.entries()) {
      assert.deepEqual(got[i], k === "a" ? b("1") : k === "big" ? big : null, `get ${i} (${k})`);
    }
    // A key Deno KV refuses fails its own get; the others of its turn still answer.
    const [ok, bad, missing] = await Promise.allSettled([
      e.get(b("a")),
      e.get(bytes(3000)),
      e.get(b("nope")),
    ]);
    assert.deepEqual(ok, { status: "fulfilled", value: b("1") });
    assert.equal(bad.status, "rejected");
    assert.deepEqual(missing, { status: "fulfilled", value: null });
  } finally {
    e.close();
  }
});

Deno.test("scan returns binary keys in bytewise order within [start, end) up to limit", async () => {
  const e = await KvEngine.openInMemory();
  try {
    const keys = [[], [0], [0, 0], [0, 255], [1], [1, 0], [127], [128], [255], [255, 255, 0]]
      .map((k) => new Uint8Array(k));
    const batch = e.batch();
    // Insert in a scrambled order; value = the key, so pairs are easy to check.
    for (const i of [5, 2, 9, 0, 7, 1, 8, 3, 6, 4]) batch.putData(keys[i]!, keys[i]!);
    await e.write(batch);
    const sorted = [...keys].sort(compareBytes);
    const all = await e.scan(new Uint8Array(), undefined, 100);
    assert.deepEqual(all.map((p) => p.key), sorted);
    assert.ok(all.every((p) => compareBytes(p.key, p.value) === 0));
    const mid = await e.scan(new Uint8Array([0, 0]), new Uint8Array([128]), 100);
    assert.deepEqual(mid.map((p) => [...p.key]), [[0, 0], [0, 255], [1], [1, 0], [127]]);
    const limited = await e.scan(new Uint8Array([0]), undefined, 3);
    assert.deepEqual(limited.map((p) => [...p.key]), [[0], [0, 0], [0, 255]]);
    assert.deepEqual(await e.scan(new Uint8Array([9]), new Uint8Array([9]), 10), []);
  } finally {
    e.close();
  }
});

Deno.test("a batch over 1000 mutations and over 800 KB commits in several commits", async () => {
  const commits: number[] = [];
  const e = await KvEngine.openInMemory({ afterCommit: (i) => void commits.push(i.mutations) });
  try {
    const batch = e.batch();
    for (let i = 0; i < 2500; i++) batch.putData(b(`k${String(i).padStart(5, "0")}`), bytes(128));
    for (let i = 0; i < 30; i++) batch.putData(b(`big${i}`), bytes(60_000, i));
    await e.write(batch);
    assert.ok(commits.length >= 5, `commits: ${commits}`);
    assert.ok(commits.every((n) => n <= 1000));
    assert.equal((await e.scan(b("k"), b("l"), 5000)).length, 2500);
    assert.deepEqual(await e.get(b("big17")), bytes(60_000, 17));
  } finally {
    e.close();
  }
});

Deno.test("batches of maximal keys and values are accepted by Deno KV itself", async () => {
  // Near every limit at once: 2000-byte keys (80 KiB of keys per commit), inline values at the
  // 65535-byte maximum (800 KB per commit), and more than 1000 mutations.
  const commits: number[] = [];
  const e = await KvEngine.openInMemory({ afterCommit: (i) => void commits.push(i.mutations) });
  try {
    const batch = e.batch();
    const longKey = (i: number) =>
      new Uint8Array(2000).fill(1).fill(i & 0xff, 0, 2).fill(i >> 8, 0, 1);
    for (let i = 0; i < 150; i++) batch.putData(longKey(i), bytes(65535, i));
    for (let i = 150; i < 400; i++) batch.putData(longKey(i), b("small"));
    for (let i = 0; i < 1200; i++) batch.putRaftEntry(2, i + 1, bytes(10, i));
    await e.write(batch);
    assert.ok(commits.length >= 20, `commits: ${commits}`);
    assert.deepEqual(await e.get(longKey(149)), bytes(65535, 149));
    assert.equal((await e.raftEntries(2, 1, 2000)).length, 1200);
  } finally {
    e.close();
  }
});

Deno.test("iterate pages through a range lazily, in order", async () => {
  const e = await KvEngine.openInMemory();
  try {
    const batch = e.batch();
    for (let i = 0; i < 1200; i++) batch.putData(new Uint8Array([i >> 8, i & 0xff]), b("v"));
    await e.write(batch);
    let n = 0;
    let prev: Uint8Array | undefined;
    for await (const p of e.iterate(new Uint8Array([1]))) {
      if (prev) assert.ok(compareBytes(prev, p.key) < 0);
      prev = p.key;
      n++;
    }
    assert.equal(n, 1200 - 256);
    assert.equal((await Array.fromAsync(e.iterate(new Uint8Array(), undefined, 7))).length, 7);
  } finally {
    e.close();
  }
});

Deno.test("1 MiB values are chunked, reassembled, and leave no stale pieces", async () => {
  const e = await KvEngine.openInMemory();
  try {
    const big = bytes(1024 * 1024, 3);
    await e.write(e.batch().putData(b("k"), big));
    assert.deepEqual(await e.get(b("k")), big);
    assert.equal(await countRaw(e, ["x"]), 16);
    const scanned = await e.scan(b("a"), b("z"), 10);
    assert.deepEqual(scanned[0]?.value, big);

    const other = bytes(200_000, 4); // a smaller chunked value replaces the first
    await e.write(e.batch().putData(b("k"), other));
    assert.deepEqual(await e.get(b("k")), other);
    assert.equal(await countRaw(e, ["x"]), 4);

    await e.write(e.batch().putData(b("k"), b("small")));
    assert.deepEqual(await e.get(b("k")), b("small"));
    assert.equal(await countRaw(e, ["x"]), 0);

    await e.write(e.batch().putData(b("k"), big).putData(b("j"), big));
    await e.write(e.batch().deleteData(b("k")));
    assert.equal(await e.get(b("k")), null);
    assert.equal(await countRaw(e, ["x"]), 16);
  } finally {
    e.close();
  }
});

Deno.test("a value at exactly the inline limit and one byte over both round-trip", async () => {
  const e = await KvEngine.openInMemory();
  try {
    for (const n of [0, 65535, 65536, 65537, 2 * 65536]) {
      await e.write(e.batch().putData(b("v"), bytes(n, n)));
      assert.deepEqual(await e.get(b("v")), bytes(n, n), `size ${n}`);
    }
  } finally {
    e.close();
  }
});

Deno.test("readers racing an overwrite of a chunked value never see it torn", async () => {
  const e = await KvEngine.openInMemory();
  try {
    const values = [bytes(300_000, 1), bytes(500_000, 2), bytes(70_000, 3), b("tiny")];
    await e.write(e.batch().putData(b("k"), values[0]!));
    let stop = false;
    const reader = (async () => {
      let reads = 0;
      while (!stop || reads < 20) {
        const v = await e.get(b("k"));
        assert.ok(values.some((x) => v !== null && compareBytes(x, v) === 0), "torn read");
        reads++;
      }
    })();
    for (let i = 0; i < 20; i++) await e.write(e.batch().putData(b("k"), values[i % 4]!));
    stop = true;
    await reader;
  } finally {
    e.close();
  }
});

Deno.test("over-long keys are refused before anything is written", async () => {
  const e = await KvEngine.openInMemory();
  try {
    assert.throws(() => e.batch().putData(new Uint8Array(2030).fill(1), b("v")), KeyTooLargeError);
    const ok = new Uint8Array(2000).fill(1); // fits with room for chunk keys
    await e.write(e.batch().putData(ok, bytes(100_000)));
    assert.deepEqual(await e.get(ok), bytes(100_000));
  } finally {
    e.close();
  }
});

Deno.test("deleteRange removes [start, end) including chunked values, in bounded commits", async () => {
  const commits: number[] = [];
  const e = await KvEngine.openInMemory({ afterCommit: (i) => void commits.push(i.mutations) });
  try {
    const batch = e.batch();
    for (let i = 0; i < 1200; i++) batch.putData(new Uint8Array([i >> 8, i & 0xff]), b("v"));
    batch.putData(new Uint8Array([1, 0, 0]), bytes(300_000));
    await e.write(batch);
    commits.length = 0;
    const n = await e.deleteRange(new Uint8Array([1]), new Uint8Array([4]));
    assert.equal(n, 3 * 256 + 1);
    assert.ok(commits.length >= 2 && commits.every((c) => c <= 1000));
    const left = await e.scan(new Uint8Array(), undefined, 5000);
    assert.equal(left.length, 1200 - 768);
    assert.ok(left.every((p) => p.key[0] === 0 || p.key[0]! >= 4));
    assert.equal(await countRaw(e, ["x"]), 0);
    assert.equal(await e.deleteRange(new Uint8Array([1]), new Uint8Array([4])), 0);
    assert.equal(await e.deleteRange(new Uint8Array([4])), 1200 - 1024);
    assert.equal((await e.scan(new Uint8Array(), undefined, 5000)).length, 256);
  } finally {
    e.close();
  }
});

Deno.test("raft log helpers read ranges, report bounds and delete ranges", async () => {
  const e = await KvEngine.openInMemory();
  try {
    const batch = e.batch();
    for (let i = 5; i <= 20; i++) batch.putRaftEntry(9, i, bytes(i === 12 ? 1024 * 1024 : 50, i));
    batch.putRaftEntry(10, 1, b("other region"));
    await e.write(batch);
    assert.deepEqual(await e.raftLogBounds(9), { first: 5, last: 20 });
    assert.equal(await e.raftLogBounds(11), undefined);
    const got = await e.raftEntries(9, 10, 15);
    assert.deepEqual(got, [10, 11, 12, 13, 14].map((i) => bytes(i === 12 ? 1024 * 1024 : 50, i)));
    assert.equal((await e.raftEntries(9, 18, 100)).length, 3);
    await assert.rejects(e.raftEntries(9, 3, 8), /has a hole: expected entry 3, found 5/);
    assert.equal(await e.deleteRaftLog(9, 0, 13), 8);
    assert.deepEqual(await e.raftLogBounds(9), { first: 13, last: 20 });
    await e.write(e.batch().deleteRaftEntries(9, 18, 21));
    assert.deepEqual(await e.raftLogBounds(9), { first: 13, last: 17 });
    assert.equal(await e.deleteRaftLog(9, 0), 5);
    assert.equal(await countRaw(e, ["x"]), 0);
    assert.deepEqual(await e.raftEntries(10, 1, 2), [b("other region")]);
  } finally {
    e.close();
  }
});

Deno.test("per-region and store records round-trip and regions are enumerated", async () => {
  const e = await KvEngine.openInMemory();
  try {
    assert.equal(await e.hardState(1), undefined);
    assert.deepEqual(await e.regionIds(), []);
    const batch = e.batch()
      .putHardState(1, { term: 3, vote: 2, commit: 9 })
      .putApplyState(1, { appliedIndex: 9, truncatedIndex: 5, truncatedTerm: 2 })
      .putRegionState(1, { peerState: "Normal", region: { id: 1, startKey: new Uint8Array() } })
      .putRegionState(40, { peerState: "Tombstone", region: { id: 40 } })
      .putRaftEntry(7, 1, b("e"))
      .putStoreIdent({ clusterId: 77, storeId: 4 });
    await e.write(batch);
    assert.deepEqual(await e.hardState(1), { term: 3, vote: 2, commit: 9 });
    assert.deepEqual(await e.applyState(1), {
      appliedIndex: 9,
      truncatedIndex: 5,
      truncatedTerm: 2,
    });
    assert.deepEqual(await e.regionState(1), {
      peerState: "Normal",
      region: { id: 1, startKey: new Uint8Array() },
    });
    assert.equal((await e.regionState(40))?.peerState, "Tombstone");
    assert.deepEqual(await e.storeIdent(), { clusterId: 77, storeId: 4 });
    assert.deepEqual(await e.regionIds(), [1, 7, 40]);
    await e.write(e.batch().deleteRaftState(1));
    assert.equal(await e.hardState(1), undefined);
    assert.equal(await e.applyState(1), undefined);
    assert.equal((await e.regionState(1))?.peerState, "Normal");
  } finally {
    e.close();
  }
});

Deno.test("corrupt records are reported with what and where", async () => {
  const e = await KvEngine.openInMemory();
  try {
    await e.write(e.batch().put(Keys.hardState(2), b("not cbor at all")));
    await assert.rejects(e.hardState(2), /hard state of region 2/);
    await e.rawKv.set(Keys.applyState(2), "a string");
    await assert.rejects(e.applyState(2), /not a framed byte string/);
  } finally {
    e.close();
  }
});

Deno.test("data, chunked values and raft state survive a reopen from disk", async () => {
  await withDir(async (dir) => {
    let e = await KvEngine.open(dir);
    await e.write(
      e.batch().putData(b("a"), b("1")).putData(b("big"), bytes(700_000))
        .putHardState(3, { term: 1, vote: 1, commit: 1 }).putRaftEntry(3, 1, b("e1")),
    );
    e.close();
    e = await KvEngine.open(dir);
    try {
      assert.equal(e.path, `${dir}/engine.kv`);
      assert.deepEqual(await e.get(b("a")), b("1"));
      assert.deepEqual(await e.get(b("big")), bytes(700_000));
      assert.deepEqual(await e.hardState(3), { term: 1, vote: 1, commit: 1 });
      assert.deepEqual(await e.raftEntries(3, 1, 2), [b("e1")]);
      // The chunk map was rebuilt: overwriting removes the old pieces.
      await e.write(e.batch().putData(b("big"), b("s")));
      assert.equal(await countRaw(e, ["x"]), 0);
    } finally {
      e.close();
    }
  });
});
