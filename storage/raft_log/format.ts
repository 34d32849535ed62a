/**
 * The on-disk format of the Raft log engine.
 *
 * A log file starts with a 32-byte header, then holds frames back to back:
 *
 * ```
 * header: "mrkvrlog" | version u16 | queue u8 | flags u8 | firstSeq u64 | 0 u32 | crc u32
 * frame:  length u32 | crc u32 | seq u64 | payload (length bytes)
 * ```
 *
 * All integers are big-endian. A frame's CRC-32 covers its length, its sequence number and its
 * payload, so a torn or corrupt frame is caught whatever part of it was hit. Frames of one queue
 * are numbered without gaps across its files (a file's header names the number of its first
 * frame), so a stale frame behind a cut tail can never be taken for a new one.
 *
 * A frame's payload is one write batch: items applied together or not at all.
 *
 * ```
 * item: kind u8 | regionId u64 | body
 *   ENTRIES     firstIndex u64 | count u32 | count × (length u32 | bytes)
 *   HARD_STATE  term u64 | vote u64 | commit u64
 *   COMPACT     index u64        (drop the entries at or below index)
 *   CLEAN       (nothing)        (drop the region's entries and hard state)
 *   TRUNCATE    index u64        (drop the entries at or above index)
 * ```
 *
 * @module
 */
import { crc32 } from "node:zlib";
import { CorruptionError, type HardState } from "../records.ts";

export const FILE_MAGIC = new TextEncoder().encode("mrkvrlog");
export const FORMAT_VERSION = 1;
export const FILE_HEADER_BYTES = 32;
export const FRAME_HEADER_BYTES = 16;
/** Largest frame payload accepted (a frame past it is corrupt, not merely large). */
export const MAX_FRAME_BYTES = 1 << 30;

/** The two queues of files: appends from the store, and live records GC copied out of them. */
export type Queue = "append" | "rewrite";

/** Header flag: a rewrite file that holds every live rewritten record (older ones are obsolete). */
export const FLAG_BASE = 1;

export const ITEM_ENTRIES = 1;
export const ITEM_HARD_STATE = 2;
export const ITEM_COMPACT = 3;
export const ITEM_CLEAN = 4;
export const ITEM_TRUNCATE = 5;

/** Bytes of an item's kind and region id. */
export const ITEM_HEAD_BYTES = 9;
/** Bytes a HARD_STATE item takes. */
export const HARD_STATE_ITEM_BYTES = ITEM_HEAD_BYTES + 24;
/** Bytes an entry adds to an ENTRIES item besides its data. */
export const ENTRY_OVERHEAD = 4;

/** One item of a batch, as written. */
export type Item =
  | {
    readonly kind: typeof ITEM_ENTRIES;
    readonly regionId: number;
    readonly firstIndex: number;
    readonly entries: readonly Uint8Array[];
  }
  | { readonly kind: typeof ITEM_HARD_STATE; readonly regionId: number; readonly hs: HardState }
  | { readonly kind: typeof ITEM_COMPACT; readonly regionId: number; readonly index: number }
  | { readonly kind: typeof ITEM_CLEAN; readonly regionId: number }
  | { readonly kind: typeof ITEM_TRUNCATE; readonly regionId: number; readonly index: number };

/** An item read back: entries are `[offset, length]` spans of the buffer they were read from. */
export type ReadItem =
  | {
    readonly kind: typeof ITEM_ENTRIES;
    readonly regionId: number;
    readonly firstIndex: number;
    readonly spans: readonly (readonly [number, number])[];
  }
  | Exclude<Item, { kind: typeof ITEM_ENTRIES }>;

function putU64(view: DataView, at: number, n: number): void {
  view.setUint32(at, Math.floor(n / 0x1_0000_0000));
  view.setUint32(at + 4, n >>> 0);
}

function getU64(view: DataView, at: number): number {
  const n = view.getUint32(at) * 0x1_0000_0000 + view.getUint32(at + 4);
  if (!Number.isSafeInteger(n)) throw new CorruptionError(`raft log: integer ${n} is too large`);
  return n;
}

function checkU64(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`raft log: invalid ${what} ${n}: must be a non-negative safe integer`);
  }
}

