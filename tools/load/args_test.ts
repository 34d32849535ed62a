import assert from "node:assert/strict";
import {
  DEFAULT_ENDPOINTS,
  LoadArgError,
  type LoadOptions,
  parseLoadArgs,
  REQUESTS_TIME_CAP_MS,
} from "./args.ts";

function parse(...args: string[]): LoadOptions {
  const options = parseLoadArgs(args);
  assert.ok(!("help" in options));
  return options;
}

function rejects(args: string[], flag: string, message: RegExp): void {
  assert.throws(() => parseLoadArgs(args), (e: unknown) => {
    assert.ok(e instanceof LoadArgError, `expected LoadArgError, got ${e}`);
    assert.equal(e.flag, flag);
    assert.match(e.message, message);
    return true;
  });
}

Deno.test("defaults: mrkv playground, 100% writes, 128 B, 10000 keys, 10 s", () => {
  const o = parse("--seed", "7");
  assert.deepEqual(o, {
    target: "mrkv",
    endpoints: DEFAULT_ENDPOINTS.mrkv,
    route: "endpoints",
    allowRemote: false,
    writePct: 100,
    concurrency: 1,
    rate: undefined,
    valueSize: 128,
    keys: 10000,
    durationMs: 10_000,
    requests: undefined,
    prefill: false,
    timeoutMs: 5000,
    seed: 7,
    json: false,
  });
});

Deno.test("every flag is read, with units", () => {
  const o = parse(
    "--target=etcd",
    "--endpoints",
    "http://127.0.0.1:1/, http://localhost:2",
    "--write-pct",
    "10",
    "--concurrency",
    "64",
    "--rate",
    "2.5",
    "--value-size",
    "1KiB",
    "--keys",
    "500",
    "--duration",
    "2s",
    "--requests",
    "1000",
    "--prefill",
    "--timeout",
    "250ms",
    "--json",
  );
  assert.equal(o.target, "etcd");
  assert.deepEqual(o.endpoints, ["http://127.0.0.1:1", "http://localhost:2"]);
  assert.equal(o.writePct, 10);
  assert.equal(o.concurrency, 64);
  assert.equal(o.rate, 2.5);
  assert.equal(o.valueSize, 1024);
  assert.equal(o.keys, 500);
  assert.equal(o.durationMs, 2000);
  assert.equal(o.requests, 1000);
  assert.equal(o.prefill, true);
  assert.equal(o.timeoutMs, 250);
  assert.equal(o.json, true);
  assert.ok(Number.isSafeInteger(o.seed));
});

Deno.test("the etcd target defaults to the members of tools/etcd_cluster.sh", () => {
  assert.deepEqual(parse("--target", "etcd").endpoints, DEFAULT_ENDPOINTS.etcd);
});

Deno.test("named workloads map to write percentages", () => {
  assert.equal(parse("--workload", "read-heavy").writePct, 10);
  assert.equal(parse("--workload", "read-only").writePct, 0);
  assert.equal(parse("--workload", "write-only").writePct, 100);
});

Deno.test("--requests alone is still bounded in time", () => {
  // Scenario: a count-bounded run against a server that stalls must still end.
  assert.equal(parse("--requests", "5").durationMs, REQUESTS_TIME_CAP_MS);
  assert.equal(parse("--requests", "5", "--duration", "1s").durationMs, 1000);
});

Deno.test("--help wins over everything else", () => {
  assert.deepEqual(parseLoadArgs(["--help", "--concurrency", "0"]), { help: true });
});

Deno.test("bad values name the flag and say what was expected", () => {
  rejects(["--target", "redis"], "--target", /"redis" is not one of mrkv, etcd/);
  rejects(["--write-pct", "101"], "--write-pct", /outside 0\.\.100/);
  rejects(["--write-pct", "lots"], "--write-pct", /"lots" is not a number/);
  rejects(["--concurrency", "0"], "--concurrency", /outside 1\.\.4096/);
  rejects(["--concurrency", "1.5"], "--concurrency", /not a whole number/);
  rejects(["--rate", "0"], "--rate", /outside/);
  rejects(["--rate", "fast"], "--rate", /"fast" is not a number/);
  rejects(["--keys=-3"], "--keys", /outside/);
  rejects(["--keys", "-3"], "--keys", /ambiguous/);
  rejects(["--value-size", "2MiB"], "--value-size", /outside 0\.\.1048576/);
  rejects(["--value-size", "big"], "--value-size", /not a size/);
  rejects(["--duration", "0s"], "--duration", /outside/);
  rejects(["--duration", "soon"], "--duration", /not a duration/);
  rejects(["--requests", "0"], "--requests", /outside/);
  rejects(["--timeout", "2h"], "--timeout", /not a duration/);
  rejects(["--workload", "mixed"], "--workload", /not one of write-only, read-heavy, read-only/);
  rejects(["--workload", "read-only", "--write-pct", "5"], "--workload", /not both/);
  rejects(["--route", "nearest"], "--route", /"nearest" is not one of endpoints, leader/);
  rejects(["--target", "etcd", "--route", "leader"], "--route", /for --target mrkv/);
});

Deno.test("--route leader routes mrkv requests; endpoints is the default", () => {
  assert.equal(parse("--route", "leader").route, "leader");
  assert.equal(parse("--target", "etcd").route, "endpoints");
  assert.equal(parse("--allow-remote").allowRemote, true);
});

Deno.test("endpoints must be loopback http(s) URLs unless --allow-remote", () => {
  rejects(["--endpoints", ""], "--endpoints", /no URL given/);
  rejects(["--endpoints", "127.0.0.1:20161"], "--endpoints", /is not http\(s\)|not a URL/);
  rejects(["--endpoints", "ftp://127.0.0.1"], "--endpoints", /not http\(s\)/);
  rejects(["--endpoints", "http://127.0.0.1:1?x=1"], "--endpoints", /query or fragment/);
  rejects(["--endpoints", "http://10.0.0.5:2379"], "--endpoints", /--allow-remote/);
  assert.deepEqual(
    parse("--endpoints", "http://10.0.0.5:2379", "--allow-remote").endpoints,
    ["http://10.0.0.5:2379"],
  );
  assert.deepEqual(parse("--endpoints", "http://[::1]:9").endpoints, ["http://[::1]:9"]);
});

Deno.test("unknown flags and stray arguments are refused", () => {
  rejects(["--concurency", "4"], "--concurency", /Unknown option/);
  assert.throws(() => parseLoadArgs(["etcd"]), LoadArgError);
});
