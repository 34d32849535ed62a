/**
 * Crash points of the Raft log engine. A run writes batches (some unsynced, some in one group
 * commit), rotates files and collects garbage (deletes, rewrites, squeezes); the simulated file
 * system kills it at every single file operation in turn, and every file system a restart could
 * then find is reopened. Recovery must always give the state after some prefix of the batches —
 * no fewer than the synced ones, no more than were handed to the engine — and the recovered
 * engine must keep working. Then real files are cut at every byte of their last frames and have
 * every byte of them flipped.
 */
import assert from "node:assert/strict";
import { CorruptionError } from "../records.ts";
import { RaftLogEngine } from "./engine.ts";
import { FILE_HEADER_BYTES } from "./format.ts";
import { type CrashImageOptions, MemFs } from "./mem_fs.ts";
import { dumpEngine, Model, Workload } from "./_model.ts";
import type { Item } from "./format.ts";
import type { GcStats } from "./gc.ts";

const POLICY = {
  segmentBytes: 1200,
  purgeThresholdBytes: 5000,
  rewriteRatio: 0.3,
  squeezeMinBytes: 1500,
  copyBatchBytes: 400,
  autoGc: false,
};

interface Progress {
  /** Batches handed to the engine, in order. */
  readonly issued: Item[][];
  /** How many of them a resolved synced write has made durable. */
  synced: number;
}

/** The scenario; stops wherever the file system crashes. */
async function scenario(fs: MemFs, seed: number, progress: Progress): Promise<RaftLogEngine> {
  const log = await RaftLogEngine.openFs(fs, POLICY);
  const work = new Workload(seed, 5, 120);
  try {
    for (let i = 0; i < 45; i++) {
      if (i % 10 === 9) {
        // A group commit: three batches, one write and one sync.
        const batches = [0, 1, 2].map(() => log.batch());
        const writes = batches.map((b) => {
          progress.issued.push(work.fill(b));
          return log.write(b);
        });
        await Promise.all(writes);
        progress.synced = progress.issued.length;
      } else {
        const b = log.batch();
        progress.issued.push(work.fill(b));
        const sync = i % 4 !== 3;
        await log.write(b, { sync });
        if (sync) progress.synced = progress.issued.length;
      }
      if (i % 2 === 1) { while (await log.collect()); }
    }
  } catch {
    // The simulated crash (or the engine refusing writes after it).
  }
  return log;
}

function prefixDumps(batches: readonly Item[][]): string[] {
  const model = new Model();
  const dumps = [model.dump()];
  for (const b of batches) {
    model.apply(b);
    dumps.push(model.dump());
  }
  return dumps;
}

Deno.test("raft log crash points: a crash at every file operation, writes and rotations and GC, recovers a prefix holding every synced batch", async () => {
  const done = { deletedFiles: 0, rewrittenFiles: 0, squeezes: 0 };
  for (const seed of Deno.env.get("MRKV_LONG") ? [11, 12, 13, 14, 15, 16, 17, 18] : [11, 12]) {
    const gc = await crashEverywhere(seed);
    done.deletedFiles += gc.deletedFiles;
    done.rewrittenFiles += gc.rewrittenFiles;
    done.squeezes += gc.squeezes;
  }
  // The runs crashed inside every kind of collection step.
  assert.ok(
    done.deletedFiles > 0 && done.rewrittenFiles > 0 && done.squeezes > 0,
    JSON.stringify(done),
  );
});

async function crashEverywhere(seed: number): Promise<GcStats> {
  // A run without a crash: learn how many operations it takes, and that it does everything.
  const full = new MemFs();
  const fullProgress: Progress = { issued: [], synced: 0 };
  const fullLog = await scenario(full, seed, fullProgress);
  const { gc } = fullLog.stats;
  await fullLog.close();
  const totalOps = full.ops;
  const dumps = prefixDumps(fullProgress.issued);
  assert.equal(await dumpEngine(await RaftLogEngine.openFs(full, POLICY)), dumps.at(-1));

  let images = 0;
  const cutsSeen = new Set<number>();
  for (let k = 1; k <= totalOps; k++) {
    const fs = new MemFs();
    fs.crashAfter(k);
    const progress: Progress = { issued: [], synced: 0 };
    const log = await scenario(fs, seed, progress).catch(() => undefined);
    assert.ok(fs.crashed, `op ${k}: the crash happened`);
    await log?.close().catch(() => {});
    const variants: CrashImageOptions[] = [];
    for (const dir of ["durable", "current"] as const) {
      variants.push({ dir }, { dir, keep: (_, n) => n }, { dir, keep: (_, n) => n >> 1 });
      variants.push({ dir, keep: (_, n) => n - 1 });
    }
    for (const variant of variants) {
      const image = fs.crashImage(variant);
      const what = `seed ${seed}: crash at op ${k} of ${totalOps}, image ${variant.dir} ` +
        `${variant.keep?.toString() ?? "synced only"}`;
      const again = await RaftLogEngine.openFs(image, POLICY);
      const got = await dumpEngine(again).catch((e) => {
        throw new Error(`${what}: ${e.message}`, { cause: e });
      });
      let j = progress.synced;
      while (j <= progress.issued.length && dumps[j] !== got) j++;
      assert.ok(
        j <= progress.issued.length,
        `${what}: recovered state is not the state after ${progress.synced}..` +
          `${progress.issued.length} batches:\n${got}\n--- expected at least:\n` +
          dumps[progress.synced],
      );
      cutsSeen.add(j - progress.synced);
      // The recovered engine keeps working, and what it writes survives another restart.
      const model = new Model();
      for (const b of progress.issued.slice(0, j)) model.apply(b);
      const more = again.batch().append(99, 1, [new Uint8Array([k & 0xff])]);
      model.apply(more.items);
      await again.write(more);
      while (await again.collect());
      await again.close();
      const third = await RaftLogEngine.openFs(image.crashImage({ dir: "durable" }), POLICY);
      assert.equal(await dumpEngine(third), model.dump(), `${what}: after recovery and a write`);
      await third.close();
      images++;
    }
  }
  assert.ok(images > 1000, `${images} crash images checked`);
  assert.ok(cutsSeen.has(0) && cutsSeen.size > 1, "crashes lost unsynced batches and kept some");
  return gc;
}

