/**
 * The hibernation's bookkeeping on a store of its own (hibernate.ts): quiesced followers sleep,
 * a store going down wakes the followers of its leaders a bounded number per tick, and stops
 * when the store speaks again.
 */
import assert from "node:assert/strict";
import { newMessage, QUIESCE } from "../raft/mod.ts";
import type { Region } from "../proto/metapb.ts";
import { type HibernatingStore, Hibernation, LIVENESS_WAKES_PER_TICK } from "./hibernate.ts";
import { Peer } from "./peer.ts";
import { PeerStorage, RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM } from "./peer_storage.ts";
import type { RaftEnvelope } from "./transport.ts";

const SELF = 1;
const LEADER_STORE = 2;

/** A store with `n` regions whose peers here follow a leader on store 2. */
function store(n: number) {
  const peers = new Map<number, Peer>();
  const sent: [number, RaftEnvelope[]][] = [];
  const s: HibernatingStore = {
    storeId: SELF,
    peers,
    config: { raftTickMs: 100, electionTicks: 10 },
    markDirty: () => {},
    send: (id, envs) => sent.push([id, envs]),
  };
  let now = 1_000_000;
  const h = new Hibernation(s, true, 77, () => now);
  for (let i = 0; i < n; i++) {
    const id = 100 + i;
    const region: Region = {
      id,
      startKey: new Uint8Array([i]),
      endKey: new Uint8Array([i + 1]),
      epoch: { confVer: 1, version: 1 },
      peers: [
        { id: 3 * id, storeId: SELF, role: "Voter" },
        { id: 3 * id + 1, storeId: LEADER_STORE, role: "Voter" },
        { id: 3 * id + 2, storeId: 3, role: "Voter" },
      ],
    };
    const storage = new PeerStorage(
      region,
      { term: RAFT_INIT_LOG_TERM, vote: 0, commit: RAFT_INIT_LOG_INDEX },
      {
        appliedIndex: RAFT_INIT_LOG_INDEX,
        truncatedIndex: RAFT_INIT_LOG_INDEX,
        truncatedTerm: RAFT_INIT_LOG_TERM,
      },
      [],
    );
    const peer = new Peer(SELF, region.peers[0]!, storage, {
      electionTicks: 10,
      heartbeatTicks: 2,
      maxSizePerMsg: 1 << 20,
      maxInflightMsgs: 16,
      preVote: true,
      checkQuorum: true,
    });
    peers.set(id, peer);
    h.added(peer);
    h.regionChanged(region);
  }
  return { h, peers, sent, advance: (ms: number) => (now += ms) };
}

/** The leader's quiesce heartbeat for `peer` (its log is the leader's: both at the initial index). */
function quiesceFor(peer: Peer): RaftEnvelope {
  const leader = peer.region.peers[1]!;
  return {
    regionId: peer.regionId,
    fromPeer: leader,
    toPeer: peer.region.peers[0]!,
    epoch: peer.region.epoch,
    startKey: peer.region.startKey,
    endKey: peer.region.endKey,
    message: {
      ...newMessage({
        type: "MsgHeartbeat",
        to: peer.meta.id,
        index: RAFT_INIT_LOG_INDEX,
        logTerm: RAFT_INIT_LOG_TERM,
        commit: RAFT_INIT_LOG_INDEX,
        context: QUIESCE,
      }),
      from: leader.id,
      term: RAFT_INIT_LOG_TERM,
    },
  };
}

Deno.test("a store going down wakes the followers of its leaders a bounded number per tick, until it speaks again", () => {
  const n = 2 * LIVENESS_WAKES_PER_TICK + 50;
  const { h, peers, advance } = store(n);
  h.heard(LEADER_STORE, 5);
  for (const p of peers.values()) assert.ok(h.onMessage(p, quiesceFor(p), true));
  assert.equal(h.asleep, n, "every follower took its leader's quiesce");
  assert.equal(peers.get(100)!.leaderId(), peers.get(100)!.region.peers[1]!.id);

  h.liveness.unreachable(LEADER_STORE);
  const woken = () => h.stats.wokenBy["liveness:down"] ?? 0;
  h.tick();
  assert.equal(woken(), 0, "a store just called down is given time to speak again");
  advance(h.failoverMs - 1);
  h.tick();
  assert.equal(woken(), 0);
  advance(1);
  h.tick();
  assert.equal(woken(), LIVENESS_WAKES_PER_TICK, "silent long enough: the first batch");
  h.tick();
  assert.equal(woken(), 2 * LIVENESS_WAKES_PER_TICK, "the next one a tick later");
  // The store speaks again: the followers not woken yet stay asleep.
  h.heard(LEADER_STORE, 5);
  h.tick();
  h.tick();
  assert.equal(woken(), 2 * LIVENESS_WAKES_PER_TICK);
  assert.equal(h.asleep, 50);
  // A store that spoke again within the time given wakes nobody.
  h.liveness.unreachable(LEADER_STORE);
  for (let t = 0; t < 10; t++) {
    advance(h.failoverMs / 5);
    h.tick();
    if (t % 2 === 1) h.heard(LEADER_STORE, 5); // a ping every other tick: down now and then
  }
  assert.equal(woken(), 2 * LIVENESS_WAKES_PER_TICK);
  assert.ok(h.liveness.changes > 4, "it was called down and up again several times");
});

Deno.test("a restart of the leader's store wakes its followers with the leader counted as gone", () => {
  const { h, peers } = store(3);
  h.heard(LEADER_STORE, 5);
  for (const p of peers.values()) h.onMessage(p, quiesceFor(p), true);
  assert.equal(h.asleep, 3);
  h.heard(LEADER_STORE, 6); // a new incarnation
  assert.equal(h.asleep, 0);
  assert.equal(h.stats.wokenBy["liveness:restarted"], 3);
  for (const p of peers.values()) {
    assert.equal(p.raw.raft.electionElapsed, p.raw.raft.electionTimeout, "out of lease at once");
  }
});
