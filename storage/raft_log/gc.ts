/**
 * Garbage collection of the Raft log engine's files, one bounded step at a time.
 *
 * When regions compact their logs (or are removed, or overwrite their hard state), records in
 * old append files die. A step looks at the **oldest** append file (never the active one):
 * - nothing live in it: it is deleted;
 * - little live data (under `rewriteRatio` of its size), or the append queue is over
 *   `purgeThresholdBytes`: its live records are copied to the rewrite queue, synced, the index
 *   is pointed at the copies, and the file is deleted.
 *
 * Only the oldest file goes, so the rewrite queue always stands for a prefix of the append
 * queue and replaying it first keeps the order. Copied entries of a region are written as an
 * append at their first index, as they were first written. What the deleted file's records did
 * to older records — a removal, a compaction, the truncation an append starts with — is carried
 * over too when the rewrite queue holds records of that region it could touch: otherwise
 * replaying the rewrite queue would bring back records those had killed.
 *
 * The rewrite queue itself is **squeezed** once it is mostly dead: its live records are written
 * to a new file under a temporary name, synced, renamed to a *base* rewrite file, and the older
 * rewrite files are deleted. Recovery deletes a leftover temporary file, and rewrite files
 * older than a base.
 *
 * The store's writes never wait for a step: steps touch only old files and the rewrite queue,
 * and update the index only where an entry is still where it was copied from. Before a file's
 * records lose their last copy, the appends written so far are synced: a record the index
 * counts as dead may have been killed by a write not yet durable.
 *
 * @module
 */
import {
  FRAME_HEADER_BYTES,
  type Item,
  ITEM_CLEAN,
  ITEM_COMPACT,
  ITEM_ENTRIES,
  ITEM_HARD_STATE,
  ITEM_TRUNCATE,
  itemSize,
} from "./format.ts";
import type { Loc, Tombstone } from "./memtable.ts";
import type { Pipe, SegmentFile } from "./pipe.ts";
import type { HardState } from "../records.ts";

/** When and how much to collect. */
export interface GcPolicy {
  /** Rotate the active file past this size. */
  readonly segmentBytes: number;
  /** Copy live records out of the oldest files while the append queue is larger than this. */
  readonly purgeThresholdBytes: number;
  /** Copy out an old file whose live share is below this, whatever the queue's size. */
  readonly rewriteRatio: number;
  /** Squeeze the rewrite queue once it is larger than this and at least half dead. */
  readonly squeezeMinBytes: number;
  /** Bytes copied per frame (and read per batch). */
  readonly copyBatchBytes: number;
}

/** What a step did. */
export type GcStep = "deleted" | "rewritten" | "squeezed";

/** Counters of the collector's work. */
export interface GcStats {
  deletedFiles: number;
  rewrittenFiles: number;
  squeezes: number;
  copiedBytes: number;
}

/** State the collector keeps between steps. */
export class Collector {
  /**
   * Regions that may have records in the rewrite queue (a superset), with the highest entry
   * index copied there (-1 for none).
   */
  readonly rewriteRegions = new Map<number, number>();
  readonly stats: GcStats = { deletedFiles: 0, rewrittenFiles: 0, squeezes: 0, copiedBytes: 0 };

  /**
   * @param syncAppends makes every append written so far durable. Records are judged dead by
   * the index, which includes unsynced writes: what killed them must be durable before their
   * only copy goes.
   */
  constructor(
    readonly pipe: Pipe,
    readonly policy: GcPolicy,
    readonly syncAppends: () => Promise<void>,
  ) {
    for (const f of pipe.files.rewrite) {
      const stats = pipe.mem.file(f.id);
      for (const r of [...stats.regions, ...stats.tombstones.keys()]) {
        this.rewriteRegions.set(r, Number.MAX_SAFE_INTEGER);
      }
    }
  }

