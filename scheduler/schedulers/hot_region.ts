/**
 * hot-region (PD's `hot_region.go`, simplified): spreads the load of hot regions over the
 * stores, from the read and write rates leaders report (hot_stats.ts).
 *
 * A store's hot load, per kind of traffic, is the sum of the byte rates of the hot regions it
 * leads (its leader load: the leader serves every read and proposes every write) and, for
 * writes, of the hot regions it holds any peer of (its peer load: every peer applies every
 * write). Running operators count where they will leave their region. Each run looks at writes
 * and reads in turn (the other first on the next run) and makes at most one operator:
 *
 * 1. transfer a hot region's leadership from the store with the most leader load to a follower
 *    store;
 * 2. for writes, failing that, move a hot peer from the store with the most peer load to a store
 *    without a peer of the region;
 * 3. failing that, move a hot leader's peer (and with it the leadership) to a store without a
 *    peer of the region, when its followers' stores are as loaded as its leader's.
 *
 * Anti-flap rules, as for the balancers: a move from source S to target T of a region with load
 * r happens only if S's load exceeds T's by more than r × (1 + {@link HOT_TOLERANCE}) (so the
 * gap narrows by at least r / 2 and the move is never undone while rates hold still) and S is above the
 * average; of the moves allowed, the one leaving the gap closest to zero wins. Only regions hot
 * in at least {@link MIN_HOT_DEGREE} reports in a row, averaged over at least
 * {@link MIN_HOT_SPAN_MS}, are moved (a burst is not a hot spot), none
 * with a running operator or one that finished within {@link HOT_REGION_COOLDOWN_MS}, and peer
 * moves only for regions with exactly `max-replicas` healthy voters. Sources and targets are
 * `Up` stores only (never Disconnected, Down, Offline or Tombstone), and leadership never goes to
 * a follower its leader reports pending or down. Its operators (kind `hot`) have the balancers'
 * priority: repair replaces them.
 *
 * @module
 */
import { createMovePeerOperator, createTransferLeaderOperator } from "../operator/builder.ts";
import type { Operator } from "../operator/operator.ts";
import { mayLead } from "../region_info.ts";
import { isHot, type RegionRates } from "../hot_stats.ts";
import {
  type ClusterView,
  type HotRegionView,
  isSuitable,
  type Scheduler,
  type StoreView,
} from "./view.ts";

/** The scheduler's registered name. */
export const HOT_REGION_NAME = "hot-region-scheduler";
/** A region is moved only after this many hot reports in a row... */
export const MIN_HOT_DEGREE = 2;
/** ... covering at least this long (its rates average that much). */
export const MIN_HOT_SPAN_MS = 2_000;
/** Nor within this long of the end of its last operator. */
export const HOT_REGION_COOLDOWN_MS = 10_000;
/**
 * A move needs a gap between source and target larger than the region's load times (1 + this):
 * the gap then narrows by a good part of the load, never just swaps which store is higher.
 */
export const HOT_TOLERANCE = 0.25;

/** The kind of traffic balanced. */
export type HotKind = "write" | "read";

/** Creates the hot-region scheduler (it alternates writes and reads between runs). */
export function hotRegionScheduler(): Scheduler {
  let turn = 0;
  return {
    name: HOT_REGION_NAME,
    kind: "hot",
    schedule(view) {
      const kinds: HotKind[] = turn++ % 2 === 0 ? ["write", "read"] : ["read", "write"];
      for (const k of kinds) {
        const op = scheduleHotRegion(view, k);
        if (op) return op;
      }
      return null;
    },
  };
}

/** A region's byte rate for `kind`. */
export function hotRate(r: RegionRates, kind: HotKind): number {
  return kind === "write" ? r.writeBytesPerSec : r.readBytesPerSec;
}

/** Per-store hot loads of `kind`: as leader, and (for writes) as any peer. */
export interface HotLoads {
  readonly leader: Map<number, number>;
  readonly peer: Map<number, number>;
  /** The regions counted (hot for `kind`). */
  readonly regions: readonly HotRegionView[];
}

