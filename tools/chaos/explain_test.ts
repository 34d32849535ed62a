import assert from "node:assert/strict";
import { checkRegister } from "./checker.ts";
import { describe, explainKey } from "./explain.ts";
import { completion, isCheckable, type Op } from "./history.ts";

let nextId = 0;
function op(
  kind: "read" | "write",
  value: string | null,
  invoke: number,
  end: number,
  outcome: Op["outcome"] = "ok",
  client = 1,
): Op {
  return {
    id: nextId++,
    client,
    store: 1 + (client % 3),
    key: "k04",
    kind,
    value,
    invoke,
    end,
    outcome,
    ...(outcome === "ok" ? {} : { error: outcome === "fail" ? "NoLeader" : "503 Timeout" }),
  };
}

/** What the chaos run does: check, then explain what the checker rejected. */
function explainRun(ops: Op[]) {
  const res = checkRegister(
    ops.filter(isCheckable).map((o) => ({ ...o, complete: completion(o) })),
  );
  assert.equal(res.result, "anomaly");
  return explainKey("k04", ops, res.result === "anomaly" ? res.stuck : undefined);
}

Deno.test("explains the duplicated-write pattern with the three operations that prove it", () => {
  const old = op("write", "c14-214", 27391, 33593, "ok", 14);
  const newer = op("write", "c10-200", 34476, 34520, "ok", 10);
  const read = op("read", "c14-214", 34616, 34628, "ok", 8);
  const noise = [op("read", null, 100, 120), op("write", "c2-1", 200, 300, "ok", 2)];
  const [e, ...rest] = explainRun([...noise, old, newer, read]);
  assert.equal(rest.length, 0);
  assert.equal(e!.kind, "stale-read");
  assert.ok(e!.confirmed);
  assert.deepEqual([...e!.opIds].sort(), [old.id, newer.id, read.id].sort());
  assert.match(e!.text, /write "c10-200" ok at 34476\.\.34520/);
  assert.match(
    e!.text,
    /then read at 34616\.\.34628 .* returned "c14-214", written \(ok\) at 27391\.\.33593/,
  );
});

Deno.test("explains a read of nothing after an acknowledged write as a lost write", () => {
  const w = op("write", "a", 0, 10);
  const r = op("read", null, 20, 30);
  const [e] = explainRun([w, r]);
  assert.equal(e!.kind, "lost-write");
  assert.ok(e!.confirmed);
  assert.match(e!.text, /write "a" ok at 0\.\.10 .*then read at 20\.\.30 .* returned nothing/);
});

Deno.test("uses a read as the witness of a value in effect", () => {
  // "a" was unknown but seen at 5..6; "b" was written after that and acknowledged; "a" returns.
  const wa = op("write", "a", 0, 2000, "unknown");
  const seen = op("read", "a", 5, 6);
  const wb = op("write", "b", 10, 20);
  const back = op("read", "a", 30, 40);
  const [e] = explainRun([wa, seen, wb, back]);
  assert.equal(e!.kind, "stale-read");
  assert.ok(e!.confirmed);
  assert.ok(e!.opIds.includes(seen.id));
});

Deno.test("names a read of a value no one wrote, or whose write failed", () => {
  const [phantom] = explainRun([op("write", "a", 0, 1), op("read", "zz", 2, 3)]);
  assert.equal(phantom!.kind, "phantom-read");
  assert.ok(phantom!.confirmed);

  const failed = op("write", "a", 0, 1, "fail");
  const [e] = explainRun([failed, op("read", "a", 2, 3)]);
  assert.equal(e!.kind, "read-of-failed-write");
  assert.match(e!.text, /answered as not applied: write "a" failed \(NoLeader\)/);
  assert.ok(e!.confirmed);
});

Deno.test("names a read that ended before its write began", () => {
  const [e] = explainRun([op("read", "a", 0, 1), op("write", "a", 5, 6)]);
  assert.equal(e!.kind, "read-before-write");
  assert.ok(e!.confirmed);
});

Deno.test("explains values seen in both orders by reads alone", () => {
  // b seen, then a seen, then b again: with both writes overlapping every read.
  const ops = [
    op("write", "a", 0, 10),
    op("write", "b", 5, 20),
    op("read", "b", 6, 8),
    op("read", "a", 9, 12),
    op("read", "b", 21, 22),
  ];
  const [e] = explainRun(ops);
  assert.equal(e!.kind, "stale-read");
  assert.ok(e!.confirmed);
  assert.match(e!.text, /returned "b", an older value/);
});

Deno.test("falls back to the checker's stuck point when no pattern fits", () => {
  // A value written twice defeats the patterns (they rely on one write per value).
  const ops = [op("write", "a", 0, 1), op("write", "a", 2, 3), op("read", null, 2.5, 5)];
  const [e] = explainRun(ops);
  assert.equal(e!.kind, "unexplained");
  assert.match(e!.text, /none could place read at 3\.\.5 .* returned nothing/);
  assert.match(e!.text, /overlapping: write "a" ok at 2\.\.3/);
});

Deno.test("describes each outcome of an operation", () => {
  assert.equal(
    describe(op("write", "x", 1.4, 9.6, "unknown", 3)),
    `write "x" unknown (503 Timeout; client gave up) at 1..10 (c3@s1, op ${nextId - 1})`,
  );
  assert.match(describe(op("read", null, 0, 1, "ok", 2)), /returned nothing/);
});
