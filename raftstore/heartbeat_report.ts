/**
 * Which region heartbeats a store sends: the ones that say something new.
 *
 * Reporting every led region every round makes the scheduler's load grow with the number of
 * regions, not with what happens to them. Instead, each round ({@link ReportPlan.round}) looks at
 * a few regions only — leaders that are awake (only they can change), leaders with a peer on a
 * store known down (their down-peer list grows with time), and regions waiting for an operator
 * step — and sends a heartbeat only if it differs *materially* from the last one sent: leader,
 * epoch, peers, pending or down peers, or size or key count by a tenth (and at least
 * {@link MIN_SIZE_CHANGE} bytes or {@link MIN_KEYS_CHANGE} keys). Changes the store signals
 * itself (a new leader, a new epoch) are sent at once by the worker. And every region is sent
 * once per refresh period regardless, a slice per round, so the scheduler's view heals from
 * anything missed (a lost request, a scheduler restart).
 *
 * @module
 */
import type { RegionHeartbeat } from "../proto/pdpb.ts";

/** Size and key-count changes smaller than these are never material on their own. */
export const MIN_SIZE_CHANGE = 1024 * 1024;
export const MIN_KEYS_CHANGE = 1024;

/** What a region's last report said, in the terms that decide whether a new one is news. */
interface Summary {
  readonly shape: string;
  readonly size: number;
  readonly keys: number;
}

function shapeOf(hb: RegionHeartbeat): string {
  const r = hb.region;
  const peers = (ps: readonly { id: number; storeId: number; role?: string }[]) =>
    ps.map((p) => `${p.id}@${p.storeId}${p.role === "Learner" ? "L" : ""}`).sort().join(",");
  return `${r.epoch.confVer}.${r.epoch.version}|${hb.leader?.id ?? 0}|${peers(r.peers)}|` +
    `${peers(hb.pendingPeers)}|${peers(hb.downPeers.map((d) => d.peer))}`;
}

function moved(before: number, now: number, floor: number): boolean {
  return Math.abs(now - before) >= Math.max(floor, before / 10);
}

/** Whether `hb` says something the last report (if any) did not. */
export function isMaterialChange(last: Summary | undefined, hb: RegionHeartbeat): boolean {
  return last === undefined || last.shape !== shapeOf(hb) ||
    moved(last.size, hb.approximateSize, MIN_SIZE_CHANGE) ||
    moved(last.keys, hb.approximateKeys, MIN_KEYS_CHANGE);
}

/** One store's record of what it reported, and which regions each round looks at. */
export class ReportPlan {
  readonly #last = new Map<number, Summary>();
  /** Regions whose last answer carried an operator step: reported every round until done. */
  readonly #stepPending = new Set<number>();
  /** Region IDs of the current refresh cycle, and how far this cycle got. */
  #cycle: number[] = [];
  #pos = 0;

  constructor(
    /** Every region is reported at least once per this period. */
    readonly refreshMs: number,
    /** The worker's round interval. */
    readonly roundMs: number,
  ) {}

  /**
   * The regions to look at this round. `forced` ones are sent whatever they say (refresh
   * slice, pending steps); `changed` ones only if {@link isMaterialChange}.
   */
  round(
    ledRegions: () => readonly number[],
    watched: Iterable<number>,
  ): { forced: Set<number>; watched: Set<number> } {
    if (this.#pos >= this.#cycle.length) {
      this.#cycle = [...ledRegions()];
      this.#pos = 0;
    }
    const per = Math.max(1, Math.ceil(this.#cycle.length * this.roundMs / this.refreshMs));
    const forced = new Set(this.#cycle.slice(this.#pos, this.#pos + per));
    this.#pos += per;
    for (const id of this.#stepPending) forced.add(id);
    const w = new Set<number>();
    for (const id of watched) if (!forced.has(id)) w.add(id);
    return { forced, watched: w };
  }

  /** Whether a heartbeat for a watched region is worth sending. */
  isNews(hb: RegionHeartbeat): boolean {
    return isMaterialChange(this.#last.get(hb.region.id), hb);
  }

  /** `hbs` reached the scheduler; `withStep` are the regions whose answer carried a step. */
  sent(hbs: readonly RegionHeartbeat[], withStep: ReadonlySet<number>): void {
    for (const hb of hbs) {
      const id = hb.region.id;
      this.#last.set(id, {
        shape: shapeOf(hb),
        size: hb.approximateSize,
        keys: hb.approximateKeys,
      });
      if (withStep.has(id)) this.#stepPending.add(id);
      else this.#stepPending.delete(id);
    }
  }

  /** A step arrived for a region some other way (pushed): report it every round until done. */
  expectStep(regionId: number): void {
    this.#stepPending.add(regionId);
  }

  /** Forgets regions this store no longer leads (keeps the maps bounded). */
  retain(isLed: (regionId: number) => boolean): void {
    for (const id of this.#last.keys()) if (!isLed(id)) this.#last.delete(id);
    for (const id of this.#stepPending) if (!isLed(id)) this.#stepPending.delete(id);
  }
}
