/**
 * Every entry point answers `--help` and `--version` (exit 0, no stack trace, no NaN), and a
 * bad flag is one line naming it (exit 2), run as real processes the way a person types them.
 */
import assert from "node:assert/strict";
import { REPO_ROOT } from "../tests/process_cluster.ts";
import { VERSION } from "../telemetry/mod.ts";

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", ...args],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

const ENTRIES: readonly (readonly string[])[] = [
  ["main.ts"],
  ["main.ts", "ctl"],
  ["tools/playground.ts"],
  ["tools/load.ts"],
  ["tools/bench_compare.ts"],
  ["tools/heartbeat_bench.ts"],
  ["tools/raft_simulate.ts"],
  ["tools/bench_scale.ts"],
  ["tools/merge_bench.ts"],
  ["tools/scan_memory.ts"],
  ["tools/sched_drill.ts"],
  ["tools/hot_drill.ts"],
  ["tools/chaos.ts"],
  ["tools/write_stages.ts"],
];

Deno.test("--help and --version work on every entry", async () => {
  for (const entry of ENTRIES) {
    const what = entry.join(" ");
    const help = await run([...entry, "--help"]);
    assert.equal(help.code, 0, `${what} --help: exit ${help.code}, stderr ${help.err}`);
    assert.match(help.out, /usage/i, `${what} --help says how to use it`);
    assert.doesNotMatch(help.out + help.err, /Uncaught|NaN|at .*\.ts:\d+/, `${what} --help`);
    const version = await run([...entry, "--version"]);
    assert.equal(version.code, 0, `${what} --version: ${version.err}`);
    assert.match(version.out, new RegExp(` ${VERSION.replaceAll(".", "\\.")} \\(deno `), what);
  }
});

Deno.test("--help shows sizes and durations with units; bad flags are one line and exit 2", async () => {
  const help = (await run(["main.ts", "--help"])).out;
  assert.match(help, /\[96MiB\]/);
  assert.match(help, /\[30m\]/);
  assert.match(help, /\[100ms\]/);
  for (
    const [args, flag] of [
      [["tools/playground.ts", "--bogus"], "--bogus"],
      [["tools/heartbeat_bench.ts", "--regions", "many"], "--regions"],
      [["tools/raft_simulate.ts", "seven"], "FIRST_SEED"],
      [["main.ts", "ctl", "--bogus"], "--bogus"],
      [["tools/sched_drill.ts", "--bogus"], "--bogus"],
      [["tools/hot_drill.ts", "--stores", "many"], "--stores"],
      [["tools/hot_drill.ts", "--load-split", "maybe"], "--load-split"],
      [["tools/write_stages.ts", "--concurrency", "x"], "--concurrency"],
    ] as const
  ) {
    const r = await run([...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
    const lines = r.err.trimEnd().split("\n");
    assert.equal(lines.length, 1, `${args.join(" ")}: one line, got ${r.err}`);
    assert.ok(lines[0]!.includes(flag), `${lines[0]} names ${flag}`);
  }
});
