/**
 * The Raft log engine killed with SIGKILL in a real process, on a real file system: a writer
 * process (`_kill_writer.ts`) keeps synced writes in flight while rotating files and collecting
 * garbage, and is killed at a different point of its run each round. Reopened, the log must
 * hold exactly what some prefix of its batches left, including every batch it acknowledged; the
 * next round's writer continues on the recovered files.
 */
import assert from "node:assert/strict";
import { RaftLogEngine } from "./engine.ts";
import { entryBytes, KILL_POLICY, killState } from "./_kill_model.ts";

const WRITER = new URL("./_kill_writer.ts", import.meta.url).pathname;
const ROUNDS = Deno.env.get("MRKV_LONG") ? 20 : 6;

/** Whether the log holds exactly what batches `0 .. n - 1` leave. */
async function holdsPrefix(log: RaftLogEngine, n: number): Promise<boolean> {
  const want = killState(n);
  if (log.regionIds().join() !== [...want.keys()].sort().join()) return false;
  for (const [regionId, r] of want) {
    const bounds = log.bounds(regionId);
    if (bounds?.first !== r.first || bounds.last !== r.last) return false;
    if (JSON.stringify(log.hardState(regionId)) !== JSON.stringify(r.hs)) return false;
    const entries = await log.entries(regionId, r.first, r.last + 1);
    for (const [i, e] of entries.entries()) {
      const expected = entryBytes(regionId, r.first + i, r.writer[i]!);
      if (e.length !== expected.length || !e.every((x, j) => x === expected[j])) return false;
    }
  }
  return true;
}

/** Runs the writer from batch `from` until it has acknowledged `acks` more, then kills it. */
async function runAndKill(dir: string, from: number, acks: number): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", WRITER, dir, String(from)],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let acked = from - 1;
  let seen = 0;
  const deadline = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).values();
  let buffered = "";
  try {
    for await (const chunk of lines) {
      buffered += chunk;
      const parts = buffered.split("\n");
      buffered = parts.pop()!;
      for (const line of parts) {
        const m = /^ack (\d+)$/.exec(line);
        if (!m) continue;
        const n = Number(m[1]);
        assert.equal(n, acked + 1, "acknowledged in order");
        acked = n;
        seen++;
      }
      if (seen >= acks) {
        child.kill("SIGKILL");
        break;
      }
    }
  } finally {
    clearTimeout(deadline);
  }
  const status = await child.status;
  const stderr = new TextDecoder().decode((await child.stderr.getReader().read()).value);
  assert.equal(status.signal, "SIGKILL", `the writer was killed, not ended: ${stderr}`);
  assert.ok(seen >= acks, `the writer acknowledged ${seen} of ${acks} batches: ${stderr}`);
  return acked;
}

Deno.test("raft log: a writer process killed with SIGKILL at a different point each round loses no acknowledged batch and recovers a prefix", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-raftlog-kill-" });
  let next = 0;
  let torn = 0;
  let landedUnacked = 0;
  let firstFile: string | undefined;
  let lastFirstFile: string | undefined;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // Killed after a different number of acknowledgements each round (5 to 404).
      const acked = await runAndKill(dir, next, 5 + (round * 137 + 31) % 400);
      const log = await RaftLogEngine.open(dir, { ...KILL_POLICY, autoGc: false });
      try {
        torn += log.recovery.truncated.length;
        let n = acked + 1;
        // Batches in flight when it died may or may not have landed, in order.
        while (n <= acked + 64 && !(await holdsPrefix(log, n))) n++;
        assert.ok(
          n <= acked + 64,
          `round ${round}: the log holds the first n batches for some n > ${acked}`,
        );
        next = n;
        landedUnacked += n - acked - 1;
        firstFile ??= log.files().append[0]?.name;
        lastFirstFile = log.files().append[0]?.name;
      } finally {
        await log.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.notEqual(lastFirstFile, firstFile, "garbage collection deleted log files meanwhile");
  console.log(
    `${ROUNDS} kills, ${next} batches kept, ${landedUnacked} of them landed unacknowledged, ` +
      `${torn} torn tails cut`,
  );
});