  /** What the next step would do, if anything. */
  next(): GcStep | undefined {
    const { pipe, policy } = this;
    const front = pipe.files.append[0];
    if (front && front !== pipe.active("append")) {
      const live = pipe.mem.liveBytes(front.id);
      if (live === 0 && !this.#needsCarry(front)) return "deleted";
      if (
        live === 0 || live < front.size * policy.rewriteRatio ||
        pipe.bytes("append") > policy.purgeThresholdBytes
      ) return "rewritten";
    }
    const rw = pipe.bytes("rewrite");
    if (
      pipe.files.rewrite.length > 0 && rw > policy.squeezeMinBytes &&
      pipe.liveBytes("rewrite") * 2 < rw
    ) return "squeezed";
    return undefined;
  }

  /** Does one step (see {@link next}); returns what it did. */
  async step(): Promise<GcStep | undefined> {
    const what = this.next();
    if (what === "deleted") {
      await this.syncAppends();
      await this.pipe.remove([this.pipe.files.append[0]!]);
      this.stats.deletedFiles++;
    } else if (what === "rewritten") {
      await this.#rewrite(this.pipe.files.append[0]!);
    } else if (what === "squeezed") {
      await this.#squeeze();
    }
    return what;
  }

  #needsCarry(f: SegmentFile): boolean {
    for (const [r, t] of this.pipe.mem.file(f.id).tombstones) {
      if (this.#carried(r, t).length > 0) return true;
    }
    return false;
  }

  /** What of a deleted file's tombstone for a region must go to the rewrite queue. */
  #carried(regionId: number, t: Tombstone): Item[] {
    const max = this.rewriteRegions.get(regionId);
    if (max === undefined) return [];
    if (t.clean) return [{ kind: ITEM_CLEAN, regionId }];
    const out: Item[] = [];
    if (t.truncate <= max) out.push({ kind: ITEM_TRUNCATE, regionId, index: t.truncate });
    if (t.compact > 0) out.push({ kind: ITEM_COMPACT, regionId, index: t.compact });
    return out;
  }

  /** Copies the live records of the oldest append file to the rewrite queue, then deletes it. */
  async #rewrite(front: SegmentFile): Promise<void> {
    const { pipe } = this;
    const stats = pipe.mem.file(front.id);
    const regions = [...new Set([...stats.regions, ...stats.tombstones.keys()])].sort((a, b) =>
      a - b
    );
    const sources: Source[] = [];
    for (const regionId of regions) {
      const t = stats.tombstones.get(regionId);
      if (t) { for (const item of this.#carried(regionId, t)) sources.push({ item }); }
      for (const run of pipe.mem.entriesIn(regionId, front.id)) {
        sources.push({ regionId, first: run.first, locs: run.locs });
      }
      const hs = pipe.mem.hardState(regionId);
      if (hs && pipe.mem.hardStateFile(regionId) === front.id) {
        sources.push({ item: { kind: ITEM_HARD_STATE, regionId, hs } });
      }
    }
    await this.#copy(sources, front.id, await this.#rewriteTarget());
    await this.syncAppends();
    if (pipe.mem.liveBytes(front.id) !== 0) {
      throw new Error(
        `raft log GC: ${front.name} still has ${pipe.mem.liveBytes(front.id)} live bytes ` +
          `after its records were copied`,
      );
    }
    await pipe.remove([front]);
    this.stats.rewrittenFiles++;
  }

  async #rewriteTarget(): Promise<SegmentFile> {
    const active = this.pipe.active("rewrite");
    if (active && active.size < this.policy.segmentBytes) return active;
    return await this.pipe.rotate("rewrite");
  }