/** Every store's hot load of `kind` (stores with none are absent). */
export function hotLoads(view: ClusterView, kind: HotKind): HotLoads {
  const leader = new Map<number, number>();
  const peer = new Map<number, number>();
  const regions: HotRegionView[] = [];
  const add = (m: Map<number, number>, id: number, v: number) => m.set(id, (m.get(id) ?? 0) + v);
  for (const h of view.hotRegions()) {
    if (!isHot(h.rates, kind)) continue;
    regions.push(h);
    const rate = hotRate(h.rates, kind);
    if (h.leaderStoreId !== undefined) add(leader, h.leaderStoreId, rate);
    if (kind === "write") { for (const s of h.storeIds) add(peer, s, rate); }
  }
  return { leader, peer, regions };
}

/** Whether `h` may be moved now. */
function movable(view: ClusterView, h: HotRegionView): boolean {
  if (h.rates.degree < MIN_HOT_DEGREE || h.rates.spanMs < MIN_HOT_SPAN_MS) return false;
  if (view.hasOperator(h.region.meta.id)) return false;
  const since = view.sinceLastOperator(h.region.meta.id);
  return since === undefined || since >= HOT_REGION_COOLDOWN_MS;
}

/** Whether a peer of `h` may move: exactly max-replicas voters, none pending or down. */
function healthyForMove(view: ClusterView, h: HotRegionView): boolean {
  const r = h.region;
  return r.meta.peers.length === view.maxReplicas &&
    r.meta.peers.every((p) => p.role === "Voter") &&
    r.pendingPeers.length === 0 && r.downPeers.length === 0;
}

interface Move {
  readonly h: HotRegionView;
  readonly source: number;
  readonly target: number;
  /** |gap - 2r| after the move: smaller is better. */
  readonly score: number;
}

/**
 * The best move of load `r` from `source` among `targets`, by `loads`; null if none narrows the
 * gap enough. `also` may veto a target (a second load that must not get worse).
 */
function bestTarget(
  h: HotRegionView,
  r: number,
  source: number,
  targets: readonly number[],
  loads: Map<number, number>,
  best: Move | null,
  also: (target: number) => boolean = () => true,
): Move | null {
  const from = loads.get(source) ?? 0;
  for (const t of targets) {
    const gap = from - (loads.get(t) ?? 0);
    if (gap <= r * (1 + HOT_TOLERANCE) || !also(t)) continue;
    const score = Math.abs(gap - 2 * r);
    if (!best || score < best.score) best = { h, source, target: t, score };
  }
  return best;
}

/** Whether moving load `r` from `a` to `b` keeps `loads` from getting worse between them. */
function narrows(loads: Map<number, number>, a: number, b: number, r: number): boolean {
  return (loads.get(a) ?? 0) - (loads.get(b) ?? 0) > r * (1 + HOT_TOLERANCE);
}

/** Suitable stores sorted by `loads`, most first, keeping only those above the average. */
function sourcesAboveAverage(stores: readonly StoreView[], loads: Map<number, number>): number[] {
  const total = stores.reduce((n, s) => n + (loads.get(s.id) ?? 0), 0);
  const avg = total / stores.length;
  return stores.map((s) => s.id).filter((id) => (loads.get(id) ?? 0) > avg)
    .sort((a, b) => (loads.get(b) ?? 0) - (loads.get(a) ?? 0));
}

/** A move the scheduler would make: what, of which region, from where to where. */
export interface HotMove extends Move {
  readonly kind: HotKind;
  readonly action: "transfer-leader" | "move-peer" | "move-leader";
  readonly desc: string;
}

/** One decision for `kind` of traffic: an operator, or null if the load is even enough. */
export function scheduleHotRegion(view: ClusterView, kind: HotKind): Operator | null {
  const m = planHotRegion(view, kind);
  if (!m) return null;
  const r = m.h.region;
  return m.action === "transfer-leader"
    ? createTransferLeaderOperator(m.desc, "hot", r, m.target, view.build)
    : createMovePeerOperator(m.desc, "hot", r, m.source, m.target, view.build);
}

