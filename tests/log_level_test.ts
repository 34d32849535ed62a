/**
 * Both roles write structured one-line logs and honour `--log-level`, as real processes: a
 * scheduler at `error` says nothing while it serves, one at `info` announces itself; a store
 * waiting for an unreachable scheduler warns with the address and the cause at `info`, and
 * stays quiet at `error`.
 */
import assert from "node:assert/strict";
import { ChildProc, freePorts, pollUntil, REPO_ROOT } from "./process_cluster.ts";

const MAIN = `${REPO_ROOT}main.ts`;
const LINE =
  /^\[[^\]]+\] time=\d{4}-\d\d-\d\dT[\d:.]+Z level=(DEBUG|INFO|WARN|ERROR) role=(store|scheduler) /;

function start(name: string, args: string[]): ChildProc {
  return new ChildProc(name, Deno.execPath(), ["run", "-A", "--unstable-kv", MAIN, ...args]);
}

Deno.test("both roles write one-line structured logs at the --log-level asked for", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-log-level-" });
  const [quietPort, loudPort, nobody] = freePorts(3);
  const scheduler = (name: string, port: number, extra: string[]) =>
    start(name, [
      "--role",
      "scheduler",
      "--addr",
      `127.0.0.1:${port}`,
      "--data-dir",
      `${dir}/${name}`,
      ...extra,
    ]);
  const store = (name: string, extra: string[]) =>
    start(name, [
      "--role",
      "store",
      "--addr",
      "127.0.0.1:0",
      "--scheduler",
      `http://127.0.0.1:${nobody}`,
      "--data-dir",
      `${dir}/${name}`,
      ...extra,
    ]);
  const procs = [
    scheduler("sched-error", quietPort!, ["--log-level", "error"]),
    scheduler("sched-info", loudPort!, []),
    store("store-info", []),
    store("store-error", ["--log-level", "error"]),
  ];
  const [schedError, schedInfo, storeInfo, storeError] = procs as [
    ChildProc,
    ChildProc,
    ChildProc,
    ChildProc,
  ];
  try {
    await pollUntil(
      "the info scheduler's listening line",
      () =>
        /level=INFO role=scheduler msg="cluster \d+ listening on http:\/\/127\.0\.0\.1:\d+/.test(
          schedInfo.output(),
        ),
    );
    await pollUntil(
      "the quiet scheduler to serve /status",
      async () => (await fetch(`http://127.0.0.1:${quietPort}/status`)).ok,
    );
    await pollUntil(
      "two warnings from the info store",
      () => (storeInfo.output().match(/level=WARN/g) ?? []).length >= 2,
      { timeoutMs: 20_000 },
    );
    const warn = storeInfo.output().split("\n").find((l) => /level=WARN/.test(l))!;
    assert.match(warn, LINE);
    assert.match(
      warn,
      new RegExp(
        `msg="waiting for the scheduler: scheduler is_bootstrapped: cannot reach http://127\\.0\\.0\\.1:${nobody}: connection refused"$`,
      ),
    );
    assert.equal(
      schedError.output(),
      "",
      "a scheduler at error has nothing to say while it serves",
    );
    assert.equal(storeError.output(), "", "a store at error does not warn");
    for (const p of [schedInfo, storeInfo]) {
      for (const l of p.output().split("\n")) assert.match(l, LINE, `${p.name}: ${l}`);
    }
  } finally {
    for (const p of procs) await p.stop("SIGKILL").catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
