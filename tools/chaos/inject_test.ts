import assert from "node:assert/strict";
import { seededRandom } from "../../raft/mod.ts";
import { Admin, type RegionView } from "./admin.ts";
import { FAULT_KINDS } from "./faults.ts";
import { Http } from "./http.ts";
import { FaultInjector, mergeablePair } from "./inject.ts";
import type { Cut, Net } from "./netns.ts";
import type { Servers, UnexpectedExit } from "./procs.ts";

/** A scheduler and stores faked by one HTTP server: regions, operators, `/debug/regions`. */
function fakeCluster(stores: number, regions: RegionView[]) {
  const operators: Record<string, unknown>[] = [];
  const leaders = new Map<string, boolean>(); // store name -> reports Leader for region 1
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/pd/api/v1/regions") return Response.json({ regions });
    if (path.startsWith("/pd/api/v1/region/key/")) return Response.json(regions[0]);
    if (path === "/pd/api/v1/operators" && req.method === "POST") {
      const op = await req.json();
      operators.push(op);
      // Removing a peer shows in the next region listing, as it would once done.
      const r = regions.find((x) => x.id === op.region_id);
      if (r && op.name === "remove-peer") {
        const i = regions.indexOf(r);
        regions[i] = { ...r, peers: r.peers.filter((p) => p.store_id !== op.store_id) };
      }
      return Response.json({}, { status: 201 });
    }
    if (path.startsWith("/pd/api/v1/operators/")) return Response.json({ status: "Finished" });
    const m = /^\/(s\d)\/debug\/regions$/.exec(path);
    if (m) {
      return Response.json({
        regions: regions.map((r) => ({
          region: { id: r.id, peers: r.peers },
          role: leaders.get(m[1]!) ? "Leader" : "Follower",
          term: 2,
        })),
      });
    }
    return new Response("no", { status: 404 });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  const calls: string[] = [];
  const names = Array.from({ length: stores }, (_, i) => `s${i + 1}`);
  const cluster: Servers = {
    names: ["sched", ...names],
    stores: names,
    unexpected: [] as UnexpectedExit[],
    url: (n) => `${base}/${n}`,
    storeId: (n) => Number(n.slice(1)),
    nameOf: (id) => `s${id}`,
    isServing: () => true,
    pause: (n) => void calls.push(`pause ${n}`),
    resume: (n) => void calls.push(`resume ${n}`),
    kill: (n) => Promise.resolve(void calls.push(`kill ${n}`)),
    restart: (n) => Promise.resolve(void calls.push(`restart ${n}`)),
    close: () => Promise.resolve(),
  };
  const cuts: Cut[][] = [];
  const net: Net = {
    kind: "netns",
    summary: "fake",
    addr: (n) => n,
    wrap: (_n, argv) => [...argv],
    cut: (pairs) => Promise.resolve(void cuts.push([...pairs])),
    heal: () => Promise.resolve(void cuts.push([])),
    close: () => Promise.resolve(),
  };
  return { server, base, operators, leaders, calls, cuts, cluster, net };
}

function region(id: number, voters: number[], leader: number): RegionView {
  const peers = voters.map((s) => ({ id: id * 10 + s, store_id: s, role: "Voter" }));
  return { id, peers, leader: peers.find((p) => p.store_id === leader)! };
}

function injector(f: ReturnType<typeof fakeCluster>, seed = 1) {
  const t0 = performance.now();
  return new FaultInjector({
    cluster: f.cluster,
    net: f.net,
    admin: new Admin(new Http(), f.base),
    http: new Http(),
    rand: seededRandom(seed),
    now: () => performance.now() - t0,
    log: () => {},
    keys: ["k00", "k01", "k02"],
    watchLeaders: true,
  });
}

const never = new AbortController().signal;

Deno.test("scheduler-minority split: the leader goes with the scheduler; leaders are watched", async () => {
  const f = fakeCluster(3, [region(1, [1, 2, 3], 2)]);
  try {
    f.leaders.set("s3", true); // the majority side already reports a leader
    const ev = await injector(f).inject("split-sched-minority", 400, never);
    assert.equal(ev.error, undefined);
    assert.match(ev.description, /^\{sched,s2\} \| \{s1,s3\} \(s2 \(leader of region 1\)\)$/);
    assert.deepEqual(ev.live, ["s1", "s3"]);
    assert.equal(f.cuts.length, 2, "one cut, then the heal");
    assert.equal(f.cuts[0]!.length, 4);
    assert.deepEqual(f.cuts[1], []);
    assert.equal(ev.quorumRegions, 1);
    assert.ok(ev.leaderReadyMs !== null && ev.leaderReadyMs! < 400, `${ev.leaderReadyMs}`);
    assert.equal(ev.regions, "r1[s1,s2*,s3]");
    assert.ok(ev.heal! >= ev.start + 400);
  } finally {
    await f.server.shutdown();
  }
});

Deno.test("a majority that never elects is reported as such", async () => {
  const f = fakeCluster(3, [region(1, [1, 2, 3], 1)]);
  try {
    const ev = await injector(f).inject("split-sched-minority", 300, never);
    assert.equal(ev.leaderReadyMs, null);
    assert.equal(ev.quorumRegions, 1);
  } finally {
    await f.server.shutdown();
  }
});

