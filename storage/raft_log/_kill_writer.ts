/**
 * A process that writes to a Raft log engine until it is killed (`kill_test.ts` runs it and
 * kills it with SIGKILL). Batch `n` is a pure function of `n` (see {@link killBatch}), so the
 * test can rebuild what any prefix of the batches leaves. It keeps several synced writes in
 * flight (group commit), uses small files (rotation, garbage collection), and prints
 * `ack <n>` once batch `n` is durable.
 *
 * Usage: `deno run -A _kill_writer.ts <dir> <first batch number>`.
 *
 * @module
 */
import { RaftLogEngine } from "./engine.ts";
import { KILL_POLICY, killBatch } from "./_kill_model.ts";

const [dir, from] = Deno.args;
if (!dir || from === undefined) throw new Error("usage: _kill_writer.ts <dir> <first batch>");
const log = await RaftLogEngine.open(dir, KILL_POLICY);
const out = Deno.stdout.writable.getWriter();
await out.write(new TextEncoder().encode("open\n"));
const inFlight = new Set<Promise<void>>();
for (let n = Number(from);; n++) {
  const p: Promise<void> = log.write(killBatch(log.batch(), n)).then(async () => {
    await out.write(new TextEncoder().encode(`ack ${n}\n`));
    inFlight.delete(p);
  });
  inFlight.add(p);
  if (inFlight.size >= 8) await Promise.race(inFlight);
}
