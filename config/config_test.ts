import assert from "node:assert/strict";
import {
  ConfigError,
  formatDuration,
  formatSize,
  isLoopbackAddr,
  parseCommandLine,
  parseDuration,
  parseSize,
  usage,
} from "./config.ts";

function parse(args: string[], file?: string) {
  const r = parseCommandLine(args, () => {
    if (file === undefined) throw new Error("no such file");
    return file;
  });
  assert.equal(r.help, false);
  return (r as Extract<typeof r, { help: false }>).config;
}

function flagError(args: string[], file?: string): ConfigError {
  try {
    parse(args, file);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
    return e;
  }
  assert.fail(`expected ${args.join(" ")} to be refused`);
}

Deno.test("sizes and durations accept the documented units", () => {
  assert.equal(parseSize("96MiB"), 96 * 1024 * 1024);
  assert.equal(parseSize("512KiB"), 512 * 1024);
  assert.equal(parseSize("1GiB"), 1024 ** 3);
  assert.equal(parseSize("4096"), 4096);
  assert.equal(parseDuration("100ms"), 100);
  assert.equal(parseDuration("10s"), 10_000);
  assert.equal(parseDuration("30m"), 1_800_000);
  assert.equal(parseDuration("250"), 250);
  assert.throws(() => parseSize("12 parsecs"), RangeError);
  assert.throws(() => parseDuration("-5s"), RangeError);
});

Deno.test("a scheduler gets the documented defaults", () => {
  const c = parse(["--role", "scheduler"]);
  assert.equal(c.role, "scheduler");
  assert.equal(c.addr, "127.0.0.1:2379");
  assert.equal(c.advertiseAddr, "127.0.0.1:2379");
  assert.equal(c.maxReplicas, 3);
  assert.equal(c.maxStoreDownTime, 30 * 60_000);
  assert.equal(c.storeDisconnectTime, 3_000);
  assert.equal(c.scheduleIntervalMs, 100);
  assert.equal(
    parse(["--role", "scheduler", "--store-disconnect-time", "1s"]).storeDisconnectTime,
    1000,
  );
});

Deno.test("a store gets the documented defaults and flags override them", () => {
  const c = parse([
    "--role=store",
    "--addr",
    "127.0.0.1:20161",
    "--scheduler",
    "http://127.0.0.1:2379/",
    "--region-max-size",
    "1MiB",
    "--region-split-size=512KiB",
    "--raft-tick-ms",
    "50ms",
  ]);
  assert.equal(c.scheduler, "http://127.0.0.1:2379");
  assert.equal(c.advertiseAddr, "127.0.0.1:20161");
  assert.equal(c.regionMaxSize, 1024 * 1024);
  assert.equal(c.regionSplitSize, 512 * 1024);
  assert.equal(c.raftTickMs, 50);
  assert.equal(c.heartbeatTicks, 2);
  assert.equal(c.electionTicks, 10);
  assert.equal(c.raftLogGcCountLimit, 10_000);
  assert.equal(c.schedulerHeartbeatMs, 1000);
  assert.equal(c.splitCheckMs, 10_000);
  assert.equal(c.maxPeerDownDuration, 10_000);
});

Deno.test("flags win over the config file, the file over defaults", () => {
  const file = JSON.stringify({ "max-replicas": 5, "schedule-interval-ms": "1s" });
  const c = parse(["--role", "scheduler", "--config", "c.json", "--max-replicas", "1"], file);
  assert.equal(c.maxReplicas, 1);
  assert.equal(c.scheduleIntervalMs, 1000);
});