/** The move {@link scheduleHotRegion} would make (building nothing). */
export function planHotRegion(view: ClusterView, kind: HotKind): HotMove | null {
  const stores = view.stores().filter(isSuitable);
  if (stores.length < 2) return null;
  const up = new Set(stores.map((s) => s.id));
  const loads = hotLoads(view, kind);
  if (loads.regions.length === 0) return null;
  const candidates = loads.regions.filter((h) => movable(view, h));

  // 1. Leadership to a follower.
  for (const source of sourcesAboveAverage(stores, loads.leader)) {
    let best: Move | null = null;
    for (const h of candidates) {
      if (h.leaderStoreId !== source || h.region.leader?.storeId !== source) continue;
      const targets = h.region.meta.peers.filter((p) =>
        p.storeId !== source && up.has(p.storeId) && mayLead(h.region, p)
      ).map((p) => p.storeId);
      best = bestTarget(h, hotRate(h.rates, kind), source, targets, loads.leader, best);
    }
    if (best) {
      return { ...best, kind, action: "transfer-leader", desc: `transfer-hot-${kind}-leader` };
    }
  }

  const free = (h: HotRegionView) =>
    stores.map((s) => s.id).filter((id) => !h.storeIds.includes(id));
  // 2. Writes: a peer from the store applying the most hot writes.
  if (kind === "write") {
    for (const source of sourcesAboveAverage(stores, loads.peer)) {
      let best: Move | null = null;
      for (const h of candidates) {
        if (!h.storeIds.includes(source) || !healthyForMove(view, h)) continue;
        const r = hotRate(h.rates, kind);
        // Moving the leader's peer moves leadership too: it must not unbalance leaders.
        const leads = h.leaderStoreId === source;
        best = bestTarget(
          h,
          r,
          source,
          free(h),
          loads.peer,
          best,
          (t) => !leads || (loads.leader.get(t) ?? 0) + r <= (loads.leader.get(source) ?? 0),
        );
      }
      if (best) return { ...best, kind, action: "move-peer", desc: `move-hot-${kind}-peer` };
    }
  }

  // 3. A leader's peer (with its leadership) to a store without the region.
  for (const source of sourcesAboveAverage(stores, loads.leader)) {
    let best: Move | null = null;
    for (const h of candidates) {
      if (h.leaderStoreId !== source || !healthyForMove(view, h)) continue;
      const r = hotRate(h.rates, kind);
      best = bestTarget(
        h,
        r,
        source,
        free(h),
        loads.leader,
        best,
        (t) => kind === "read" || narrows(loads.peer, source, t, r),
      );
    }
    if (best) return { ...best, kind, action: "move-leader", desc: `move-hot-${kind}-leader` };
  }
  return null;
}

/** Rates as people read them: `12.3 KiB/s`. */
function rate(bytesPerSec: number): string {
  if (bytesPerSec >= 1024 * 1024) return `${(bytesPerSec / 1024 / 1024).toFixed(1)} MiB/s`;
  if (bytesPerSec >= 1024) return `${(bytesPerSec / 1024).toFixed(1)} KiB/s`;
  return `${Math.round(bytesPerSec)} B/s`;
}

/**
 * Why the hot-region scheduler does what it does (for `/diagnose`): per kind of traffic, the
 * hot regions, the stores' loads, and what holds the next move back.
 */
export function explainHotRegion(view: ClusterView): string[] {
  const stores = view.stores().filter(isSuitable);
  const out: string[] = [];
  for (const kind of ["write", "read"] as const) {
    const loads = hotLoads(view, kind);
    if (loads.regions.length === 0) {
      out.push(`${kind}: no hot regions`);
      continue;
    }
    const shown = stores.map((s) => `store ${s.id} ${rate(loads.leader.get(s.id) ?? 0)}`);
    const waiting = loads.regions.filter((h) => !movable(view, h)).length;
    const op = planHotRegion(view, kind);
    out.push(
      `${kind}: ${loads.regions.length} hot regions; leader load ${shown.join(", ")}` +
        (waiting
          ? `; ${waiting} not movable yet (just hot, moving, or moved within ` +
            `${HOT_REGION_COOLDOWN_MS / 1000} s)`
          : "") +
        (op
          ? `; next: ${op.desc} of region ${op.h.region.meta.id} from store ${op.source} to ${op.target}`
          : stores.length < 2
          ? "; fewer than two Up stores"
          : "; even enough: no move narrows a gap by more than the region's own load"),
    );
  }
  return out;
}
