/** The ID allocator persists its high-water mark before handing IDs out and never reuses one. */
import assert from "node:assert/strict";
import { ALLOC_KEY, IdAllocator } from "./id_allocator.ts";

Deno.test("IDs are unique across batches, concurrent calls and reopening", async () => {
  const kv = await Deno.openKv(":memory:");
  const a = await IdAllocator.open(kv, 10);
  const seen = new Set<number>();
  const firsts = await Promise.all(Array.from({ length: 50 }, (_, i) => a.alloc(1 + (i % 4))));
  firsts.forEach((first, i) => {
    for (let k = 0; k < 1 + (i % 4); k++) {
      assert.ok(!seen.has(first + k));
      seen.add(first + k);
    }
  });
  assert.ok(Math.min(...seen) >= 2, "ID 1 is the bootstrap region's");
  const hwm = (await kv.get<number>(ALLOC_KEY)).value!;
  assert.ok(hwm >= Math.max(...seen), "the persisted mark covers every ID handed out");
  const b = await IdAllocator.open(kv, 10);
  assert.ok((await b.alloc(1)) > Math.max(...seen));
  await b.reserve(5);
  const sync = [b.allocSync(), b.allocSync()];
  assert.ok(sync[1]! > sync[0]! && sync[0]! > Math.max(...seen));
  assert.ok((await kv.get<number>(ALLOC_KEY)).value! >= sync[1]!);
  kv.close();
});

Deno.test("allocSync refuses when nothing is reserved", async () => {
  const kv = await Deno.openKv(":memory:");
  const a = await IdAllocator.open(kv, 10);
  assert.throws(() => a.allocSync(), /no buffered IDs/);
  kv.close();
});