Deno.test("bad flags are refused with a message naming the flag", () => {
  assert.equal(flagError(["--role", "scheduler", "--bogus", "1"]).flag, "--bogus");
  assert.equal(flagError(["--role", "gardener"]).flag, "--role");
  assert.equal(flagError([]).flag, "--role");
  assert.equal(flagError(["--role", "scheduler", "--addr", "nohost"]).flag, "--addr");
  assert.equal(flagError(["--role", "scheduler", "--addr"]).flag, "--addr");
  assert.equal(
    flagError(["--role", "scheduler", "--max-replicas", "three"]).flag,
    "--max-replicas",
  );
  assert.equal(flagError(["--role", "scheduler", "--max-replicas", "0"]).flag, "--max-replicas");
  assert.equal(flagError(["--role", "store"]).flag, "--scheduler");
  assert.equal(flagError(["--role", "scheduler", "--raft-tick-ms", "5"]).flag, "--raft-tick-ms");
  assert.equal(flagError(["--role", "scheduler", "stray"]).flag, "stray");
  const e = flagError(["--role", "scheduler", "--bogus", "1"]);
  assert.match(e.message, /--bogus/);
  assert.ok(!e.message.includes("\n"), "the message is one line");
});

Deno.test("config-file problems name the file and key", () => {
  const e1 = flagError(["--role", "scheduler", "--config", "c.json"], '{"nope": 1}');
  assert.match(e1.message, /"nope"/);
  const e2 = flagError(["--role", "scheduler", "--config", "c.json"], "[1, 2");
  assert.equal(e2.flag, "--config");
  const e3 = flagError(["--role", "scheduler", "--config", "c.json"], '{"max-replicas": true}');
  assert.match(e3.message, /max-replicas/);
  const e4 = flagError(["--role", "scheduler", "--config", "missing.json"]);
  assert.equal(e4.flag, "--config");
});

Deno.test("inconsistent Raft timing and split sizes are refused", () => {
  const base = ["--role", "store", "--scheduler", "http://127.0.0.1:2379"];
  assert.equal(
    flagError([...base, "--heartbeat-ticks", "10", "--election-ticks", "10"]).flag,
    "--heartbeat-ticks",
  );
  assert.equal(
    flagError([...base, "--region-max-size", "1MiB", "--region-split-size", "2MiB"]).flag,
    "--region-split-size",
  );
});

Deno.test("--help is answered without needing --role", () => {
  assert.deepEqual(parseCommandLine(["--help"]), { help: true });
});

Deno.test("role may come from the --config file; the flag wins over it", () => {
  const file = JSON.stringify({ role: "scheduler", "max-replicas": 5 });
  assert.equal(parse(["--config", "c.json"], file).role, "scheduler");
  assert.equal(parse(["--config", "c.json"], file).maxReplicas, 5);
  const store = JSON.stringify({ role: "store", scheduler: "http://127.0.0.1:2379" });
  assert.equal(parse(["--config", "c.json"], store).role, "store");
  assert.equal(
    parse(["--config", "c.json", "--role", "scheduler"], JSON.stringify({ role: "store" })).role,
    "scheduler",
  );
  const bad = flagError(["--config", "c.json"], JSON.stringify({ role: "dancer" }));
  assert.match(bad.message, /"role" in c.json: "dancer" is not scheduler or store/);
});

Deno.test("--version and -V ask for the version; --help shows sizes and durations with units", () => {
  assert.deepEqual(parseCommandLine(["--version"]), { help: true, version: true });
  assert.deepEqual(parseCommandLine(["--role", "store", "-V"]), { help: true, version: true });
  const text = usage();
  assert.match(
    text,
    /--region-max-size SIZE\s+split a region once it is larger than this \(store\) \[96MiB\]/,
  );
  assert.match(text, /--max-store-down-time DURATION .*\[30m\]/);
  assert.match(text, /--raft-tick-ms DURATION .*\[100ms\]/);
  assert.match(text, /--split-check-ms DURATION .*\[10s\]/);
  assert.match(text, /-V, --version/);
  assert.equal(formatSize(64 * 1024 * 1024), "64MiB");
  assert.equal(formatSize(1000), "1000");
  assert.equal(formatDuration(1_000), "1s");
  assert.equal(formatDuration(1_500), "1500ms");
});

