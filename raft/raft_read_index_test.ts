/**
 * ReadIndex (Raft thesis §6.4): linearizable reads without log writes. The leader records its
 * commit index, confirms its leadership with a heartbeat quorum, then answers; a follower
 * forwards the request; a single voter answers at once; a deposed leader cannot answer; a new
 * leader waits until it has committed an entry of its term.
 */
import assert from "node:assert/strict";
import { RawNode } from "./rawnode.ts";
import { MemoryStorage } from "./storage.ts";
import { electedNetwork, hup, msg, prop } from "./testing/helpers.ts";
import { Network } from "./testing/network.ts";
import type { Message } from "./types.ts";

function readReq(to: number, ctx: string): Message {
  return msg({
    type: "MsgReadIndex",
    from: to,
    to,
    entries: [{ term: 0, index: 0, type: "Normal", data: new TextEncoder().encode(ctx) }],
  });
}

function ctxOf(r: { requestCtx: Uint8Array }): string {
  return new TextDecoder().decode(r.requestCtx);
}

Deno.test("a leader answers a read after a heartbeat round confirms its leadership", () => {
  const nt = electedNetwork(3);
  nt.send(prop(1, "a"));
  const lead = nt.peer(1);
  nt.delivered = [];
  nt.send(readReq(1, "r1"));
  const hbs = nt.delivered.filter((m) => m.type === "MsgHeartbeat");
  assert.equal(hbs.length, 2, "one heartbeat round");
  assert.ok(hbs.every((m) => ctxOf({ requestCtx: m.context! }) === "r1"));
  assert.equal(lead.readStates.length, 1);
  assert.equal(lead.readStates[0]!.index, 2);
  assert.equal(ctxOf(lead.readStates[0]!), "r1");
  assert.equal(lead.raftLog.lastIndex(), 2, "no log write");
});

Deno.test("a read at a follower is forwarded and answered with the leader's commit index", () => {
  const nt = electedNetwork(3);
  nt.send(prop(1, "a"), prop(1, "b"));
  nt.send(readReq(2, "f"));
  const f = nt.peer(2);
  assert.equal(f.readStates.length, 1);
  assert.equal(f.readStates[0]!.index, 3);
  assert.equal(ctxOf(f.readStates[0]!), "f");
});

Deno.test("a single-voter group answers a read at once", () => {
  const s = new MemoryStorage([1]);
  const rn = new RawNode({ id: 1, electionTick: 10, heartbeatTick: 1, storage: s });
  rn.campaign();
  let rd = rn.ready();
  s.append(rd.entries);
  rn.advance(rd);
  rn.readIndex(new TextEncoder().encode("solo"));
  rd = rn.ready();
  assert.equal(rd.readStates.length, 1);
  assert.equal(rd.readStates[0]!.index, 1);
  assert.equal(rd.messages.length, 0);
});

Deno.test("a deposed leader cut off from the majority cannot serve a read", () => {
  const nt = electedNetwork(3);
  const old = nt.peer(1);
  nt.isolate(1);
  // The majority elects a new leader and commits more.
  nt.send(hup(2));
  assert.equal(nt.peer(2).state, "Leader");
  nt.send(prop(2, "new"));
  // The old leader still thinks it leads; its read gets no quorum of acks.
  assert.equal(old.state, "Leader");
  nt.send(readReq(1, "stale"));
  assert.equal(old.readStates.length, 0);
  // Healed: its own heartbeats are ignored by peers at the higher term, so still no quorum...
  nt.recover();
  nt.send(msg({ type: "MsgBeat", from: 1, to: 1 }));
  assert.equal(old.readStates.length, 0);
  // ...and the new leader's heartbeat deposes it: the pending read is dropped, not answered.
  nt.send(msg({ type: "MsgBeat", from: 2, to: 2 }));
  assert.equal(old.state, "Follower");
  assert.equal(old.readStates.length, 0);
  assert.equal(old.readOnly.pending.size, 0);
});

