import assert from "node:assert/strict";
import { encodedKeySize, keyId, Keys } from "./keys.ts";
import {
  type ChunkRef,
  type ChunkState,
  commitLimits,
  DEFAULT_COMMIT_LIMITS,
  DENO_KV_LIMITS,
  KeyTooLargeError,
  MAX_VALUE_BYTES,
  MUTATION_SLACK,
  planCommits,
  type PlannedCommit,
  ValueTooLargeError,
  WriteBatch,
} from "./write_batch.ts";

/** A chunk state with nothing chunked yet, or the given refs. */
function chunkState(current: Record<string, ChunkRef> = {}): ChunkState {
  let next = 100;
  return { current: (id) => current[id], allocateVersion: () => next++ };
}

function checkFits(commits: PlannedCommit[]): void {
  for (const c of commits) {
    assert.ok(c.mutations.length <= DENO_KV_LIMITS.maxMutations);
    let bytes = 0;
    let keyBytes = 0;
    for (const m of c.mutations) {
      const k = encodedKeySize(m.key);
      assert.ok(k <= DENO_KV_LIMITS.maxKeyBytes);
      assert.ok((m.value?.length ?? 0) <= DENO_KV_LIMITS.maxValueBytes);
      bytes += 2 * k + (m.value?.length ?? 0);
      keyBytes += k;
    }
    assert.ok(bytes <= DENO_KV_LIMITS.maxCommitBytes, `commit of ${bytes} bytes`);
    assert.ok(keyBytes <= DENO_KV_LIMITS.maxCommitKeyBytes);
  }
}

const bytes = (n: number, fill = 1) => new Uint8Array(n).fill(fill);

Deno.test("a batch that fits one commit is planned as exactly one commit", () => {
  const b = new WriteBatch();
  for (let i = 0; i < 10; i++) b.putRaftEntry(1, i + 1, bytes(100));
  b.barrier();
  b.putHardState(1, { term: 1, vote: 1, commit: 10 });
  const commits = planCommits(b, chunkState());
  assert.equal(commits.length, 1);
  assert.equal(commits[0]!.mutations.length, 11);
});

Deno.test("2500 mutations are cut into commits of at most 1000, phases in order", () => {
  const b = new WriteBatch();
  b.atPhase(1).putHardState(7, { term: 2, vote: 3, commit: 2500 });
  b.atPhase(0);
  for (let i = 1; i <= 2500; i++) b.putRaftEntry(7, i, bytes(16));
  const commits = planCommits(b, chunkState());
  assert.deepEqual(commits.map((c) => c.mutations.length), [1000, 1000, 501]);
  checkFits(commits);
  const last = commits.at(-1)!.mutations.at(-1)!;
  assert.equal(last.id, keyId(Keys.hardState(7)), "the hard state comes after every entry");
});

Deno.test("commits stay under 800 KB and 80 KiB of keys", () => {
  const b = new WriteBatch();
  for (let i = 0; i < 40; i++) b.putData(bytes(4, i), bytes(60_000));
  for (let i = 0; i < 100; i++) b.putData(bytes(2000, i + 1), bytes(10));
  const commits = planCommits(b, chunkState());
  assert.ok(commits.length >= 4);
  checkFits(commits);
  assert.equal(commits.reduce((n, c) => n + c.mutations.length, 0), 140);
});

Deno.test("a large value becomes pieces first, head in its phase, old pieces deleted last", () => {
  const key = Keys.data(bytes(3));
  const old: ChunkRef = { version: 7, chunks: 5 };
  const b = new WriteBatch();
  b.putData(bytes(1, 9), bytes(10));
  b.barrier();
  b.put(key, bytes(1024 * 1024, 2)); // 16 pieces of 64 KiB
  const seq = planCommits(b, chunkState({ [keyId(key)]: old })).flatMap((c) => c.mutations);
  const kinds = seq.map((m) =>
    m.key[0] === "x" ? (m.value === null ? `del-piece-v${m.key.at(-2)}` : "piece") : "logical"
  );
  assert.deepEqual(kinds, [
    ...Array(16).fill("piece"),
    "logical",
    "logical",
    ...Array(5).fill("del-piece-v7"),
  ]);
  const head = seq[17]!;
  assert.equal(head.id, keyId(key));
  assert.deepEqual(head.head?.ref, { version: 100, chunks: 16 });
});

Deno.test("overwriting a chunked value with a small one deletes its pieces after the head", () => {
  const key = Keys.data(bytes(3));
  const b = new WriteBatch().put(key, bytes(5));
  const seq = planCommits(b, chunkState({ [keyId(key)]: { version: 4, chunks: 2 } }))
    .flatMap((c) => c.mutations);
  assert.equal(seq.length, 3);
  assert.equal(seq[0]!.id, keyId(key));
  assert.equal(seq[0]!.head?.ref, undefined);
  assert.ok(seq.slice(1).every((m) => m.key[0] === "x" && m.value === null));
});

