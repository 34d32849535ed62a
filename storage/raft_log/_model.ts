/**
 * Test support: a plain model of what the Raft log engine must hold after a sequence of
 * batches, a seeded generator of realistic batches, and a comparison of an engine with the
 * model.
 *
 * @module
 */
import type { HardState } from "../records.ts";
// Test support only: the log engine itself imports nothing outside storage/.
import { seededRandom } from "../../raft/logger.ts";
import { type LogBatch, RaftLogEngine } from "./engine.ts";
import {
  type Item,
  ITEM_CLEAN,
  ITEM_COMPACT,
  ITEM_ENTRIES,
  ITEM_HARD_STATE,
  ITEM_TRUNCATE,
} from "./format.ts";

/** One region as the model sees it: entries by index, and its hard state. */
interface ModelRegion {
  entries: Map<number, Uint8Array>;
  hs?: HardState;
}

/** The state the engine must show after a sequence of batches (the rules of memtable.ts). */
export class Model {
  readonly regions = new Map<number, ModelRegion>();

  apply(items: readonly Item[]): void {
    for (const item of items) {
      const r: ModelRegion = this.regions.get(item.regionId) ?? { entries: new Map() };
      this.regions.set(item.regionId, r);
      const drop = (keep: (i: number) => boolean) => {
        for (const i of [...r.entries.keys()]) if (!keep(i)) r.entries.delete(i);
      };
      switch (item.kind) {
        case ITEM_ENTRIES:
          drop((i) => i < item.firstIndex);
          item.entries.forEach((e, k) => r.entries.set(item.firstIndex + k, e));
          break;
        case ITEM_TRUNCATE:
          drop((i) => i < item.index);
          break;
        case ITEM_HARD_STATE:
          r.hs = item.hs;
          break;
        case ITEM_COMPACT:
          drop((i) => i > item.index);
          break;
        case ITEM_CLEAN:
          this.regions.delete(item.regionId);
          continue;
      }
      if (r.entries.size === 0 && r.hs === undefined) this.regions.delete(item.regionId);
    }
  }

  /** A readable dump, for comparisons and failure messages. */
  dump(): string {
    const out: string[] = [];
    for (const id of [...this.regions.keys()].sort((a, b) => a - b)) {
      const r = this.regions.get(id)!;
      const indexes = [...r.entries.keys()].sort((a, b) => a - b);
      const first = indexes[0] ?? 0;
      const last = indexes.at(-1) ?? -1;
      if (indexes.length !== last - first + 1) throw new Error(`model of region ${id} has a hole`);
      out.push(describe(id, first, indexes.map((i) => r.entries.get(i)!), r.hs));
    }
    return out.join("\n");
  }
}

function describe(id: number, first: number, entries: Uint8Array[], hs?: HardState): string {
  const e = entries.map((x) => `${x.length}:${x[0] ?? "-"}`).join(",");
  const h = hs ? `${hs.term}/${hs.vote}/${hs.commit}` : "none";
  return entries.length > 0
    ? `r${id} [${first}..${first + entries.length - 1}] ${e} hs ${h}`
    : `r${id} [] hs ${h}`;
}

/** The engine's state in the {@link Model.dump} format (reads every entry). */
export async function dumpEngine(engine: RaftLogEngine): Promise<string> {
  const out: string[] = [];
  for (const id of engine.regionIds()) {
    const b = engine.bounds(id);
    const entries = b ? await engine.entries(id, b.first, b.last + 1) : [];
    out.push(describe(id, b?.first ?? 0, entries, engine.hardState(id)));
  }
  return out.join("\n");
}

/**
 * Generates batches the way a store writes them: regions appending at their end, now and then
 * a conflicting append below it, hard states, compactions, removals and re-creations.
 */
export class Workload {
  readonly #random: () => number;
  readonly #last = new Map<number, number>();
  readonly #first = new Map<number, number>();
  #stamp = 0;

  constructor(seed: number, readonly regions = 6, readonly maxEntryBytes = 200) {
    this.#random = seededRandom(seed);
  }

  #int(n: number): number {
    return Math.floor(this.#random() * n);
  }

  #entry(): Uint8Array {
    const e = new Uint8Array(this.#int(this.maxEntryBytes + 1));
    e.fill(++this.#stamp & 0xff);
    if (e.length > 0) e[0] = this.#stamp & 0xff;
    return e;
  }

  /** Fills `batch` with a random mix of items for a few regions; returns them. */
  fill(batch: LogBatch): Item[] {
    const regions = 1 + this.#int(3);
    for (let k = 0; k < regions; k++) {
      const id = 1 + this.#int(this.regions);
      const last = this.#last.get(id) ?? 5;
      const first = this.#first.get(id) ?? 6;
      const roll = this.#random();
      if (roll < 0.6) {
        // Append at the end, or (sometimes) over a conflicting suffix.
        const from = this.#random() < 0.15 && last >= first
          ? first + this.#int(last - first + 1)
          : last + 1;
        const n = 1 + this.#int(4);
        batch.append(id, from, Array.from({ length: n }, () => this.#entry()));
        this.#last.set(id, from + n - 1);
        if (!this.#first.has(id)) this.#first.set(id, from);
      } else if (roll < 0.8) {
        batch.putHardState(id, { term: this.#int(9) + 1, vote: this.#int(3), commit: last });
      } else if (roll < 0.95) {
        if (last >= first) {
          const to = first + this.#int(last - first + 1);
          batch.compact(id, to);
          this.#first.set(id, to + 1);
        }
      } else {
        batch.clean(id);
        this.#first.delete(id);
        this.#last.set(id, last + 10); // a new incarnation starts above (after a snapshot)
        this.#first.set(id, last + 11);
      }
    }
    return batch.items;
  }
}

/** A fresh engine on `fs` reopened, its dump, closed. */
export async function reopenDump(
  open: () => Promise<RaftLogEngine>,
): Promise<{ dump: string; engine: RaftLogEngine }> {
  const engine = await open();
  return { dump: await dumpEngine(engine), engine };
}