Deno.test("a new leader defers reads until it has committed an entry of its term", () => {
  const nt = new Network([undefined, undefined, undefined]);
  nt.ignore("MsgAppResp"); // the no-op cannot commit yet
  nt.send(hup(1));
  const lead = nt.peer(1);
  assert.equal(lead.state, "Leader");
  assert.equal(lead.raftLog.committed, 0);
  nt.delivered = [];
  nt.send(readReq(1, "early"));
  assert.equal(nt.delivered.filter((m) => m.type === "MsgHeartbeat").length, 0, "deferred");
  assert.equal(lead.pendingReadIndexMessages.length, 1);
  nt.recover();
  nt.send(msg({ type: "MsgBeat", from: 1, to: 1 }));
  assert.equal(lead.raftLog.committed, 1);
  assert.equal(lead.readStates.length, 1);
  assert.equal(lead.readStates[0]!.index, 1);
  assert.equal(ctxOf(lead.readStates[0]!), "early");
});

Deno.test("several reads in one round are all answered, in order", () => {
  const nt = electedNetwork(3);
  nt.ignore("MsgHeartbeatResp");
  nt.send(readReq(1, "a"));
  nt.send(prop(1, "x"));
  nt.send(readReq(1, "b"));
  const lead = nt.peer(1);
  assert.equal(lead.readStates.length, 0);
  nt.recover();
  nt.send(msg({ type: "MsgBeat", from: 1, to: 1 }));
  assert.deepEqual(lead.readStates.map((r) => [ctxOf(r), r.index]), [["a", 1], ["b", 2]]);
});

Deno.test("a read at a follower with no leader is dropped", () => {
  const nt = new Network([undefined, undefined, undefined]);
  nt.send(readReq(2, "nobody"));
  assert.equal(nt.peer(2).readStates.length, 0);
  assert.equal(nt.delivered.length, 1);
});

Deno.test("with a lease, a follower's read is answered at once, without a heartbeat round", () => {
  let lease = true;
  const nt = electedNetwork(3, {
    checkQuorum: true,
    configure: (c) => c.leaseRead = () => lease,
  });
  nt.send(prop(1, "a"));
  nt.delivered = [];
  nt.send(readReq(2, "fast"));
  assert.equal(nt.delivered.filter((m) => m.type === "MsgHeartbeat").length, 0);
  assert.deepEqual(nt.peer(2).readStates.map((r) => [ctxOf(r), r.index]), [["fast", 2]]);
  // Without the lease the round comes back.
  lease = false;
  nt.delivered = [];
  nt.send(readReq(2, "slow"));
  assert.equal(nt.delivered.filter((m) => m.type === "MsgHeartbeat").length, 2);
  assert.equal(nt.peer(2).readStates.at(-1)!.index, 2);
});

Deno.test("the leader's own reads take a heartbeat round even with a lease", () => {
  // The application renews its lease with these: answering them from the lease would let a
  // lease extend itself without any quorum.
  const nt = electedNetwork(3, { checkQuorum: true, configure: (c) => c.leaseRead = () => true });
  nt.send(prop(1, "a"));
  nt.delivered = [];
  nt.peer(1).step(msg({
    type: "MsgReadIndex",
    from: 0,
    to: 1,
    entries: [{ term: 0, index: 0, type: "Normal", data: new TextEncoder().encode("own") }],
  }));
  assert.equal(nt.peer(1).readStates.length, 0, "not answered before the round");
  assert.equal(nt.peer(1).msgs.filter((m) => m.type === "MsgHeartbeat").length, 2);
});

Deno.test("a lease is not consulted without CheckQuorum", () => {
  let asked = 0;
  const nt = electedNetwork(3, { configure: (c) => c.leaseRead = () => (asked++, true) });
  nt.send(prop(1, "a"));
  nt.delivered = [];
  nt.send(readReq(2, "x"));
  assert.equal(asked, 0);
  assert.equal(nt.delivered.filter((m) => m.type === "MsgHeartbeat").length, 2);
});
