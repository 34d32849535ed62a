/**
 * The Raft log engine against Deno KV on the write path: `deno bench -A storage/raft_log/`.
 *
 * - one 128-byte entry per synced write, one writer;
 * - 64 writers at once, one entry each (the log engine commits them as one group; Deno KV
 *   commits each write);
 * - a Ready pass: 100 regions, one entry and a hard state each, in one write.
 *
 * @module
 */
import { KvEngine } from "../engine.ts";
import { RaftLogEngine } from "./engine.ts";

const dir = await Deno.makeTempDir({ prefix: "mrkv-raftlog-bench-" });
const log = await RaftLogEngine.open(`${dir}/log`);
const kv = await KvEngine.open(`${dir}/kv`);
const entry = new Uint8Array(128).fill(7);
let next = 1;

globalThis.addEventListener("unload", () => {
  void log.close();
  kv.close();
  Deno.removeSync(dir, { recursive: true });
});

Deno.bench("raft log: one entry per synced write", { group: "one", baseline: true }, async () => {
  await log.write(log.batch().append(1, next++, [entry]));
});

Deno.bench("deno kv: one entry per write", { group: "one" }, async () => {
  await kv.write(kv.batch().putRaftEntry(1, next++, entry));
});

Deno.bench("raft log: 64 writers, one entry each", { group: "64", baseline: true }, async () => {
  const base = next;
  next += 64;
  await Promise.all(
    Array.from({ length: 64 }, (_, i) => log.write(log.batch().append(100 + i, base, [entry]))),
  );
});

Deno.bench("deno kv: 64 writers, one entry each", { group: "64" }, async () => {
  const base = next;
  next += 64;
  await Promise.all(
    Array.from({ length: 64 }, (_, i) => kv.write(kv.batch().putRaftEntry(100 + i, base, entry))),
  );
});

Deno.bench("raft log: a Ready pass of 100 regions", { group: "pass", baseline: true }, async () => {
  const b = log.batch();
  const i = next++;
  for (let r = 1; r <= 100; r++) {
    b.append(1000 + r, i, [entry]).putHardState(1000 + r, { term: 6, vote: 1, commit: i });
  }
  await log.write(b);
});

Deno.bench("deno kv: a Ready pass of 100 regions", { group: "pass" }, async () => {
  const b = kv.batch();
  const i = next++;
  for (let r = 1; r <= 100; r++) {
    b.atPhase(0).putRaftEntry(1000 + r, i, entry);
    b.atPhase(1).putHardState(1000 + r, { term: 6, vote: 1, commit: i });
  }
  await kv.write(b);
});