/** Bytes `item` takes in a payload. */
export function itemSize(item: Item): number {
  switch (item.kind) {
    case ITEM_ENTRIES:
      return ITEM_HEAD_BYTES + 12 +
        item.entries.reduce((n, e) => n + ENTRY_OVERHEAD + e.length, 0);
    case ITEM_HARD_STATE:
      return HARD_STATE_ITEM_BYTES;
    case ITEM_COMPACT:
    case ITEM_TRUNCATE:
      return ITEM_HEAD_BYTES + 8;
    case ITEM_CLEAN:
      return ITEM_HEAD_BYTES;
  }
}

/** Checks an item's numbers before it is queued for writing. */
export function checkItem(item: Item): void {
  checkU64("region id", item.regionId);
  if (item.kind === ITEM_ENTRIES) {
    checkU64("first index", item.firstIndex);
    checkU64("last index", item.firstIndex + item.entries.length);
  } else if (item.kind === ITEM_HARD_STATE) {
    checkU64("term", item.hs.term);
    checkU64("vote", item.hs.vote);
    checkU64("commit", item.hs.commit);
  } else if (item.kind === ITEM_COMPACT || item.kind === ITEM_TRUNCATE) {
    checkU64("index", item.index);
  }
}

/** Where each entry's data landed, relative to the frame's start (one array per item). */
export type EntryOffsets = (number[] | undefined)[];

/**
 * Encodes `items` as one frame numbered `seq` into `out` at `at` (which must have
 * {@link frameSize} bytes free). Returns where each entry's data went, relative to `at`.
 */
export function encodeFrame(
  items: readonly Item[],
  seq: number,
  out: Uint8Array,
  at: number,
): EntryOffsets {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let p = at + FRAME_HEADER_BYTES;
  const offsets: EntryOffsets = [];
  for (const item of items) {
    view.setUint8(p, item.kind);
    putU64(view, p + 1, item.regionId);
    p += ITEM_HEAD_BYTES;
    switch (item.kind) {
      case ITEM_ENTRIES: {
        putU64(view, p, item.firstIndex);
        view.setUint32(p + 8, item.entries.length);
        p += 12;
        const where: number[] = [];
        for (const e of item.entries) {
          view.setUint32(p, e.length);
          out.set(e, p + ENTRY_OVERHEAD);
          where.push(p + ENTRY_OVERHEAD - at);
          p += ENTRY_OVERHEAD + e.length;
        }
        offsets.push(where);
        continue;
      }
      case ITEM_HARD_STATE:
        putU64(view, p, item.hs.term);
        putU64(view, p + 8, item.hs.vote);
        putU64(view, p + 16, item.hs.commit);
        p += 24;
        break;
      case ITEM_COMPACT:
      case ITEM_TRUNCATE:
        putU64(view, p, item.index);
        p += 8;
        break;
      case ITEM_CLEAN:
        break;
    }
    offsets.push(undefined);
  }
  const length = p - at - FRAME_HEADER_BYTES;
  view.setUint32(at, length);
  putU64(view, at + 8, seq);
  view.setUint32(at + 4, frameCrc(out, at, length));
  return offsets;
}

/** Bytes of a frame holding `items`. */
export function frameSize(items: readonly Item[]): number {
  return FRAME_HEADER_BYTES + items.reduce((n, i) => n + itemSize(i), 0);
}

function frameCrc(buf: Uint8Array, at: number, length: number): number {
  const head = crc32(buf.subarray(at, at + 4));
  return crc32(buf.subarray(at + 8, at + FRAME_HEADER_BYTES + length), head) >>> 0;
}

/** What {@link readFrame} found at a position. */
export type FrameRead =
  | { readonly ok: true; readonly seq: number; readonly payload: number; readonly end: number }
  | { readonly ok: false; readonly why: string };

/**
 * Reads the frame at `at` in `buf` (the file's bytes from its start). `ok: false` means the
 * valid log ends before `at`: nothing there, a torn frame, a corrupt one, or one that is not
 * the frame numbered `expectedSeq`.
 */
