/**
 * The Raft log engine's files: two queues of numbered files in one directory, and the index
 * ({@link MemTable}) of what they hold.
 *
 * - **append** (`log-<seq>.seg`): every batch the store writes, in order. The last file is the
 *   active one; it is rotated once it passes the segment size.
 * - **rewrite** (`rw-<seq>.seg`): live records the garbage collector copied out of append files
 *   it then deleted. A rewrite file flagged *base* holds every live rewritten record, so the
 *   rewrite files before it are obsolete.
 *
 * Replaying the rewrite queue and then the append queue, each in sequence order, rebuilds the
 * index: the rewrite queue stands for the append files that were deleted, which all came
 * before the remaining ones.
 *
 * A file is created with its header, synced, and its directory entry synced before any frame
 * is written to it; a file is only rotated away from once its data is synced. So every file
 * but the last of each queue is complete and durable, and only a last file can end in a torn
 * frame.
 *
 * @module
 */
import { CorruptionError } from "../records.ts";
import {
  encodeFileHeader,
  encodeFrame,
  FILE_HEADER_BYTES,
  frameSize,
  type Item,
  ITEM_CLEAN,
  ITEM_COMPACT,
  ITEM_ENTRIES,
  ITEM_HARD_STATE,
  ITEM_TRUNCATE,
  type Queue,
  type ReadItem,
} from "./format.ts";
import type { LogFile, LogFs } from "./fs.ts";
import { type Loc, MemTable } from "./memtable.ts";

/** One log file. */
export interface SegmentFile {
  readonly id: number;
  readonly queue: Queue;
  readonly seq: number;
  name: string;
  readonly handle: LogFile;
  /** Bytes written (the next frame goes here). */
  size: number;
  readonly firstSeq: number;
  readonly base: boolean;
  /** Reads in flight: a deleted file's handle is closed only once they are done. */
  reads: number;
  deleted: boolean;
}

/** The file name of file `seq` of `queue`. */
export function fileName(queue: Queue, seq: number): string {
  return `${queue === "append" ? "log" : "rw"}-${String(seq).padStart(12, "0")}.seg`;
}

/** Parses a file name made by {@link fileName}. */
export function parseFileName(name: string): { queue: Queue; seq: number } | undefined {
  const m = /^(log|rw)-(\d{12,})\.seg$/.exec(name);
  if (!m) return undefined;
  return { queue: m[1] === "log" ? "append" : "rewrite", seq: Number(m[2]) };
}

/** A unique number per file: the index records entry locations by it. */
export function fileId(queue: Queue, seq: number): number {
  return seq * 2 + (queue === "rewrite" ? 1 : 0);
}

/** Files, sequence counters and the index. See the module comment. */
export class Pipe {
  readonly mem = new MemTable();
  readonly files: Record<Queue, SegmentFile[]> = { append: [], rewrite: [] };
  /** Sequence number of the next frame of each queue. */
  readonly nextSeq: Record<Queue, number> = { append: 1, rewrite: 1 };
  readonly #byId = new Map<number, SegmentFile>();

  constructor(readonly fs: LogFs) {}

  /** The file frames of `queue` go to, if any. */
  active(queue: Queue): SegmentFile | undefined {
    return this.files[queue].at(-1);
  }

  byId(id: number): SegmentFile | undefined {
    return this.#byId.get(id);
  }

  /** Total bytes of a queue's files. */
  bytes(queue: Queue): number {
    return this.files[queue].reduce((n, f) => n + f.size, 0);
  }

  /** Live bytes of a queue's files. */
  liveBytes(queue: Queue): number {
    return this.files[queue].reduce((n, f) => n + this.mem.liveBytes(f.id), 0);
  }

  /** Registers a file found at start-up (recovery) or just created, at the end of its queue. */
  add(file: Omit<SegmentFile, "id" | "reads" | "deleted">): SegmentFile {
    const f: SegmentFile = { ...file, id: fileId(file.queue, file.seq), reads: 0, deleted: false };
    this.files[f.queue].push(f);
    this.#byId.set(f.id, f);
    this.mem.file(f.id);
    return f;
  }

  /**
   * Creates the next file of `queue` (under a temporary name if `tmp`): header written and
   * synced, directory synced. The caller adds it with {@link add} when it should take frames.
   */
  async create(
    queue: Queue,
    options: { base?: boolean; tmp?: boolean; seq?: number } = {},
  ): Promise<Omit<SegmentFile, "id" | "reads" | "deleted">> {
    const seq = options.seq ?? (this.active(queue)?.seq ?? 0) + 1;
    const name = fileName(queue, seq) + (options.tmp ? ".tmp" : "");
    const handle = await this.fs.open(name, { create: true });
    const base = options.base ?? false;
    const firstSeq = this.nextSeq[queue];
    try {
      await handle.write(encodeFileHeader({ queue, flags: base ? 1 : 0, firstSeq }), 0);
      await handle.datasync();
      await this.fs.syncDir();
    } catch (e) {
      await handle.close().catch(() => {});
      throw e;
    }
    return { queue, seq, name, handle, size: FILE_HEADER_BYTES, firstSeq, base };
  }

