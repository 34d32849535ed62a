/**
 * Moving a data dir of an earlier version, which kept raft entries and hard states in Deno KV,
 * to the Raft log engine. Runs when a store opens, before any peer starts; crash-safe and
 * repeatable, marked in Deno KV under `["raftlog"]`:
 *
 * 1. (no mark) every region's hard state and live entries — the contiguous run after its
 *    truncated index — are written to the log engine, each region as one batch that first
 *    cleans it, so repeating the step after a crash writes the same; then the log is synced and
 *    the mark set to `copied`;
 * 2. (`copied`) the old entries and hard states are deleted from Deno KV, then the mark is set
 *    to `done`. Nothing writes raft state to Deno KV any more, so nothing can be lost by
 *    deleting it after the copy is durable.
 *
 * Once the mark is set, Deno KV's regions depend on the log: {@link raftLogMoved} tells the
 * store to refuse a data dir whose log has gone rather than start without its votes and
 * acknowledged entries. A mark this version does not know is refused too.
 *
 * @module
 */
import type { KvEngine } from "../engine.ts";
import { Keys } from "../keys.ts";
import { CorruptionError } from "../records.ts";
import type { RaftLogEngine } from "./engine.ts";

const COPIED = new TextEncoder().encode("copied");
const DONE = new TextEncoder().encode("done");
const PAGE = 512;

/** What a migration did. */
export interface MigrationReport {
  regions: number;
  entries: number;
  /** Whether anything was left to do. */
  ran: boolean;
}

function same(a: Uint8Array | null, b: Uint8Array): boolean {
  return a !== null && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A data dir this version cannot open as it is (see the module comment). */
export class RaftLogMissingError extends Error {
  override name = "RaftLogMissingError";
}

async function readMark(kv: KvEngine): Promise<Uint8Array | null> {
  const mark = await kv.getRecord(Keys.raftLogMoved());
  if (mark !== null && !same(mark, COPIED) && !same(mark, DONE)) {
    throw new RaftLogMissingError(
      `Deno KV marks its raft logs as "${new TextDecoder().decode(mark)}", which this version ` +
        `does not know: was the data dir written by a newer version?`,
    );
  }
  return mark;
}

/**
 * Whether Deno KV's raft logs were moved to the log engine (in part or in full), so that the
 * log must be there: opening the store without it would forget Raft votes and acknowledged
 * entries. Throws {@link RaftLogMissingError} on a mark this version does not know.
 */
export async function raftLogMoved(kv: KvEngine): Promise<boolean> {
  return await readMark(kv) !== null;
}

/** Moves raft state from Deno KV to the log engine, if not done yet (see the module comment). */
export async function migrateRaftLog(kv: KvEngine, log: RaftLogEngine): Promise<MigrationReport> {
  const report: MigrationReport = { regions: 0, entries: 0, ran: false };
  const mark = await readMark(kv);
  if (same(mark, DONE)) return report;
  report.ran = true;
  const regions = await kv.regionIds();
  if (!same(mark, COPIED)) {
    for (const regionId of regions) {
      const hs = await kv.hardState(regionId);
      const apply = await kv.applyState(regionId);
      const bounds = await kv.raftLogBounds(regionId);
      if (!hs && !bounds) continue;
      const first = apply ? apply.truncatedIndex + 1 : (bounds?.first ?? 0);
      const entries = bounds ? await contiguousRun(kv, regionId, first, bounds.last) : [];
      const batch = log.batch().clean(regionId).append(regionId, first, entries);
      if (hs) batch.putHardState(regionId, hs);
      await log.write(batch, { sync: false });
      report.regions++;
      report.entries += entries.length;
    }
    await log.sync();
    await kv.write(kv.batch().put(Keys.raftLogMoved(), COPIED));
  }
  for (const regionId of regions) {
    await kv.deleteRaftLog(regionId, 0);
    await kv.write(kv.batch().delete(Keys.hardState(regionId)));
  }
  await kv.write(kv.batch().put(Keys.raftLogMoved(), DONE));
  return report;
}

/**
 * The entries `first ..= last` as stored, up to the first one missing: an earlier version
 * could leave a fragment past the end of the log after a crash, and ignored it.
 */
async function contiguousRun(
  kv: KvEngine,
  regionId: number,
  first: number,
  last: number,
): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let lo = first; lo <= last; lo = first + out.length) {
    let page: Uint8Array[];
    try {
      page = await kv.raftEntries(regionId, lo, Math.min(last + 1, lo + PAGE));
    } catch (e) {
      if (!(e instanceof CorruptionError)) throw e;
      // A hole inside this page: take what comes before it, one entry at a time.
      page = [];
      for (let i = lo; i <= last; i++) {
        const one = await kv.raftEntries(regionId, i, i + 1);
        if (one.length === 0) break;
        page.push(one[0]!);
      }
      out.push(...page);
      return out;
    }
    out.push(...page);
    if (page.length < Math.min(last + 1, lo + PAGE) - lo) break;
  }
  return out;
}
