import assert from "node:assert/strict";
import { ChaosArgError, chaosUsage, parseChaosArgs } from "./args.ts";
import { FAULT_KINDS } from "./faults.ts";

const noEnv = () => undefined;

function parse(args: string[], env: (n: string) => string | undefined = noEnv) {
  const o = parseChaosArgs(args, env);
  if ("help" in o) throw new Error("unexpected --help");
  return o;
}

Deno.test("defaults: 60 s, 3 stores, 16 clients, 20 keys, half reads, every fault", () => {
  const o = parse(["--seed", "7"]);
  assert.equal(o.seed, 7);
  assert.equal(o.durationMs, 60_000);
  assert.equal(o.stores, 3);
  assert.equal(o.clients, 16);
  assert.equal(o.keys, 20);
  assert.equal(o.readFraction, 0.5);
  assert.deepEqual(o.faults, [...FAULT_KINDS]);
  assert.equal(o.requireNetns, false);
  assert.equal(o.target, "mrkv");
  assert.ok(o.storeFlags.includes("--raft-log-gc-count-limit"));
});

Deno.test("flags are read as documented", () => {
  const o = parse([
    "--seed=3",
    "--duration",
    "90",
    "--stores",
    "5",
    "--faults",
    "partition,kill",
    "--hold",
    "1s..3s",
    "--quiet",
    "500ms",
    "--read-pct",
    "20",
    "--store-flag",
    "raft-tick-ms=100ms",
    "--keep",
    "--json",
    "--no-netns",
  ]);
  assert.equal(o.durationMs, 90_000, "a bare number is seconds");
  assert.equal(o.stores, 5);
  assert.deepEqual(o.faults.slice(-1), ["kill"]);
  assert.equal(o.faults.length, 6);
  assert.deepEqual(o.holdMs, [1_000, 3_000]);
  assert.equal(o.quietMs, 500);
  assert.equal(o.readFraction, 0.2);
  assert.deepEqual(o.storeFlags, ["--raft-tick-ms", "100ms"]);
  assert.ok(o.keep && o.json && o.noNetns);
  assert.equal(
    parse([], (n) => n === "MRKV_CHAOS_REQUIRE_NETNS" ? "1" : undefined).requireNetns,
    true,
  );
});

Deno.test("bad flags name themselves", () => {
  const bad: [string[], string][] = [
    [["--stores", "4"], "stores"],
    [["--duration", "soon"], "duration"],
    [["--clients", "0"], "clients"],
    [["--faults", "meteor"], "faults"],
    [["--hold", "5s..1s"], "hold"],
    [["--read-pct", "101"], "read-pct"],
    [["--target", "redis"], "target"],
    [["--seed", "abc"], "seed"],
    [["--store-flag", "oops"], "store-flag"],
  ];
  for (const [args, flag] of bad) {
    assert.throws(
      () => parseChaosArgs(args, noEnv),
      (e) => e instanceof ChaosArgError && e.flag === flag,
      args.join(" "),
    );
  }
  assert.throws(() => parseChaosArgs(["--nope"], noEnv), ChaosArgError);
});

Deno.test("--help works and lists every fault kind", () => {
  assert.deepEqual(parseChaosArgs(["--help"], noEnv), { help: true });
  const text = chaosUsage();
  for (const k of FAULT_KINDS) assert.match(text, new RegExp(`\\b${k}\\b`));
  assert.match(text, /--seed N/);
});