  /** Rewrites every live record of the rewrite queue into a new base file. */
  async #squeeze(): Promise<void> {
    const { pipe } = this;
    const old = [...pipe.files.rewrite];
    const ids = new Set(old.map((f) => f.id));
    const regions = new Set<number>();
    for (const f of old) for (const r of pipe.mem.file(f.id).regions) regions.add(r);
    const sources: Source[] = [];
    for (const regionId of [...regions].sort((a, b) => a - b)) {
      const bounds = pipe.mem.bounds(regionId);
      if (bounds) {
        // The region's entries in the rewrite queue are a prefix of its log.
        const { locs } = pipe.mem.locs(regionId, bounds.first, bounds.last + 1);
        let n = 0;
        while (n < locs.length && locs[n] && ids.has(locs[n]!.file)) n++;
        if (n > 0) {
          sources.push({ regionId, first: bounds.first, locs: locs.slice(0, n) as Loc[] });
        }
      }
      const hs = pipe.mem.hardState(regionId);
      if (hs && ids.has(pipe.mem.hardStateFile(regionId))) {
        sources.push({ item: { kind: ITEM_HARD_STATE, regionId, hs } });
      }
    }
    const made = await pipe.create("rewrite", { base: true, tmp: true });
    const tmpName = made.name;
    const target = pipe.add({ ...made, name: tmpName });
    this.rewriteRegions.clear();
    await this.#copy(sources, undefined, target);
    await this.syncAppends();
    const finalName = tmpName.slice(0, -".tmp".length);
    await pipe.fs.rename(tmpName, finalName);
    await pipe.fs.syncDir();
    target.name = finalName;
    for (const f of old) {
      if (pipe.mem.liveBytes(f.id) !== 0) {
        throw new Error(
          `raft log GC: ${f.name} still has ${pipe.mem.liveBytes(f.id)} live bytes after the ` +
            `rewrite queue was squeezed`,
        );
      }
    }
    await pipe.remove(old);
    this.stats.squeezes++;
  }

  /**
   * Writes `sources` to `target` in frames of about `copyBatchBytes`, syncs, then points the
   * index at the copies wherever it still points at the originals.
   */
  async #copy(sources: readonly Source[], from: number | undefined, target: SegmentFile) {
    const { pipe, policy } = this;
    const moves: (() => void)[] = [];
    let frame: Item[] = [];
    let frameBytes = FRAME_HEADER_BYTES;
    const flush = async () => {
      if (frame.length === 0) return;
      const [offsets] = await pipe.writeFrames(target, [frame]);
      for (const [k, item] of frame.entries()) {
        const at = offsets![k];
        if (item.kind === ITEM_ENTRIES) {
          const origin = origins.get(item)!;
          item.entries.forEach((e, n) => {
            const to: Loc = { file: target.id, offset: at![n]!, length: e.length };
            moves.push(() =>
              pipe.mem.relocateEntry(item.regionId, item.firstIndex + n, origin[n]!, to)
            );
          });
        } else if (item.kind === ITEM_HARD_STATE) {
          const hs: HardState = item.hs;
          const was = hsOrigins.get(item)!;
          moves.push(() => pipe.mem.relocateHardState(item.regionId, hs, was, target.id));
        }
      }
      this.stats.copiedBytes += frameBytes;
      frame = [];
      frameBytes = FRAME_HEADER_BYTES;
    };
    const origins = new Map<Item, Loc[]>();
    const hsOrigins = new Map<Item, number>();
    const add = async (item: Item) => {
      const size = itemSize(item);
      if (frame.length > 0 && frameBytes + size > policy.copyBatchBytes) await flush();
      frame.push(item);
      frameBytes += size;
      const max = item.kind === ITEM_ENTRIES ? item.firstIndex + item.entries.length - 1 : -1;
      this.rewriteRegions.set(
        item.regionId,
        Math.max(this.rewriteRegions.get(item.regionId) ?? -1, max),
      );
    };
    for (const s of sources) {
      if ("item" in s) {
        if (s.item.kind === ITEM_HARD_STATE) {
          hsOrigins.set(s.item, from ?? pipe.mem.hardStateFile(s.item.regionId));
        }
        await add(s.item);
        continue;
      }
      // Entries go in runs of about copyBatchBytes, each read and written as one item.
      for (let i = 0; i < s.locs.length;) {
        let j = i;
        let bytes = 0;
        while (
          j < s.locs.length && (j === i || bytes + s.locs[j]!.length < policy.copyBatchBytes)
        ) {
          bytes += s.locs[j]!.length;
          j++;
        }
        const locs = s.locs.slice(i, j);
        const entries = await pipe.read(locs);
        const item: Item = {
          kind: ITEM_ENTRIES,
          regionId: s.regionId,
          firstIndex: s.first + i,
          entries,
        };
        origins.set(item, locs);
        await add(item);
        i = j;
      }
    }
    await flush();
    await target.handle.datasync();
    for (const move of moves) move();
  }
}

/** A record to copy: an item as is, or entries to read from where they are. */
type Source =
  | { readonly item: Item }
  | { readonly regionId: number; readonly first: number; readonly locs: readonly Loc[] };
