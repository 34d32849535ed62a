/**
 * The store meta's range index (store_meta.ts) against a plain list on random splits, range
 * changes, removals and overlapping refusals: the same routing, the same overlaps, always sorted.
 */
import assert from "node:assert/strict";
import { compareBytes, keyInRegion, rangesOverlap, type Region } from "../proto/metapb.ts";
import { seededRandom } from "../raft/mod.ts";
import { StoreMeta } from "./store_meta.ts";

const enc = new TextEncoder();
const key = (n: number) => enc.encode(`k${String(n).padStart(4, "0")}`);

function region(id: number, start: number | null, end: number | null): Region {
  return {
    id,
    startKey: start === null ? new Uint8Array() : key(start),
    endKey: end === null ? new Uint8Array() : key(end),
    epoch: { confVer: 1, version: 1 },
    peers: [{ id: id * 10, storeId: 1, role: "Voter" }],
  };
}

Deno.test("the range index agrees with a plain list through random splits and removals", () => {
  const rand = seededRandom(7);
  const meta = new StoreMeta();
  const plain = new Map<number, Region>();
  let nextId = 2;
  const check = () => {
    const sorted = [...plain.values()].sort((a, b) => compareBytes(a.startKey, b.startKey));
    assert.deepEqual(meta.sortedRegions().map((r) => r.id), sorted.map((r) => r.id));
    for (let i = 0; i < 30; i++) {
      const k = key(Math.floor(rand() * 1000));
      assert.equal(meta.regionForKey(k)?.id, sorted.find((r) => keyInRegion(k, r))?.id);
      const range = region(0, Math.floor(rand() * 1000), null);
      const end = rand() < 0.2 ? new Uint8Array() : key(Math.floor(rand() * 1000));
      const q = { startKey: range.startKey, endKey: end };
      if (end.length > 0 && compareBytes(end, q.startKey) <= 0) continue;
      assert.deepEqual(
        meta.overlapping(q).map((r) => r.id),
        sorted.filter((r) => rangesOverlap(r, q)).map((r) => r.id),
      );
    }
  };
  assert.ok(meta.setRegion(region(1, null, null)));
  plain.set(1, region(1, null, null));
  for (let step = 0; step < 400; step++) {
    const all = [...plain.values()];
    const r = all[Math.floor(rand() * all.length)]!;
    const lo = r.startKey.length === 0 ? 0 : Number(new TextDecoder().decode(r.startKey).slice(1));
    const hi = r.endKey.length === 0 ? 1000 : Number(new TextDecoder().decode(r.endKey).slice(1));
    const op = rand();
    if (op < 0.6 && hi - lo > 1) {
      // Split: the left part keeps the ID, the right part is new.
      const at = lo + 1 + Math.floor(rand() * (hi - lo - 1));
      const left = { ...region(r.id, null, at), startKey: r.startKey };
      const right = { ...region(nextId++, at, null), endKey: r.endKey };
      assert.ok(meta.setRegion(left));
      assert.ok(meta.setRegion(right));
      plain.set(left.id, left);
      plain.set(right.id, right);
    } else if (op < 0.75 && plain.size > 1) {
      meta.removeRegion(r.id);
      plain.delete(r.id);
    } else if (op < 0.85) {
      // A region that would overlap another is refused and changes nothing.
      const other = all.find((x) => x.id !== r.id);
      if (other) assert.equal(meta.setRegion({ ...other, id: nextId++ }), false);
    } else {
      // The same range with a new epoch replaces the entry in place.
      const bumped = { ...r, epoch: { confVer: 2, version: 2 } };
      assert.ok(meta.setRegion(bumped));
      plain.set(r.id, bumped);
      assert.equal(meta.regions.get(r.id), bumped);
    }
    check();
  }
  // An uninitialized region is known by ID only, and leaves the range index alone.
  assert.ok(meta.setRegion(region(9999, null, null), false));
  assert.ok(meta.regions.has(9999));
  check();
});