/** Writes `n` synced batches to a fresh log in `dir`; returns them. */
async function writeBatches(dir: string, n: number, seed: number): Promise<Item[][]> {
  const log = await RaftLogEngine.open(dir, { autoGc: false });
  const work = new Workload(seed, 3, 60);
  const out: Item[][] = [];
  for (let i = 0; i < n; i++) {
    const b = log.batch();
    out.push(work.fill(b));
    await log.write(b);
  }
  await log.close();
  return out;
}

/** Offsets where each frame of a single-file log ends. */
function frameEnds(bytes: Uint8Array): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ends: number[] = [];
  for (let at = FILE_HEADER_BYTES; at < bytes.length;) {
    at += 16 + view.getUint32(at);
    ends.push(at);
  }
  return ends;
}

Deno.test("raft log crash points: real files cut at every byte of the last two frames, and with every byte of them flipped, recover the frames before the damage", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-raftlog-cut-" });
  try {
    const batches = await writeBatches(dir, 12, 5);
    const dumps = prefixDumps(batches);
    const name = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name)[0]!;
    const path = `${dir}/${name}`;
    const original = await Deno.readFile(path);
    const ends = frameEnds(original);
    assert.equal(ends.length, 12);
    const from = ends[ends.length - 3]!;
    const check = async (bytes: Uint8Array, complete: number, what: string) => {
      await Deno.writeFile(path, bytes);
      const log = await RaftLogEngine.open(dir, { autoGc: false });
      try {
        assert.equal(await dumpEngine(log), dumps[complete], what);
        if (complete < 12 && bytes.length > ends[complete - 1]!) {
          assert.equal(log.recovery.truncated.length, 1, `${what}: the tail was cut`);
        }
      } finally {
        await log.close();
      }
      // The cut is physical: the file now ends after the last good frame.
      assert.equal(
        (await Deno.stat(path)).size,
        complete === 0 ? FILE_HEADER_BYTES : Math.min(bytes.length, ends[complete - 1]!),
      );
    };
    for (let cut = from; cut <= original.length; cut++) {
      const complete = ends.filter((e) => e <= cut).length;
      await check(original.slice(0, cut), complete, `cut at ${cut}`);
    }
    for (let at = from; at < original.length; at++) {
      const bytes = original.slice();
      bytes[at]! ^= 0x40;
      const complete = ends.filter((e) => e <= at).length;
      await check(bytes, complete, `byte ${at} flipped`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("raft log crash points: damage in a file that is not the last one refuses to open, instead of dropping synced data", async () => {
  const fs = new MemFs();
  const log = await RaftLogEngine.openFs(fs, { ...POLICY, segmentBytes: 300 });
  const work = new Workload(3, 3, 100);
  for (let i = 0; i < 30; i++) {
    const b = log.batch();
    work.fill(b);
    await log.write(b);
  }
  await log.close();
  const names = (await fs.list()).sort();
  assert.ok(names.length > 3);
  const victim = names[1]!;
  const bytes = fs.contents(victim)!;
  bytes[bytes.length - 3]! ^= 1;
  fs.setContents(victim, bytes);
  await assert.rejects(
    RaftLogEngine.openFs(fs, POLICY),
    (e) => e instanceof CorruptionError && e.message.includes(victim),
  );
  // A missing file in the middle is found too.
  bytes[bytes.length - 3]! ^= 1;
  fs.setContents(victim, bytes);
  await fs.unlink(names[2]!);
  await assert.rejects(RaftLogEngine.openFs(fs, POLICY), /a file is missing/);
});
