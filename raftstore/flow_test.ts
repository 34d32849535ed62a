/** Flow counts: bytes and keys per region per interval, and one zero report once traffic stops. */
import assert from "node:assert/strict";
import { FlowCounter } from "./flow.ts";

Deno.test("a region reports its bytes and keys, then zeros once after its traffic stops", () => {
  let now = 0;
  const f = new FlowCounter(() => now);
  f.write(7, 300, 3);
  f.read(7, 50, 2);
  f.read(8, 0, 1); // a read of a missing key still counts as a key read
  assert.deepEqual([...f.regions()].sort(), [7, 8]);
  now = 500;
  assert.deepEqual(f.take([7, 8]).get(7), {
    bytesWritten: 300,
    bytesRead: 50,
    keysWritten: 3,
    keysRead: 2,
    intervalMs: 500,
  });
  assert.deepEqual([...f.regions()].sort(), [7, 8], "once more, to report the stop");
  now = 1000;
  assert.equal(f.take([7]).get(7)!.keysWritten, 0);
  assert.deepEqual([...f.regions()], [], "then nothing");
});