export function readFrame(buf: Uint8Array, at: number, expectedSeq: number): FrameRead {
  if (at === buf.length) return { ok: false, why: "end of file" };
  if (buf.length - at < FRAME_HEADER_BYTES) {
    return { ok: false, why: `${buf.length - at} bytes, less than a frame header` };
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const length = view.getUint32(at);
  if (length === 0 && view.getUint32(at + 4) === 0) return { ok: false, why: "zeroed bytes" };
  if (length > MAX_FRAME_BYTES) return { ok: false, why: `frame length ${length} is impossible` };
  if (length > buf.length - at - FRAME_HEADER_BYTES) {
    return { ok: false, why: `frame of ${length} bytes cut short` };
  }
  if (view.getUint32(at + 4) !== frameCrc(buf, at, length)) {
    return { ok: false, why: "checksum mismatch" };
  }
  const seq = view.getUint32(at + 8) * 0x1_0000_0000 + view.getUint32(at + 12);
  if (seq !== expectedSeq) return { ok: false, why: `frame ${seq} where ${expectedSeq} belongs` };
  return { ok: true, seq, payload: at + FRAME_HEADER_BYTES, end: at + FRAME_HEADER_BYTES + length };
}

/** Decodes the items of a payload at `[start, end)` of `buf` (already checksummed). */
export function decodeItems(buf: Uint8Array, start: number, end: number): ReadItem[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const items: ReadItem[] = [];
  let p = start;
  const need = (n: number) => {
    if (p + n > end) throw new CorruptionError(`raft log: item overruns its frame at ${p}`);
  };
  while (p < end) {
    need(ITEM_HEAD_BYTES);
    const kind = view.getUint8(p);
    const regionId = getU64(view, p + 1);
    p += ITEM_HEAD_BYTES;
    switch (kind) {
      case ITEM_ENTRIES: {
        need(12);
        const firstIndex = getU64(view, p);
        const count = view.getUint32(p + 8);
        p += 12;
        const spans: [number, number][] = [];
        for (let i = 0; i < count; i++) {
          need(ENTRY_OVERHEAD);
          const length = view.getUint32(p);
          p += ENTRY_OVERHEAD;
          need(length);
          spans.push([p, length]);
          p += length;
        }
        items.push({ kind, regionId, firstIndex, spans });
        break;
      }
      case ITEM_HARD_STATE:
        need(24);
        items.push({
          kind,
          regionId,
          hs: { term: getU64(view, p), vote: getU64(view, p + 8), commit: getU64(view, p + 16) },
        });
        p += 24;
        break;
      case ITEM_COMPACT:
      case ITEM_TRUNCATE:
        need(8);
        items.push({ kind, regionId, index: getU64(view, p) });
        p += 8;
        break;
      case ITEM_CLEAN:
        items.push({ kind, regionId });
        break;
      default:
        throw new CorruptionError(`raft log: unknown item kind ${kind} at ${p - ITEM_HEAD_BYTES}`);
    }
  }
  return items;
}

/** A file's header fields. */
export interface FileHeader {
  readonly queue: Queue;
  readonly flags: number;
  /** Sequence number of the file's first frame. */
  readonly firstSeq: number;
}

/** Encodes a file header. */
export function encodeFileHeader(h: FileHeader): Uint8Array {
  const out = new Uint8Array(FILE_HEADER_BYTES);
  const view = new DataView(out.buffer);
  out.set(FILE_MAGIC, 0);
  view.setUint16(8, FORMAT_VERSION);
  view.setUint8(10, h.queue === "append" ? 0 : 1);
  view.setUint8(11, h.flags);
  putU64(view, 12, h.firstSeq);
  view.setUint32(28, crc32(out.subarray(0, 28)) >>> 0);
  return out;
}

/** Decodes a file header, or says why the bytes are not one. */
export function decodeFileHeader(buf: Uint8Array): FileHeader | string {
  if (buf.length < FILE_HEADER_BYTES) return `${buf.length} bytes, less than a file header`;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint32(28) !== (crc32(buf.subarray(0, 28)) >>> 0)) {
    return "file header checksum mismatch";
  }
  if (!FILE_MAGIC.every((b, i) => buf[i] === b)) return "not a raft log file";
  const version = view.getUint16(8);
  if (version !== FORMAT_VERSION) return `unknown format version ${version}`;
  const q = view.getUint8(10);
  if (q > 1) return `unknown queue ${q}`;
  return {
    queue: q === 0 ? "append" : "rewrite",
    flags: view.getUint8(11),
    firstSeq: getU64(view, 12),
  };
}
