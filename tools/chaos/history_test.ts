import assert from "node:assert/strict";
import {
  byKey,
  completion,
  historyFromJson,
  HistoryRecorder,
  historyToJson,
  isCheckable,
  type Op,
} from "./history.ts";

function op(id: number, over: Partial<Op>): Op {
  return {
    id,
    client: 1,
    store: 1,
    key: "k00",
    kind: "write",
    value: `c1-${id}`,
    invoke: id * 10,
    end: id * 10 + 5,
    outcome: "ok",
    ...over,
  };
}

Deno.test("unknown outcomes complete at infinity; only ops that may matter are checked", () => {
  const unknown = op(1, { outcome: "unknown", error: "timeout" });
  assert.equal(completion(unknown), Infinity);
  assert.equal(completion(op(2, {})), 25);
  assert.ok(isCheckable(unknown));
  assert.ok(!isCheckable(op(3, { outcome: "fail", error: "NoLeader" })));
  assert.ok(isCheckable(op(4, { kind: "read", value: null })));
  assert.ok(!isCheckable(op(5, { kind: "read", value: null, outcome: "unknown" })));
  assert.ok(!isCheckable(op(6, { kind: "read", value: null, outcome: "fail" })));
});

Deno.test("the history splits by key and survives a JSON round trip", () => {
  const rec = new HistoryRecorder();
  const a = rec.nextId();
  const b = rec.nextId();
  rec.add(op(b, { key: "k01", outcome: "unknown", error: "network" }));
  rec.add(op(a, { kind: "read", value: null }));
  const ops = rec.ops();
  assert.deepEqual(ops.map((o) => o.id), [0, 1]);
  assert.deepEqual([...byKey(ops).keys()], ["k00", "k01"]);
  const text = historyToJson({ seed: 3 }, ops);
  assert.match(text, /"complete":null/);
  const back = historyFromJson(text);
  assert.deepEqual(back.meta, { seed: 3 });
  assert.deepEqual(back.ops, ops);
  assert.throws(() => historyFromJson('{"format":"x","ops":[]}'), /not an mrkv chaos history/);
  assert.throws(
    () => historyFromJson('{"format":"mrkv-chaos-history/1","ops":[{"id":"x"}]}'),
    /op 0/,
  );
});