Deno.test("two writes of one key in one commit collapse into the later one", () => {
  const b = new WriteBatch();
  b.putRegionState(3, { peerState: "Applying", region: { id: 3 } });
  b.barrier();
  b.putData(bytes(2), bytes(2));
  b.barrier();
  b.putRegionState(3, { peerState: "Normal", region: { id: 3 } });
  const commits = planCommits(b, chunkState());
  assert.equal(commits.length, 1);
  assert.equal(commits[0]!.mutations.length, 2);
});

Deno.test("a key repeated across a commit boundary keeps both writes in order", () => {
  const b = new WriteBatch();
  b.putRegionState(3, { peerState: "Applying", region: null });
  b.barrier();
  for (let i = 0; i < 20; i++) b.putData(bytes(4, i), bytes(10));
  b.barrier();
  b.putRegionState(3, { peerState: "Normal", region: null });
  const commits = planCommits(b, chunkState(), commitLimits({ maxMutations: 8 }));
  const flat = commits.flatMap((c) => c.mutations);
  assert.equal(flat.length, 22);
  assert.equal(flat[0]!.id, flat[21]!.id);
  assert.notEqual(commits[0], commits.at(-1));
});

Deno.test("over-long keys and over-large values are refused with a clear error", () => {
  const b = new WriteBatch();
  assert.throws(() => b.putData(bytes(2040), bytes(1)), KeyTooLargeError);
  assert.throws(
    () => b.putData(new Uint8Array(1020), bytes(1)),
    /encodes to 2045 bytes .* over Deno KV's 2048-byte key limit/,
  );
  b.putData(bytes(2000), bytes(1)); // fits, with room for its chunk keys
  assert.throws(
    () => b.putData(bytes(1), bytes(MAX_VALUE_BYTES + 1)),
    (e: unknown) => e instanceof ValueTooLargeError && /at most 1114112 bytes/.test(e.message),
  );
  assert.equal(b.size, 1);
});

Deno.test("commit limits can be shrunk for tests but never raised past Deno KV's", () => {
  assert.throws(() => commitLimits({ maxMutations: 1001 }), /not in 1\.\.1000/);
  assert.throws(() => commitLimits({ maxCommitBytes: 900 * 1024 }), /must be in/);
  assert.deepEqual(commitLimits(), DEFAULT_COMMIT_LIMITS);
  assert.ok(MUTATION_SLACK > 0);
});

Deno.test("barrier() after an empty phase does not skip ahead", () => {
  const b = new WriteBatch();
  assert.equal(b.barrier().phase, 0);
  b.putData(bytes(1), bytes(1));
  assert.equal(b.barrier().phase, 1);
  assert.equal(b.atPhase(0).phase, 0);
  assert.equal(b.barrier().phase, 2);
});

Deno.test("rolling back to a savepoint drops exactly the mutations added after it", () => {
  const b = new WriteBatch();
  b.putData(new Uint8Array([1]), bytes(4));
  const sp = b.savepoint();
  b.atPhase(2).putData(new Uint8Array([2]), bytes(4));
  b.atPhase(0).deleteData(new Uint8Array([3]));
  assert.equal(b.size, 3);
  b.rollbackTo(sp);
  assert.equal(b.size, 1);
  const commits = planCommits(b, chunkState());
  assert.deepEqual(commits.flatMap((c) => c.mutations.map((m) => m.key)), [
    Keys.data(new Uint8Array([1])),
  ]);
  assert.throws(() => b.rollbackTo(5), RangeError);
});

Deno.test("append() adds a later batch's mutations in their phases, after this batch's", () => {
  const a = new WriteBatch();
  a.atPhase(0).putData(bytes(1), bytes(1));
  a.atPhase(1).putApplyState(7, { appliedIndex: 10, truncatedIndex: 5, truncatedTerm: 5 });
  const b = new WriteBatch();
  b.atPhase(0).putData(bytes(1), bytes(2)).putData(bytes(3), bytes(3));
  b.atPhase(1).putApplyState(7, { appliedIndex: 12, truncatedIndex: 5, truncatedTerm: 5 });
  const bOps = b.ops().length;
  a.append(b);
  assert.equal(a.size, 5);
  assert.equal(b.ops().length, bOps, "the appended batch is left as it was");
  // Both batches' data first, then both apply states: no state lands before data it covers.
  assert.deepEqual(a.ops().map((op) => op.phase), [0, 0, 0, 1, 1]);
  const commits = planCommits(a, chunkState());
  assert.equal(commits.length, 1);
  const byId = new Map(commits[0]!.mutations.map((m) => [m.id, m]));
  // A key both batches set ends with the later batch's value.
  assert.equal(commits[0]!.mutations.length, 3);
  assert.deepEqual(
    byId.get(keyId(Keys.data(bytes(1))))!.value,
    planCommits(new WriteBatch().putData(bytes(1), bytes(2)), chunkState())[0]!.mutations[0]!
      .value,
  );
  const state = commits[0]!.mutations.at(-1)!;
  assert.equal(state.id, keyId(Keys.applyState(7)));
  // The current phase of the receiving batch does not move.
  const c = new WriteBatch().atPhase(0);
  c.append(new WriteBatch().atPhase(3).putData(bytes(9), bytes(9)));
  assert.equal(c.phase, 0);
  c.barrier();
  assert.equal(c.phase, 4, "a barrier starts after the appended batch's phases");
});
