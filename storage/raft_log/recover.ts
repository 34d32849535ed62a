/**
 * Start-up recovery of the Raft log engine: finds the files, drops what a crash left half
 * made, replays every frame into the index and cuts a torn tail.
 *
 * 1. Temporary files (a rewrite file the garbage collector had not finished) are deleted.
 * 2. Rewrite files before the newest *base* rewrite file are obsolete and deleted.
 * 3. The rewrite queue, then the append queue, are replayed file by file in sequence order.
 *    Frames must be numbered without gaps. At the first frame that is torn, corrupt or out of
 *    sequence, the last file of a queue is cut there (a crash during a write leaves exactly
 *    that); anywhere else it is corruption of synced data, and opening fails rather than
 *    silently dropping what was acknowledged. A last file whose header is incomplete was being
 *    created when the process died, held nothing, and is deleted.
 *
 * @module
 */
import { CorruptionError } from "../records.ts";
import {
  decodeFileHeader,
  decodeItems,
  FILE_HEADER_BYTES,
  FLAG_BASE,
  ITEM_ENTRIES,
  type Queue,
  readFrame,
} from "./format.ts";
import type { LogFile } from "./fs.ts";
import type { Loc } from "./memtable.ts";
import { applyItem, fileId, parseFileName, type Pipe } from "./pipe.ts";

/** What recovery did, for logs and tests. */
export interface RecoveryReport {
  files: number;
  frames: number;
  /** Bytes cut from torn tails, with why. */
  truncated: { file: string; at: number; bytes: number; why: string }[];
  /** Files deleted: temporary, obsolete or never completed. */
  deleted: string[];
}

interface Found {
  readonly name: string;
  readonly queue: Queue;
  readonly seq: number;
}

/** Replays the files of `pipe.fs` into `pipe` (see the module comment). */
export async function recover(pipe: Pipe): Promise<RecoveryReport> {
  const fs = pipe.fs;
  const report: RecoveryReport = { files: 0, frames: 0, truncated: [], deleted: [] };
  const found: Record<Queue, Found[]> = { append: [], rewrite: [] };
  let dirty = false;
  for (const name of await fs.list()) {
    if (name.endsWith(".tmp")) {
      await fs.unlink(name);
      report.deleted.push(name);
      dirty = true;
      continue;
    }
    const parsed = parseFileName(name);
    if (parsed) found[parsed.queue].push({ name, ...parsed });
  }
  for (const q of ["append", "rewrite"] as const) found[q].sort((a, b) => a.seq - b.seq);

  // The newest complete base rewrite file makes the rewrite files before it obsolete.
  for (let i = found.rewrite.length - 1; i > 0; i--) {
    const header = await readHeader(pipe, found.rewrite[i]!.name);
    if (typeof header !== "string" && (header.flags & FLAG_BASE) !== 0) {
      for (const old of found.rewrite.splice(0, i)) {
        await fs.unlink(old.name);
        report.deleted.push(old.name);
      }
      dirty = true;
      break;
    }
  }
  if (dirty) await fs.syncDir();

  for (const q of ["rewrite", "append"] as const) {
    let expected: number | undefined;
    for (const [i, f] of found[q].entries()) {
      const last = i === found[q].length - 1;
      const next = await replayFile(pipe, f, last, expected, report);
      if (next !== undefined) expected = next;
    }
    if (expected !== undefined) pipe.nextSeq[q] = expected;
  }
  return report;
}

async function readHeader(pipe: Pipe, name: string) {
  const handle = await pipe.fs.open(name, { create: false });
  try {
    const buf = new Uint8Array(FILE_HEADER_BYTES);
    const n = await handle.read(buf, 0);
    return decodeFileHeader(buf.subarray(0, n));
  } finally {
    await handle.close();
  }
}

async function readAll(handle: LogFile): Promise<Uint8Array> {
  const size = await handle.size();
  const buf = new Uint8Array(size);
  const n = await handle.read(buf, 0);
  return buf.subarray(0, n);
}

/**
 * Replays one file into the index and registers it. Returns the sequence number its next
 * frame would have, or `undefined` if the file was deleted.
 */
async function replayFile(
  pipe: Pipe,
  f: Found,
  last: boolean,
  expected: number | undefined,
  report: RecoveryReport,
): Promise<number | undefined> {
  const handle = await pipe.fs.open(f.name, { create: false });
  let registered = false;
  try {
    const buf = await readAll(handle);
    const header = decodeFileHeader(buf);
    if (typeof header === "string" || header.queue !== f.queue) {
      const why = typeof header === "string" ? header : `header says queue ${header.queue}`;
      if (!last) {
        throw new CorruptionError(`raft log file ${f.name} in ${pipe.fs.where} is damaged: ${why}`);
      }
      // Created by a rotation that never finished: it cannot hold anything synced.
      await handle.close();
      registered = true;
      await pipe.fs.unlink(f.name);
      await pipe.fs.syncDir();
      report.deleted.push(f.name);
      return undefined;
    }
    if (expected !== undefined && header.firstSeq !== expected) {
      throw new CorruptionError(
        `raft log file ${f.name} in ${pipe.fs.where} starts at frame ${header.firstSeq}, but ` +
          `the file before it ends at frame ${expected - 1}: a file is missing`,
      );
    }
    const id = fileId(f.queue, f.seq);
    pipe.mem.file(id);
    let at = FILE_HEADER_BYTES;
    let seq = header.firstSeq;
    for (;;) {
      const frame = readFrame(buf, at, seq);
      if (!frame.ok) {
        if (at === buf.length) break;
        if (!last) {
          throw new CorruptionError(
            `raft log file ${f.name} in ${pipe.fs.where} is damaged at byte ${at} ` +
              `(${frame.why}), and it is not the last file: synced data would be lost`,
          );
        }
        await handle.truncate(at);
        await handle.datasync();
        report.truncated.push({ file: f.name, at, bytes: buf.length - at, why: frame.why });
        break;
      }
      for (const item of decodeItems(buf, frame.payload, frame.end)) {
        const locs: Loc[] = item.kind === ITEM_ENTRIES
          ? item.spans.map(([offset, length]) => ({ file: id, offset, length }))
          : [];
        applyItem(pipe.mem, item, id, locs);
      }
      report.frames++;
      seq++;
      at = frame.end;
    }
    pipe.add({
      queue: f.queue,
      seq: f.seq,
      name: f.name,
      handle,
      size: at,
      firstSeq: header.firstSeq,
      base: (header.flags & FLAG_BASE) !== 0,
    });
    registered = true;
    report.files++;
    return seq;
  } finally {
    if (!registered) await handle.close().catch(() => {});
  }
}
