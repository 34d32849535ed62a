/** The test network's own behaviour: delivery to quiescence and each fault. */
import assert from "node:assert/strict";
import { electedNetwork, hup, prop } from "./helpers.ts";
import { Network } from "./network.ts";
import type { Raft } from "../raft.ts";

Deno.test("send delivers until quiescence: one MsgHup elects a leader with no ticks", () => {
  const nt = new Network([undefined, undefined, undefined]);
  nt.send(hup(1));
  assert.equal(nt.peer(1).state, "Leader");
  assert.ok(nt.delivered.length > 4);
});

Deno.test("a peer emitting a local-only message fails the test", () => {
  const nt = electedNetwork(3);
  const r = nt.peer(2) as Raft;
  const orig = r.readMessages.bind(r);
  r.readMessages = () => [...orig(), { ...hup(2), to: 1 }];
  assert.throws(() => nt.send(prop(2, "x")), /local message MsgHup/);
});

Deno.test("isolate/cut drop both directions; recover heals", () => {
  const nt = electedNetwork(3);
  nt.isolate(3);
  nt.send(prop(1, "a"));
  assert.equal(nt.peer(3).raftLog.lastIndex(), 1);
  nt.recover();
  nt.cut(1, 2);
  nt.send(prop(1, "b"));
  assert.equal(nt.peer(2).raftLog.lastIndex(), 2);
  assert.equal(nt.peer(3).raftLog.lastIndex(), 3);
});

Deno.test("drop rate is seeded: the same seed drops the same messages", () => {
  const run = (seed: number) => {
    const nt = electedNetwork(3, { seed });
    nt.drop(1, 2, 0.5);
    nt.drop(1, 3, 0.5);
    for (let i = 0; i < 20; i++) nt.send(prop(1, `${i}`));
    return nt.delivered.map((m) => `${m.type}:${m.to}:${m.index}`).join(",");
  };
  assert.equal(run(5), run(5));
  assert.notEqual(run(5), run(6));
});

Deno.test("delay holds messages back until released; duplicates are harmless", () => {
  const nt = electedNetwork(3);
  nt.delay(1, 3);
  nt.send(prop(1, "a"));
  assert.equal(nt.peer(3).raftLog.lastIndex(), 1);
  assert.ok(nt.delayed.length > 0);
  nt.releaseDelayed("reverse");
  assert.equal(nt.peer(3).raftLog.lastIndex(), 2);
  nt.duplicate(1);
  nt.send(prop(1, "b"));
  for (const id of [1, 2, 3]) assert.equal(nt.peer(id).raftLog.lastIndex(), 3);
});
