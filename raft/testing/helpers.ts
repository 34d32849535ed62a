/**
 * Small builders and assertions shared by the raft tests: messages, entries, peers with a
 * preset log, and state checks.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Raft } from "../raft.ts";
import { MemoryStorage } from "../storage.ts";
import { type Entry, type Message, newMessage, type StateType } from "../types.ts";
import { Network, type NetworkOptions, newTestRaft } from "./network.ts";

/** A message with zero values for every field not given. */
export function msg(m: Partial<Message> & Pick<Message, "type" | "from" | "to">): Message {
  return newMessage(m);
}

/** The local "start an election" message for `id`. */
export function hup(id: number): Message {
  return msg({ type: "MsgHup", from: id, to: id });
}

/** A local proposal of `data` (or of an empty entry) to `to`. */
export function prop(to: number, data: Uint8Array | string = new Uint8Array(0)): Message {
  const d = typeof data === "string" ? new TextEncoder().encode(data) : data;
  return msg({
    type: "MsgProp",
    from: to,
    to,
    entries: [{ term: 0, index: 0, type: "Normal", data: d }],
  });
}

/** A request, sent to `to`, to transfer leadership to `transferee`. */
export function transferMsg(to: number, transferee: number): Message {
  return msg({ type: "MsgTransferLeader", from: transferee, to });
}

/** An entry with the given index and term (and optional string data). */
export function ent(index: number, term: number, data = ""): Entry {
  return { index, term, type: "Normal", data: new TextEncoder().encode(data) };
}

/** Entries at indexes 1.. with the given terms. */
export function entsWithTerms(...terms: number[]): Entry[] {
  return terms.map((t, i) => ent(i + 1, t));
}

/**
 * A peer whose storage already holds entries with `terms` (indexes 1..) and whose hard state
 * has the last term, so it can be dropped into a `Network`.
 */
export function peerWithLog(
  id: number,
  peers: number[],
  terms: number[],
  extra: Parameters<typeof newTestRaft>[5] = {},
): Raft {
  const s = new MemoryStorage(peers);
  s.append(entsWithTerms(...terms));
  s.setHardState({ term: terms.at(-1) ?? 0, vote: 0, commit: 0 });
  return newTestRaft(id, peers, 10, 1, s, extra);
}

/** Asserts a peer's role and known leader. */
export function checkState(r: Raft, state: StateType, lead: number): void {
  assert.equal(r.state, state, `peer ${r.id} state`);
  assert.equal(r.lead, lead, `peer ${r.id} lead`);
}

/** A network of `n` fresh peers (ids 1..n) where 1 was elected leader. */
export function electedNetwork(n = 3, opts: NetworkOptions = {}): Network {
  const nt = new Network(Array.from({ length: n }, () => undefined), opts);
  nt.send(hup(1));
  checkState(nt.peer(1), "Leader", 1);
  return nt;
}

/** The whole log (all terms) of a peer, as [index, term] pairs. */
export function logTerms(r: Raft): number[] {
  return r.raftLog.allEntries().map((e) => e.term);
}

/** Ticks `r` `n` times. */
export function tickN(r: Raft, n: number): void {
  for (let i = 0; i < n; i++) r.tick();
}