  /** Syncs the active file of `queue` and starts a new one. */
  async rotate(queue: Queue): Promise<SegmentFile> {
    await this.active(queue)?.handle.datasync();
    return this.add(await this.create(queue));
  }

  /**
   * Writes `batches` as consecutive frames at the end of `file` (no sync). Returns each
   * batch's entry offsets, made absolute in the file.
   */
  async writeFrames(
    file: SegmentFile,
    batches: readonly (readonly Item[])[],
  ): Promise<(number[] | undefined)[][]> {
    const total = batches.reduce((n, b) => n + frameSize(b), 0);
    const buf = new Uint8Array(total);
    const start = file.size;
    const out: (number[] | undefined)[][] = [];
    let at = 0;
    for (const items of batches) {
      const offsets = encodeFrame(items, this.nextSeq[file.queue]++, buf, at);
      out.push(offsets.map((o) => o?.map((x) => x + at + start)));
      at += frameSize(items);
    }
    await file.handle.write(buf, start);
    file.size += total;
    return out;
  }

  /**
   * Reads the bytes at `locs` (adjacent spans of one file are read together). Every file is
   * pinned before the first await, so garbage collection can move the entries and delete a file
   * meanwhile: its handle stays open until the read is done.
   */
  async read(locs: readonly Loc[]): Promise<Uint8Array[]> {
    const pinned: SegmentFile[] = [];
    const spans: { file: SegmentFile; from: number; to: number; start: number; end: number }[] = [];
    try {
      for (let i = 0; i < locs.length;) {
        const first = locs[i]!;
        let j = i + 1;
        let end = first.offset + first.length;
        while (j < locs.length && locs[j]!.file === first.file && locs[j]!.offset === end + 4) {
          end = locs[j]!.offset + locs[j]!.length;
          j++;
        }
        const file = this.#byId.get(first.file);
        if (!file) {
          throw new CorruptionError(`raft log: an entry points at missing file ${first.file}`);
        }
        file.reads++;
        pinned.push(file);
        spans.push({ file, from: i, to: j, start: first.offset, end });
        i = j;
      }
      const out: Uint8Array[] = [];
      for (const { file, from, to, start, end } of spans) {
        const buf = new Uint8Array(end - start);
        const n = await file.handle.read(buf, start);
        if (n !== buf.length) {
          throw new CorruptionError(
            `raft log: ${file.name} ends before entry bytes at ${start + n}`,
          );
        }
        for (let k = from; k < to; k++) {
          const l = locs[k]!;
          out.push(buf.subarray(l.offset - start, l.offset - start + l.length));
        }
      }
      return out;
    } finally {
      for (const file of pinned) {
        file.reads--;
        if (file.deleted && file.reads === 0) await file.handle.close().catch(() => {});
      }
    }
  }

  /** Unlinks files (then syncs the directory) and forgets them. */
  async remove(files: readonly SegmentFile[]): Promise<void> {
    if (files.length === 0) return;
    for (const f of files) {
      await this.fs.unlink(f.name);
      this.forget(f);
    }
    await this.fs.syncDir();
  }

  /** Forgets a file that is gone; its handle closes once no read uses it. */
  forget(f: SegmentFile): void {
    const list = this.files[f.queue];
    const k = list.indexOf(f);
    if (k >= 0) list.splice(k, 1);
    this.#byId.delete(f.id);
    this.mem.dropFile(f.id);
    f.deleted = true;
    if (f.reads === 0) void f.handle.close().catch(() => {});
  }

  /** Closes every file. */
  async close(): Promise<void> {
    for (const q of ["append", "rewrite"] as const) {
      for (const f of this.files[q]) await f.handle.close().catch(() => {});
      this.files[q] = [];
    }
    this.#byId.clear();
  }
}

/**
 * Applies one written (or replayed) item to the index; an ENTRIES item needs where its entries
 * are (`locs`).
 */
export function applyItem(
  mem: MemTable,
  item: Item | ReadItem,
  file: number,
  locs: readonly Loc[] = [],
): void {
  switch (item.kind) {
    case ITEM_ENTRIES:
      mem.append(item.regionId, item.firstIndex, locs, file);
      break;
    case ITEM_TRUNCATE:
      mem.truncate(item.regionId, item.index, file);
      break;
    case ITEM_HARD_STATE:
      mem.putHardState(item.regionId, item.hs, file);
      break;
    case ITEM_COMPACT:
      mem.compact(item.regionId, item.index, file);
      break;
    case ITEM_CLEAN:
      mem.clean(item.regionId, file);
      break;
  }
}
