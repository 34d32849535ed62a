import assert from "node:assert/strict";
import { seededRandom } from "../../raft/mod.ts";
import { checkRegister, type RegisterOp } from "./checker.ts";

let nextId = 0;
/** write(value, invoke, complete); complete Infinity = unknown outcome. */
function w(value: string, invoke: number, complete: number): RegisterOp {
  return { id: nextId++, kind: "write", value, invoke, complete };
}
/** read returning value (null: absent) between invoke and complete. */
function r(value: string | null, invoke: number, complete: number): RegisterOp {
  return { id: nextId++, kind: "read", value, invoke, complete };
}

function verdict(ops: RegisterOp[]): string {
  return checkRegister(ops).result;
}

Deno.test("accepts a sequential history and reads of the initial absent value", () => {
  assert.equal(
    verdict([r(null, 0, 1), w("a", 2, 3), r("a", 4, 5), w("b", 6, 7), r("b", 8, 9)]),
    "ok",
  );
  assert.equal(verdict([r(null, 0, 1), r(null, 2, 3)]), "ok");
  assert.equal(verdict([]), "ok");
});

Deno.test("accepts overlapping operations in any order their intervals allow", () => {
  // b's write overlaps a's: reads during both may see either order, the last read settles it.
  assert.equal(verdict([w("a", 0, 10), w("b", 5, 20), r("b", 6, 8), r("b", 21, 22)]), "ok");
  assert.equal(verdict([w("a", 0, 10), w("b", 5, 20), r("a", 6, 8), r("b", 21, 22)]), "ok");
  assert.equal(verdict([w("a", 0, 10), r(null, 1, 2), r("a", 3, 4), r("a", 11, 12)]), "ok");
  // Touching intervals count as concurrent.
  assert.equal(verdict([w("a", 0, 5), r(null, 5, 6)]), "ok");
});

Deno.test("accepts an unknown write that took effect, late or never", () => {
  // Took effect (seen after its client gave up, even much later).
  assert.equal(verdict([w("a", 0, Infinity), r("a", 50, 51)]), "ok");
  assert.equal(verdict([w("a", 0, Infinity), r(null, 5, 6), r("a", 50, 51)]), "ok");
  // Never took effect.
  assert.equal(verdict([w("a", 0, Infinity), r(null, 5, 6), r(null, 50, 51)]), "ok");
  // Took effect after a later acknowledged write.
  assert.equal(verdict([w("a", 0, Infinity), w("b", 5, 6), r("b", 7, 8), r("a", 9, 10)]), "ok");
  // Many unknown writes, one of which shows up at the end.
  const ops = [w("x0", 0, 1)];
  for (let i = 1; i < 30; i++) ops.push(w(`x${i}`, i * 2, Infinity));
  ops.push(r("x0", 70, 71), r("x17", 80, 81));
  assert.equal(verdict(ops), "ok");
});

Deno.test("rejects a stale read after an acknowledged overwrite", () => {
  assert.equal(verdict([w("a", 0, 1), w("b", 2, 3), r("a", 4, 5)]), "anomaly");
});

Deno.test("rejects a value read back after a newer acknowledged write (a duplicated write)", () => {
  // The pattern of a write applied twice: v214's second copy lands after v200 was acknowledged.
  assert.equal(
    verdict([
      w("c14-214", 27391, 33593),
      w("c10-200", 34476, 34520),
      r("c14-214", 34616, 34628),
    ]),
    "anomaly",
  );
});

Deno.test("rejects a read of a value nobody wrote", () => {
  const res = checkRegister([w("a", 0, 1), r("zz", 2, 3)]);
  assert.equal(res.result, "anomaly");
  assert.ok(res.result === "anomaly" && res.stuck?.op.value === "zz");
});

Deno.test("rejects a lost acknowledged write", () => {
  assert.equal(verdict([w("a", 0, 1), r(null, 2, 3)]), "anomaly");
  assert.equal(verdict([w("a", 0, 1), r("a", 2, 3), w("b", 4, 5), r("a", 6, 7)]), "anomaly");
});

Deno.test("rejects an unknown write that took effect and then vanished", () => {
  assert.equal(verdict([w("a", 0, Infinity), r("a", 5, 6), r(null, 7, 8)]), "anomaly");
});

