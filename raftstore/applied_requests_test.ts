/**
 * The table of applied client writes: verdicts, persistence in pass records, pruning by the
 * region's request clock, and the copies snapshots and splits carry.
 */
import assert from "node:assert/strict";
import { KvEngine } from "../storage/mod.ts";
import {
  AppliedRequests,
  newRequestTag,
  REQUEST_WINDOW_MS,
  type RequestTag,
} from "./applied_requests.ts";

const phases = { data: 2, state: 3 };
const T0 = 1_700_000_000_000;

async function reload(engine: KvEngine, regionId: number): Promise<AppliedRequests> {
  return AppliedRequests.load(await engine.appliedRequests(regionId), "test");
}

Deno.test("applied requests: fresh, then duplicate; too old is expired", () => {
  const t = new AppliedRequests();
  const a = newRequestTag(T0);
  assert.equal(t.check(a), "fresh");
  t.add(a, 10);
  assert.equal(t.check(a), "duplicate");
  assert.equal(t.clock, T0);
  const late = newRequestTag(T0 + REQUEST_WINDOW_MS + 1);
  t.add(late, 11);
  assert.equal(t.check(newRequestTag(T0 - 1)), "expired", "issued a window before the clock");
  assert.equal(t.check(newRequestTag(T0 + 5)), "fresh");
  assert.equal(t.check(a), "duplicate", "a remembered tag stays a duplicate until pruned");
  assert.equal(t.duplicates, 2);
  assert.equal(t.expired, 1);
});

Deno.test("applied requests: passes are persisted, reloaded and pruned once expired", async () => {
  const engine = await KvEngine.openInMemory();
  try {
    const t = new AppliedRequests();
    const tags: RequestTag[] = [];
    // Three passes, 40 s apart.
    for (let pass = 0; pass < 3; pass++) {
      for (let i = 0; i < 5; i++) {
        const tag = newRequestTag(T0 + pass * 40_000 + i);
        tags.push(tag);
        assert.equal(t.check(tag), "fresh");
        t.add(tag, 100 * pass + i + 1);
      }
      const wb = engine.batch();
      t.persistPass(wb, 7, phases);
      await engine.write(wb);
    }
    // The clock is 80 s after the first pass: its record expired and was deleted.
    assert.deepEqual((await engine.appliedRequests(7)).map(([i, p]) => [i, p]), [[101, 0], [
      201,
      0,
    ]]);
    assert.equal(t.size, 10);
    const again = await reload(engine, 7);
    assert.equal(again.clock, t.clock);
    assert.equal(again.size, 10);
    for (const tag of tags.slice(5)) assert.equal(again.check(tag), "duplicate");
    for (const tag of tags.slice(0, 5)) assert.equal(again.check(tag), "expired");

    // A pass that remembers nothing writes nothing; the latest record is never pruned.
    const wb = engine.batch();
    again.persistPass(wb, 7, phases);
    assert.equal(wb.size, 0);
    const later = newRequestTag(T0 + 10 * REQUEST_WINDOW_MS);
    again.add(later, 500);
    again.persistPass(wb, 7, phases);
    await engine.write(wb);
    assert.deepEqual((await engine.appliedRequests(7)).map(([i]) => i), [500]);
    const last = await reload(engine, 7);
    assert.equal(last.clock, later.issuedAt, "the clock survives in the latest record");
    assert.equal(last.check(tags[9]!), "expired");
  } finally {
    engine.close();
  }
});

Deno.test("applied requests: snapshots and splits carry the whole table and its clock", async () => {
  const engine = await KvEngine.openInMemory();
  try {
    const t = new AppliedRequests();
    const tags = Array.from({ length: 25_000 }, (_, i) => newRequestTag(T0 + i));
    for (const [i, tag] of tags.entries()) t.add(tag, i + 1);
    const decoded = AppliedRequests.decode(t.encode(), "snapshot.requests");
    assert.equal(decoded.clock, t.clock);
    assert.equal(decoded.size, tags.length);
    const copy = t.clone();
    const wb = engine.batch();
    copy.writeAll(wb, 9, 5);
    await engine.write(wb);
    assert.deepEqual((await engine.appliedRequests(9)).map(([i, p]) => [i, p]), [[5, 0], [5, 1]]);
    const loaded = await reload(engine, 9);
    assert.equal(loaded.clock, t.clock);
    for (const tag of [tags[0]!, tags[24_999]!]) {
      assert.equal(decoded.check(tag), "duplicate");
      assert.equal(loaded.check(tag), "duplicate");
    }
    assert.throws(() => AppliedRequests.decode({ clock: 1, tags: [[new Uint8Array(3), 1]] }, "x"));
  } finally {
    engine.close();
  }
});
