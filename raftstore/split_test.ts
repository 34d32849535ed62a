/**
 * Batch split at apply: every key in one command, strict checks before anything changes, the
 * single-key command of older logs still decoded; and the vote requests a store holds for a
 * region its split will create.
 */
import assert from "node:assert/strict";
import { encodeCbor } from "../proto/codec.ts";
import { MrkvError } from "../proto/errors.ts";
import type { Region } from "../proto/metapb.ts";
import { newMessage } from "../raft/mod.ts";
import { KvEngine } from "../storage/mod.ts";
import { applyEntries } from "./apply.ts";
import { AppliedRequests } from "./applied_requests.ts";
import { decodeCmd, encodeCmd, type RaftCmd, type SplitTarget } from "./cmd.ts";
import { EarlyVotes } from "./split.ts";
import type { RaftEnvelope } from "./transport.ts";

const b = (s: string) => new TextEncoder().encode(s);
const str = (u: Uint8Array) => new TextDecoder().decode(u);

const REGION: Region = {
  id: 1,
  startKey: b("b"),
  endKey: b("y"),
  epoch: { confVer: 3, version: 4 },
  peers: [
    { id: 11, storeId: 1, role: "Voter" },
    { id: 12, storeId: 2, role: "Voter" },
    { id: 13, storeId: 3, role: "Voter" },
  ],
};

const target = (key: string, id: number): SplitTarget => ({
  splitKey: b(key),
  newRegionId: id,
  newPeerIds: [id + 1, id + 2, id + 3],
});

function splitCmd(splits: SplitTarget[], epoch = REGION.epoch): RaftCmd {
  return { header: { regionId: 1, peerId: 11, epoch }, admin: { type: "Split", splits } };
}

async function apply(cmd: RaftCmd | Uint8Array) {
  const engine = await KvEngine.openInMemory();
  try {
    const data = cmd instanceof Uint8Array ? cmd : encodeCmd(cmd);
    const wb = engine.batch();
    return applyEntries(
      REGION,
      5,
      [{ term: 6, index: 6, type: "Normal", data }],
      wb,
      { data: 2, state: 3 },
      new AppliedRequests(),
    );
  } finally {
    engine.close();
  }
}

Deno.test("a 3-key split creates 3 regions in key order; the old one keeps the first range", async () => {
  const out = await apply(splitCmd([target("f", 100), target("m", 200), target("t", 300)]));
  assert.equal(out.results[0]!.error, undefined);
  assert.deepEqual([str(out.region.startKey), str(out.region.endKey)], ["b", "f"]);
  assert.equal(out.region.epoch.version, 5);
  const effect = out.effects[0]!;
  assert.ok(effect.type === "Split");
  assert.deepEqual(
    effect.regions.map((r) => [r.id, str(r.startKey), str(r.endKey), r.epoch.version]),
    [[100, "f", "m", 5], [200, "m", "t", 5], [300, "t", "y", 5]],
  );
  assert.deepEqual(effect.regions[1]!.peers.map((p) => [p.id, p.storeId]), [
    [201, 1],
    [202, 2],
    [203, 3],
  ]);
});

Deno.test("a split that fails a check changes nothing and answers why", async () => {
  const cases: [string, RaftCmd, RegExp][] = [
    ["keys out of order", splitCmd([target("m", 100), target("f", 200)]), /increasing/],
    ["a key at the start", splitCmd([target("b", 100)]), /strictly inside/],
    ["a key past the end", splitCmd([target("f", 100), target("z", 200)]), /strictly inside/],
    ["a repeated key", splitCmd([target("f", 100), target("f", 200)]), /increasing/],
    ["a reused ID", splitCmd([target("f", 100), target("m", 102)]), /reuses ID 102/],
    ["an existing peer ID", splitCmd([{ ...target("f", 100), newRegionId: 12 }]), /reuses/],
    [
      "too few peer IDs",
      splitCmd([{ ...target("f", 100), newPeerIds: [101, 102] }]),
      /2 peer IDs for 3 peers/,
    ],
    ["no keys", splitCmd([]), /names no split key/],
    [
      "a stale epoch",
      splitCmd([target("f", 100)], { confVer: 3, version: 3 }),
      /epoch changed/,
    ],
  ];
  for (const [what, cmd, why] of cases) {
    const out = await apply(cmd);
    const err = out.results[0]!.error;
    assert.ok(err instanceof MrkvError, what);
    assert.match(err.message, why, what);
    assert.deepEqual(out.region, REGION, `${what}: the region is unchanged`);
    assert.deepEqual(out.effects, [], what);
  }
});

Deno.test("malformed split commands are refused by the decoder; the single-key shape of older logs is read as one split", async () => {
  const header = { regionId: 1, peerId: 11, epoch: REGION.epoch };
  const bad = [
    { header, admin: { type: "Split", splits: "f" } },
    { header, admin: { type: "Split", splits: [{ splitKey: b("f"), newRegionId: 0 }] } },
    { header, admin: { type: "Split", splits: [target("f", 100)], splitKey: b("f") } },
    { header, admin: { type: "Split" } },
    { header, admin: { type: "Split", splits: Array(1001).fill(target("f", 100)) } },
  ];
  for (const cmd of bad) {
    assert.throws(() => decodeCmd(encodeCbor(cmd)), MrkvError, JSON.stringify(cmd).slice(0, 80));
    const out = await apply(encodeCbor(cmd));
    assert.ok(out.results[0]!.error, "refused at apply too, without throwing");
  }
  const legacy = encodeCbor({
    header,
    admin: { type: "Split", splitKey: b("m"), newRegionId: 100, newPeerIds: [101, 102, 103] },
  });
  assert.deepEqual(decodeCmd(legacy).admin, { type: "Split", splits: [target("m", 100)] });
  const out = await apply(legacy);
  assert.equal(str(out.region.endKey), "m");
});

function vote(regionId: number, from: number, to: number, type: "MsgVote" | "MsgPreVote") {
  const env: RaftEnvelope = {
    regionId,
    fromPeer: { id: from, storeId: 1, role: "Voter" },
    toPeer: { id: to, storeId: 2, role: "Voter" },
    epoch: { confVer: 1, version: 2 },
    startKey: b("m"),
    endKey: b(""),
    message: newMessage({ type, from, to, term: 6 }),
  };
  return env;
}

Deno.test("held vote requests are handed to the peer the split creates, newest per sender, bounded", () => {
  const held = new EarlyVotes();
  held.hold(vote(8, 101, 102, "MsgPreVote"));
  held.hold(vote(8, 101, 102, "MsgVote"));
  held.hold(vote(9, 201, 202, "MsgPreVote"));
  assert.equal(held.size, 2, "the newer request from peer 101 replaced the older");
  assert.deepEqual(held.take(8, 999), [], "for another peer of the region");
  const got = held.take(8, 102);
  assert.deepEqual(got.map((e) => e.message.type), ["MsgVote"]);
  assert.equal(held.size, 1);
  for (let i = 0; i < 1000; i++) held.hold(vote(1000 + i, 5000 + i, 6000 + i, "MsgPreVote"));
  assert.ok(held.size <= 256, `bounded: ${held.size}`);
  assert.deepEqual(held.take(9, 202), [], "the oldest went first");
});