Deno.test("rejects reads that see two values in both orders", () => {
  // r(b) then r(a) puts b before a; the final r(b) needs b after a.
  assert.equal(
    verdict([w("a", 0, 10), w("b", 5, 20), r("b", 6, 8), r("a", 9, 12), r("b", 21, 22)]),
    "anomaly",
  );
  assert.equal(
    verdict([w("a", 0, 10), w("b", 0, 10), r("a", 11, 12), r("b", 13, 14), r("a", 15, 16)]),
    "anomaly",
  );
});

Deno.test("reports where it got stuck deepest", () => {
  const res = checkRegister([w("a", 0, 1), w("b", 2, 3), r("b", 4, 5), r("a", 6, 7)]);
  assert.ok(res.result === "anomaly");
  assert.equal(res.stuck?.op.value, "a");
  assert.equal(res.stuck?.op.kind, "read");
  assert.equal(res.stuck?.state, "b");
});

Deno.test("says unknown, not ok, when the budget runs out", () => {
  const ops: RegisterOp[] = [];
  for (let i = 0; i < 12; i++) ops.push(w(`v${i}`, 0, 100));
  for (let i = 0; i < 12; i++) ops.push(r(`v${i}`, 1 + i, 2 + i));
  const res = checkRegister(ops, { maxSteps: 10, maxMs: 10_000 });
  assert.equal(res.result, "unknown");
  assert.ok(res.result === "unknown" && /budget/.test(res.reason));
});

/** Brute force: tries every order of the operations that respects real time. */
function bruteForce(ops: RegisterOp[]): boolean {
  const n = ops.length;
  const used = new Array<boolean>(n).fill(false);
  const go = (placed: number, state: string | null): boolean => {
    // Open writes may be left out entirely once every finite operation is placed.
    if (ops.every((op, i) => used[i] || !Number.isFinite(op.complete))) return true;
    if (placed === n) return true;
    for (let i = 0; i < n; i++) {
      if (used[i]) continue;
      const op = ops[i]!;
      // Real time: nothing unplaced may have completed before op was invoked.
      if (ops.some((o, j) => !used[j] && j !== i && o.complete < op.invoke)) continue;
      if (op.kind === "read" && op.value !== state) continue;
      used[i] = true;
      if (go(placed + 1, op.kind === "write" ? op.value : state)) return true;
      used[i] = false;
    }
    return false;
  };
  return go(0, null);
}

Deno.test("agrees with a brute-force search on small random histories", () => {
  const rand = seededRandom(7);
  let anomalies = 0;
  for (let round = 0; round < 400; round++) {
    const n = 2 + Math.floor(rand() * 6);
    const ops: RegisterOp[] = [];
    let writes = 0;
    for (let i = 0; i < n; i++) {
      const invoke = Math.floor(rand() * 20);
      const len = Math.floor(rand() * 8);
      if (rand() < 0.5) {
        const complete = rand() < 0.2 ? Infinity : invoke + len;
        ops.push(w(`v${writes++}`, invoke, complete));
      } else {
        const pick = Math.floor(rand() * (writes + 1));
        ops.push(r(pick === writes ? null : `v${pick}`, invoke, invoke + len));
      }
    }
    const expected = bruteForce(ops);
    if (!expected) anomalies++;
    assert.equal(
      checkRegister(ops).result,
      expected ? "ok" : "anomaly",
      `round ${round}: ${JSON.stringify(ops)}`,
    );
  }
  // Both verdicts must have been exercised for the comparison to mean anything.
  assert.ok(anomalies > 20 && anomalies < 380, `anomalies: ${anomalies}`);
});

Deno.test("accepts long random linearizable histories quickly", () => {
  const rand = seededRandom(11);
  // Simulate a register: each operation takes effect at a point inside its interval.
  const ops: RegisterOp[] = [];
  const events: { at: number; op: () => void }[] = [];
  let state: string | null = null;
  for (let i = 0; i < 3000; i++) {
    const invoke = rand() * 10_000;
    const point = invoke + rand() * 30;
    const complete = point + rand() * 30;
    if (rand() < 0.5) {
      const unknown = rand() < 0.05;
      const vanished = unknown && rand() < 0.5;
      const value = `w${i}`;
      ops.push(w(value, invoke, unknown ? Infinity : complete));
      if (!vanished) events.push({ at: point, op: () => state = value });
    } else {
      const op = {
        id: nextId++,
        kind: "read" as const,
        value: null as string | null,
        invoke,
        complete,
      };
      ops.push(op);
      events.push({ at: point, op: () => op.value = state });
    }
  }
  events.sort((a, b) => a.at - b.at).forEach((e) => e.op());
  const res = checkRegister(ops);
  assert.equal(res.result, "ok");
});