Deno.test("with 5 stores the minority avoids the leader's fellow voters", async () => {
  const f = fakeCluster(5, [region(1, [1, 2, 3], 1)]);
  try {
    const ev = await injector(f).inject("split-sched-minority", 200, never);
    const minority = /^\{sched,(s\d),(s\d)\}/.exec(ev.description)!;
    assert.equal(minority[1], "s1");
    assert.ok(["s4", "s5"].includes(minority[2]!), ev.description);
  } finally {
    await f.server.shutdown();
  }
});

Deno.test("pause and kill act on the process and heal it", async () => {
  const f = fakeCluster(3, [region(1, [1, 2, 3], 3)]);
  try {
    const inj = injector(f);
    const pause = await inj.inject("pause", 100, never);
    const kill = await inj.inject("kill", 100, never);
    const paused = /SIGSTOP (s\d)/.exec(pause.description)![1];
    const killed = /kill -9 (s\d)/.exec(kill.description)![1];
    assert.deepEqual(f.calls, [
      `pause ${paused}`,
      `resume ${paused}`,
      `kill ${killed}`,
      `restart ${killed}`,
    ]);
    assert.match(kill.description, /restarted in \d+ ms/);
  } finally {
    await f.server.shutdown();
  }
});

Deno.test("admin faults send the operators the admin API expects", async () => {
  const f = fakeCluster(3, [region(1, [1, 2, 3], 1)]);
  try {
    const inj = injector(f);
    await inj.inject("transfer-leader", 100, never);
    await inj.inject("membership", 100, never);
    assert.equal(f.operators[0]!.name, "transfer-leader");
    assert.ok([2, 3].includes(f.operators[0]!.to_store_id as number));
    const removed = f.operators[1]!.store_id;
    assert.deepEqual(f.operators.slice(1).map((o) => [o.name, o.store_id]), [
      ["remove-peer", removed],
      ["add-peer", removed],
    ]);
    assert.notEqual(removed, 1, "never the leader");
  } finally {
    await f.server.shutdown();
  }
  const five = fakeCluster(5, [region(1, [1, 2, 3], 1)]);
  try {
    const ev = await injector(five).inject("membership", 100, never);
    assert.equal(five.operators[0]!.name, "transfer-region");
    const target = five.operators[0]!.to_store_ids as number[];
    assert.equal(target.length, 3);
    assert.ok(target.includes(1) && (target.includes(4) || target.includes(5)), `${target}`);
    assert.match(ev.description, /transfer-region Finished/);
  } finally {
    await five.server.shutdown();
  }
});

Deno.test("a fault that fails is recorded and the network is healed", async () => {
  const f = fakeCluster(3, []);
  try {
    const ev = await injector(f).inject("transfer-leader", 100, never);
    assert.match(ev.error!, /no region has a leader/);
    assert.deepEqual(f.cuts, [[]]);
  } finally {
    await f.server.shutdown();
  }
});

Deno.test("a counted schedule runs every kind once", async () => {
  const f = fakeCluster(3, [region(1, [1, 2, 3], 1)]);
  try {
    f.leaders.set("s2", true);
    const events = await injector(f, 9).run({
      kinds: FAULT_KINDS,
      leadInMs: 0,
      holdMs: [100, 100],
      quietMs: 0,
      untilMs: 60_000,
      count: FAULT_KINDS.length,
    }, never);
    assert.deepEqual(events.map((e) => e.kind).sort(), [...FAULT_KINDS].sort());
    assert.ok(events.every((e) => e.end !== undefined && e.heal !== undefined));
  } finally {
    await f.server.shutdown();
  }
});

Deno.test("the merge fault merges adjacent regions on the same stores, else splits first", async () => {
  const left = { ...region(1, [1, 2, 3], 1), end_key: "k" };
  const right = { ...region(2, [1, 2, 3], 2), start_key: "k" };
  const elsewhere = { ...region(3, [1, 2, 4], 1), start_key: "k" };
  const rand = seededRandom(1);
  assert.deepEqual(mergeablePair([left, right], rand)?.map((r) => r.id), [2, 1]);
  assert.equal(mergeablePair([left, elsewhere], rand), undefined, "peers on other stores");
  assert.equal(
    mergeablePair([left, { ...right, leader: null }], rand),
    undefined,
    "no leader",
  );
  const hexLeft = { ...region(1, [1, 2, 3], 1), end_key_hex: "ff" };
  const hexRight = { ...region(2, [1, 2, 3], 2), start_key_hex: "ff" };
  assert.deepEqual(mergeablePair([hexLeft, hexRight], rand)?.map((r) => r.id), [2, 1]);
  const f = fakeCluster(3, [left, right]);
  try {
    const ev = await injector(f).inject("merge-region", 100, never);
    assert.deepEqual(f.operators, [{
      name: "merge-region",
      source_region_id: 2,
      target_region_id: 1,
      region_id: 2,
    }]);
    assert.match(ev.description, /merge region 2 into region 1; merge-region Finished/);
  } finally {
    await f.server.shutdown();
  }
  const one = fakeCluster(3, [region(1, [1, 2, 3], 1)]);
  try {
    const ev = await injector(one).inject("merge-region", 100, never);
    assert.equal(one.operators[0]!.name, "split-region", "a lone region is split first");
    assert.match(ev.error ?? "", /no two adjacent regions/, "the fake never shows the split");
  } finally {
    await one.server.shutdown();
  }
});