Deno.test("a non-loopback address needs a secret, TLS or --insecure; TLS needs all three files", () => {
  const store = ["--role", "store", "--scheduler", "http://10.0.0.1:2379"];
  assert.throws(
    () => parseCommandLine([...store, "--addr", "10.0.0.2:20160"]),
    (e: unknown) => e instanceof ConfigError && e.flag === "--insecure",
  );
  for (
    const extra of [["--insecure"], ["--cluster-secret-file", "s"], [
      "--cacert",
      "a",
      "--cert",
      "b",
      "--key",
      "c",
    ]]
  ) {
    const parsed = parseCommandLine([...store, "--addr", "10.0.0.2:20160", ...extra]);
    assert.equal(parsed.help, false);
  }
  const open = parseCommandLine([...store, "--addr", "0.0.0.0:1", "--insecure"]);
  assert.ok(!open.help && open.config.insecure === true && open.config.kvAuth === "auto");
  assert.throws(
    () => parseCommandLine([...store, "--cacert", "a", "--cert", "b"]),
    (e: unknown) => e instanceof ConfigError && e.flag === "--cacert",
  );
  assert.throws(
    () => parseCommandLine([...store, "--kv-auth", "maybe"]),
    (e: unknown) => e instanceof ConfigError && e.flag === "--kv-auth",
  );
  assert.throws(
    () => parseCommandLine([...store, "--accept-cluster-secret-file", "new"]),
    (e: unknown) => e instanceof ConfigError && e.flag === "--accept-cluster-secret-file",
  );
  const rotating = parseCommandLine([
    ...store,
    "--cluster-secret-file",
    "old",
    "--accept-cluster-secret-file",
    "new",
  ]);
  assert.ok(!rotating.help && rotating.config.acceptClusterSecretFile === "new");
  assert.ok(isLoopbackAddr("127.0.0.1:1") && isLoopbackAddr("[::1]:1"));
  assert.ok(!isLoopbackAddr("0.0.0.0:1") && !isLoopbackAddr("10.0.0.1:1"));
});

Deno.test("load-split keys: defaults, overrides, both thresholds 0 refused unless it is off", () => {
  const base = ["--role", "store", "--scheduler", "http://127.0.0.1:2379"];
  const d = parse(base);
  assert.equal(d.loadSplit, true);
  assert.equal(d.splitQpsThreshold, 1000);
  assert.equal(d.splitByteThreshold, 8 * 1024 * 1024);
  assert.equal(d.splitDetectWindow, 10_000);
  const c = parse([...base, "--split-qps-threshold", "50", "--split-detect-window", "2s"]);
  assert.equal(c.splitQpsThreshold, 50);
  assert.equal(c.splitDetectWindow, 2_000);
  const zero = ["--split-qps-threshold", "0", "--split-byte-threshold", "0"];
  assert.equal(flagError([...base, ...zero]).flag, "--split-qps-threshold");
  assert.equal(parse([...base, ...zero, "--load-split=false"]).loadSplit, false);
  assert.equal(flagError([...base, "--split-detect-window", "50ms"]).flag, "--split-detect-window");
  assert.equal(flagError([...base, "--split-qps-threshold", "-1"]).flag, "--split-qps-threshold");
  assert.equal(
    flagError(["--role", "scheduler", "--split-qps-threshold", "5"]).flag,
    "--split-qps-threshold",
  );
});

Deno.test("a boolean flag takes --flag, --flag=false or --flag false; any other bare word is refused", () => {
  const base = ["--role", "store", "--scheduler", "http://127.0.0.1:2379"];
  assert.equal(parse([...base, "--load-split"]).loadSplit, true);
  assert.equal(parse([...base, "--load-split=false"]).loadSplit, false);
  assert.equal(parse([...base, "--load-split", "false"]).loadSplit, false);
  assert.equal(parse([...base, "--load-split", "true"]).loadSplit, true);
  const afterBool = parse([...base, "--load-split", "--split-qps-threshold", "50"]);
  assert.equal(afterBool.loadSplit, true);
  assert.equal(afterBool.splitQpsThreshold, 50);
  assert.throws(() => parse([...base, "--load-split", "no"]), /unexpected argument "no"/);
});
