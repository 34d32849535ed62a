import assert from "node:assert/strict";
import { ScanGate } from "./scan_gate.ts";
import { MrkvError } from "../proto/errors.ts";

Deno.test("scan gate: at most `width` holders; a release hands the slot to the first waiter", async () => {
  const gate = new ScanGate(2, 5_000);
  const a = await gate.acquire();
  const b = await gate.acquire();
  assert.equal(gate.busy, 2);
  let cGot = false;
  const c = gate.acquire().then((r) => (cGot = true, r));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(cGot, false, "a third page waits");
  a();
  a(); // releasing twice frees one slot only
  const releaseC = await c;
  assert.equal(gate.busy, 2);
  b();
  releaseC();
  assert.equal(gate.busy, 0);
});

Deno.test("scan gate: a page that waits too long is answered ServerIsBusy, and leaves no trace", async () => {
  const gate = new ScanGate(1, 50);
  const a = await gate.acquire();
  await assert.rejects(
    gate.acquire(),
    (e) => e instanceof MrkvError && e.code === "ServerIsBusy",
  );
  a();
  assert.equal(gate.busy, 0, "the timed-out waiter took no slot");
  const again = await gate.acquire();
  assert.equal(gate.busy, 1);
  again();
});
