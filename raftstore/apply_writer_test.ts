import assert from "node:assert/strict";
import { KvEngine } from "../storage/engine.ts";
import { WriteBatch } from "../storage/write_batch.ts";
import { ApplyWriter } from "./apply_writer.ts";
import { waitFor } from "../tests/cluster.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | null) => b === null ? null : new TextDecoder().decode(b);

/** An engine whose writes wait for `release()`, recording what each write carried. */
async function heldEngine() {
  const engine = await KvEngine.openInMemory();
  const write = engine.write.bind(engine);
  const gates: PromiseWithResolvers<void>[] = [];
  const sizes: number[] = [];
  let fail: Error | undefined;
  engine.write = async (wb: WriteBatch) => {
    sizes.push(wb.size);
    const gate = Promise.withResolvers<void>();
    gates.push(gate);
    await gate.promise;
    if (fail) throw fail;
    await write(wb);
  };
  return {
    engine,
    sizes,
    /** Lets the oldest held write go on (failing with `error` if given). */
    release(error?: Error) {
      fail = error;
      gates.shift()!.resolve();
    },
  };
}

const put = (key: string, value: string) => new WriteBatch().putData(enc(key), enc(value));
const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("batches queued behind a write in flight land together, in order", async () => {
  const h = await heldEngine();
  try {
    const w = new ApplyWriter(h.engine);
    const order: string[] = [];
    w.enqueue(put("a", "1"), (e) => order.push(`1:${e ?? "ok"}`));
    w.enqueue(put("a", "2").putData(enc("b"), enc("2")), (e) => order.push(`2:${e ?? "ok"}`));
    w.enqueue(put("a", "3"), (e) => order.push(`3:${e ?? "ok"}`));
    await tick();
    assert.deepEqual(h.sizes, [1], "the first batch is written alone, the others wait");
    assert.ok(w.busy);
    h.release();
    await waitFor("the first write", () => order.length > 0, 5_000);
    assert.deepEqual(order, ["1:ok"]);
    assert.equal(dec(await h.engine.get(enc("a"))), "1");
    assert.deepEqual(h.sizes, [1, 3], "the two queued batches make one write");
    h.release();
    await w.landed();
    assert.deepEqual(order, ["1:ok", "2:ok", "3:ok"]);
    assert.equal(dec(await h.engine.get(enc("a"))), "3", "the later batch's value wins");
    assert.equal(dec(await h.engine.get(enc("b"))), "2");
    assert.deepEqual([w.writes, w.batches], [2, 3]);
    assert.ok(!w.busy);
    // write() resolves once its batch has landed.
    const done = w.write(put("c", "1"));
    await tick();
    h.release();
    await done;
    assert.equal(dec(await h.engine.get(enc("c"))), "1");
  } finally {
    h.engine.close();
  }
});

Deno.test("a failed write fails its batches and everything after it, and nothing later lands", async () => {
  const h = await heldEngine();
  try {
    const w = new ApplyWriter(h.engine);
    const seen: (string | undefined)[] = [];
    w.enqueue(put("a", "1"), (e) => seen.push(e?.message));
    await tick();
    w.enqueue(put("a", "2"), (e) => seen.push(e?.message));
    h.release(new Error("disk gone"));
    await w.landed();
    assert.deepEqual(seen, ["disk gone", "disk gone"]);
    await assert.rejects(w.write(put("a", "3")), /disk gone/);
    assert.equal(h.sizes.length, 1, "nothing is written after a failed write");
    assert.equal(await h.engine.get(enc("a")), null);
  } finally {
    h.engine.close();
  }
});

Deno.test("a visible batch's keys read from the writer until the write carrying them lands", async () => {
  const h = await heldEngine();
  try {
    const w = new ApplyWriter(h.engine);
    w.enqueue(put("a", "1").putData(enc("b"), enc("1")), () => {}, true);
    w.enqueue(put("a", "2").deleteData(enc("b")), () => {}, true);
    w.enqueue(put("c", "1"), () => {}); // not visible: never read from the writer
    assert.equal(dec(w.pending(enc("a"))!), "2", "the latest pending value");
    assert.equal(w.pending(enc("b")), null, "a pending delete");
    assert.equal(w.pending(enc("c")), undefined);
    h.release(); // the first batch lands; the key's later value is still pending
    await waitFor("the first write", () => h.sizes.length === 2, 5_000);
    assert.equal(dec(await h.engine.get(enc("a"))), "1");
    assert.equal(dec(w.pending(enc("a"))!), "2");
    assert.equal(w.pending(enc("b")), null);
    w.enqueue(put("a", "3"), () => {}, true);
    h.release();
    await waitFor("the second write", () => h.sizes.length === 3, 5_000);
    // The second write carried batches 2 and 3 ("a" at 2, "b" deleted, "c"); batch 4 waits.
    assert.equal(dec(await h.engine.get(enc("a"))), "2");
    assert.equal(await h.engine.get(enc("b")), null);
    assert.equal(w.pending(enc("b")), undefined, "landed: read from the engine");
    assert.equal(dec(w.pending(enc("a"))!), "3");
    h.release();
    await w.landed();
    assert.equal(w.pending(enc("a")), undefined);
    assert.equal(dec(await h.engine.get(enc("a"))), "3");
  } finally {
    h.engine.close();
  }
});
