/**
 * Carries out faults on a running cluster, one at a time: inject, hold, heal, then a quiet
 * period before the next. Every fault is logged with its times (ms since the run started).
 *
 * While a fault holds and some stores are expected to keep a quorum (the majority side of a
 * partition, the stores left when one is paused or killed), a monitor asks those stores'
 * `/debug/regions` every 100 ms and records when every region with a quorum of voters among
 * them first had a leader among them (`leaderReadyMs`).
 *
 * @module
 */
import { type Admin, type RegionView, storePeers } from "./admin.ts";
import {
  bridgeShape,
  type FaultKind,
  isolateShape,
  KindSequence,
  minoritySize,
  type PartitionShape,
  shuffle,
  splitShape,
} from "./faults.ts";
import type { Http } from "./http.ts";
import type { Net } from "./netns.ts";
import type { Servers } from "./procs.ts";

/** One injected fault, as the report shows it. */
export interface FaultEvent {
  readonly kind: FaultKind;
  description: string;
  /**
   * When it took effect (ms since the run started): the cut in place, the signal delivered,
   * the process gone, the operator submitted.
   */
  start: number;
  /** When it was healed (partition removed, process resumed or restarted, operator ended). */
  heal?: number;
  /** When its quiet period ended. */
  end?: number;
  /** Stores expected to keep serving during the fault. */
  live?: readonly string[];
  /** Ms after `start` until every region with a quorum in `live` had a leader there. */
  leaderReadyMs?: number | null;
  /** How many regions had a voter quorum in `live` (when last seen); 0: none to elect. */
  quorumRegions?: number;
  /**
   * Regions as the scheduler saw them just before: `r1[s1*,s2,s3]` (`*` the leader, `~` a
   * learner); empty if the scheduler did not answer.
   */
  regions?: string;
  /** The fault could not be carried out as planned. */
  error?: string;
  /** The cluster could not be brought back (e.g. a killed store did not restart). */
  fatal?: boolean;
}

/** What the injector works with. */
export interface InjectContext {
  readonly cluster: Servers;
  readonly net: Net;
  /** The scheduler's admin API; absent for a system without one (etcd). */
  readonly admin?: Admin;
  readonly http: Http;
  readonly rand: () => number;
  readonly now: () => number;
  readonly log: (line: string) => void;
  /** The workload's keys (split points are chosen among them). */
  readonly keys: readonly string[];
  /** Watch `/debug/regions` for leaders while a fault holds (mrkv only). */
  readonly watchLeaders: boolean;
}

/** The fault schedule. */
export interface ScheduleOptions {
  readonly kinds: readonly FaultKind[];
  /** Clean workload before the first fault. */
  readonly leadInMs: number;
  /** How long a fault holds: drawn uniformly from [min, max]. */
  readonly holdMs: readonly [number, number];
  /** Clean workload after each heal. */
  readonly quietMs: number;
  /** No fault starts unless it can end (hold and quiet) by then. */
  readonly untilMs: number;
  /** Stop after this many faults (when set). */
  readonly count?: number;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted || ms <= 0) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });

/** Runs faults one at a time until the schedule's end; returns what it did. */
export class FaultInjector {
  readonly events: FaultEvent[] = [];
  /** The regions as the scheduler saw them when the current fault began. */
  #layout: RegionView[] = [];

  constructor(readonly ctx: InjectContext) {}

  async run(opts: ScheduleOptions, signal: AbortSignal): Promise<FaultEvent[]> {
    const { now } = this.ctx;
    await sleep(opts.leadInMs, signal);
    if (opts.kinds.length === 0) return this.events;
    const seq = new KindSequence(opts.kinds, this.ctx.rand);
    while (!signal.aborted && (opts.count === undefined || this.events.length < opts.count)) {
      const [lo, hi] = opts.holdMs;
      const hold = lo + Math.floor(this.ctx.rand() * (hi - lo + 1));
      if (now() + hold + opts.quietMs > opts.untilMs) break;
      const ev = await this.inject(seq.next(), hold, signal);
      await sleep(opts.quietMs, signal);
      ev.end = now();
      if (ev.fatal) break;
    }
    return this.events;
  }

  /** Injects one fault, holds it `holdMs` and heals it. */
  async inject(kind: FaultKind, holdMs: number, signal: AbortSignal): Promise<FaultEvent> {
    const ev: FaultEvent = { kind, description: "", start: this.ctx.now() };
    this.events.push(ev);
    this.#layout = await this.#regions();
    ev.regions = this.#layout.map((r) => this.#describeRegion(r)).join(" ");
    try {
      switch (kind) {
        case "isolate-store":
        case "split-sched-majority":
        case "split-sched-minority":
        case "bridge":
        case "isolate-scheduler":
          await this.#partition(ev, await this.#shape(kind), holdMs, signal);
          break;
        case "pause":
          await this.#pause(ev, holdMs, signal);
          break;
        case "kill":
          await this.#kill(ev, holdMs, signal);
          break;
        case "transfer-leader":
          await this.#transferLeader(ev, holdMs, signal);
          break;
        case "split-region":
          await this.#splitRegion(ev, holdMs, signal);
          break;
        case "merge-region":
          await this.#mergeRegion(ev, holdMs, signal);
          break;
        case "membership":
          await this.#membership(ev, holdMs, signal);
          break;
      }
    } catch (e) {
      ev.error = (e as Error).message;
      // Whatever happened, leave the network whole and every process running.
      await this.ctx.net.heal().catch(() => {});
      for (const s of this.ctx.cluster.stores) {
        if (!this.ctx.cluster.isServing(s)) {
          try {
            this.ctx.cluster.resume(s);
          } catch { /* not paused but down: reported as fatal below */ }
        }
      }
    }
    ev.heal ??= this.ctx.now();
    this.ctx.log(
      `chaos: ${fmt(ev.start)} ${kind}: ${ev.description}${
        ev.error ? ` [error: ${ev.error.split("\n")[0]}]` : ""
      } (healed ${fmt(ev.heal)})`,
    );
    return ev;
  }

  // ---- targets ----

  #describeRegion(r: RegionView): string {
    const peers = r.peers.map((p) =>
      `${this.ctx.cluster.nameOf(p.store_id) ?? `store${p.store_id}`}${
        p.store_id === r.leader?.store_id ? "*" : p.role === "Voter" ? "" : "~"
      }`
    );
    return `r${r.id}[${peers.join(",")}]`;
  }

  async #regions(): Promise<RegionView[]> {
    try {
      return await this.ctx.admin?.regions() ?? [];
    } catch {
      return [];
    }
  }

  /**
   * A random serving store; with probability `leaderOdds` the leader of a random region (if
   * the scheduler knows one), returned with that region.
   */
  async #pickStore(leaderOdds = 0.5): Promise<{ name: string; why: string; region?: RegionView }> {
    const { cluster, rand } = this.ctx;
    const serving = cluster.stores.filter((s) => cluster.isServing(s));
    if (serving.length === 0) throw new Error("no store is serving");
    if (rand() < leaderOdds) {
      const led = (await this.#regions()).filter((r) => r.leader);
      const r = led[Math.floor(rand() * led.length)];
      const name = r && cluster.nameOf(r.leader!.store_id);
      if (r && name && serving.includes(name)) {
        return { name, why: `${name} (leader of region ${r.id})`, region: r };
      }
    }
    return { name: serving[Math.floor(rand() * serving.length)]!, why: "" };
  }

  async #shape(kind: FaultKind): Promise<PartitionShape> {
    const { cluster, rand } = this.ctx;
    const stores = cluster.stores;
    switch (kind) {
      case "isolate-store":
        return isolateShape((await this.#pickStore()).name, cluster.names);
      case "isolate-scheduler":
        return isolateShape("sched", cluster.names);
      case "split-sched-majority":
      case "split-sched-minority": {
        // The scheduler-minority case always puts a leader with it: the old leader and the
        // scheduler cut off together is what a majority must survive without help.
        const first = await this.#pickStore(kind === "split-sched-minority" ? 1 : 0.5);
        // Fill the minority with stores holding no voter of a region the first store holds
        // (the one it leads, if it does), so the majority side keeps a quorum of that region
        // and must elect or keep a leader for it (5 stores).
        const id = cluster.storeId(first.name);
        const held = this.#layout.filter((r) => r.peers.some((p) => p.store_id === id));
        const region = first.region ?? held[Math.floor(rand() * held.length)];
        const voters = new Set(
          region?.peers.filter((p) => p.role === "Voter").map((p) => p.store_id) ?? [],
        );
        const isVoter = (s: string) => voters.has(cluster.storeId(s));
        const others = shuffle(stores.filter((s) => s !== first.name), rand)
          .sort((a, b) => Number(isVoter(a)) - Number(isVoter(b)));
        const minority = [first.name, ...others.slice(0, minoritySize(stores.length) - 1)];
        const hasScheduler = cluster.names.includes("sched");
        const shape = splitShape(
          stores,
          minority,
          !hasScheduler ? "none" : kind === "split-sched-minority" ? "minority" : "majority",
        );
        return first.why ? { ...shape, description: `${shape.description} (${first.why})` } : shape;
      }
      case "bridge": {
        const [bridge, ...rest] = shuffle(stores, rand);
        const half = Math.floor(rest.length / 2);
        return bridgeShape(
          bridge!,
          rest.slice(0, half),
          rest.slice(half),
          cluster.names.includes("sched"),
        );
      }
      default:
        throw new Error(`${kind} is not a partition`);
    }
  }

  // ---- faults ----

  async #partition(
    ev: FaultEvent,
    shape: PartitionShape,
    holdMs: number,
    signal: AbortSignal,
  ): Promise<void> {
    ev.description = shape.description;
    if (shape.live) ev.live = shape.live;
    await this.ctx.net.cut(shape.cuts);
    ev.start = this.ctx.now();
    await this.#hold(ev, holdMs, signal);
    await this.ctx.net.heal();
    ev.heal = this.ctx.now();
  }

  async #pause(ev: FaultEvent, holdMs: number, signal: AbortSignal): Promise<void> {
    const { name, why } = await this.#pickStore();
    ev.description = `SIGSTOP ${why || name}`;
    ev.live = this.ctx.cluster.stores.filter((s) => s !== name);
    this.ctx.cluster.pause(name);
    ev.start = this.ctx.now();
    try {
      await this.#hold(ev, holdMs, signal);
    } finally {
      this.ctx.cluster.resume(name);
    }
    ev.heal = this.ctx.now();
  }

  async #kill(ev: FaultEvent, holdMs: number, signal: AbortSignal): Promise<void> {
    const { name, why } = await this.#pickStore();
    ev.description = `kill -9 ${why || name}`;
    ev.live = this.ctx.cluster.stores.filter((s) => s !== name);
    await this.ctx.cluster.kill(name);
    ev.start = this.ctx.now();
    await this.#hold(ev, holdMs, signal);
    if (signal.aborted) {
      ev.description += ", not restarted (the run was stopped)";
      return;
    }
    const restartAt = this.ctx.now();
    try {
      await this.ctx.cluster.restart(name);
    } catch (e) {
      ev.fatal = true;
      throw new Error(`${name} did not restart: ${(e as Error).message}`);
    }
    ev.heal = this.ctx.now();
    ev.description += `, restarted in ${Math.round(ev.heal - restartAt)} ms`;
  }

  async #transferLeader(ev: FaultEvent, holdMs: number, signal: AbortSignal): Promise<void> {
    const { cluster, rand } = this.ctx;
    const admin = this.#admin();
    const led = (await admin.regions()).filter((r) => r.leader);
    const r = led[Math.floor(rand() * led.length)];
    if (!r) throw new Error("no region has a leader");
    const targets = r.peers.filter((p) => p.role === "Voter" && p.store_id !== r.leader!.store_id);
    const to = targets[Math.floor(rand() * targets.length)];
    if (!to) throw new Error(`region ${r.id} has no other voter`);
    const from = cluster.nameOf(r.leader!.store_id) ?? `store ${r.leader!.store_id}`;
    ev.description = `region ${r.id} leader ${from} -> ${cluster.nameOf(to.store_id)}`;
    await this.#operator(
      ev,
      r.id,
      { name: "transfer-leader", to_store_id: to.store_id },
      holdMs,
      signal,
    );
  }

  async #splitRegion(ev: FaultEvent, holdMs: number, signal: AbortSignal): Promise<void> {
    const { rand, keys } = this.ctx;
    const admin = this.#admin();
    for (const key of shuffle(keys, rand)) {
      const r = await admin.regionByKey(key);
      if (r.start_key === key) continue; // already a boundary
      ev.description = `region ${r.id} at "${key}"`;
      await this.#operator(ev, r.id, { name: "split-region", keys: [key] }, holdMs, signal);
      return;
    }
    throw new Error("every workload key is already a region boundary");
  }

  /**
   * Merges a region into its left-hand neighbour: two adjacent regions with a leader and peers
   * on the same stores (the merge then moves no replica). With none, a region is split first.
   */
  async #mergeRegion(ev: FaultEvent, holdMs: number, signal: AbortSignal): Promise<void> {
    let pair = mergeablePair(await this.#admin().regions(), this.ctx.rand);
    if (!pair) {
      await this.#splitRegion(ev, holdMs, signal);
      ev.description += "; then ";
      // The new half is listed once it has reported, with its leader.
      const deadline = this.ctx.now() + Math.max(holdMs * 3, 5_000);
      while (!pair && this.ctx.now() < deadline && !signal.aborted) {
        pair = mergeablePair(await this.#regions(), this.ctx.rand);
        if (!pair) await sleep(100, signal);
      }
      if (!pair) throw new Error("no two adjacent regions with peers on the same stores");
    }
    const [source, target] = pair;
    ev.description += `merge region ${source.id} into region ${target.id}`;
    await this.#operator(
      ev,
      source.id,
      {
        name: "merge-region",
        source_region_id: source.id,
        target_region_id: target.id,
      },
      holdMs,
      signal,
    );
  }

  async #membership(ev: FaultEvent, holdMs: number, signal: AbortSignal): Promise<void> {
    const { cluster, rand } = this.ctx;
    const admin = this.#admin();
    const regions = (await admin.regions()).filter((r) => r.leader);
    const r = regions[Math.floor(rand() * regions.length)];
    if (!r) throw new Error("no region has a leader");
    const holders = r.peers.map((p) => p.store_id);
    const followers = r.peers.filter((p) =>
      p.role === "Voter" && p.store_id !== r.leader!.store_id
    );
    const out = followers[Math.floor(rand() * followers.length)];
    if (!out) throw new Error(`region ${r.id} has no follower`);
    const free = cluster.stores.map((s) => cluster.storeId(s)).filter((id) =>
      !holders.includes(id)
    );
    const name = (id: number) => cluster.nameOf(id) ?? `store ${id}`;
    if (free.length > 0) {
      const to = free[Math.floor(rand() * free.length)]!;
      const target = holders.map((id) => (id === out.store_id ? to : id));
      ev.description = `transfer-region ${r.id}: ${name(out.store_id)} -> ${name(to)}`;
      await this.#operator(
        ev,
        r.id,
        { name: "transfer-region", to_store_ids: target },
        holdMs,
        signal,
      );
      return;
    }
    ev.description = `region ${r.id}: remove-peer on ${name(out.store_id)}, then add-peer back`;
    await this.#operator(ev, r.id, { name: "remove-peer", store_id: out.store_id }, holdMs, signal);
    // The scheduler's replica checker may already be adding a peer back; then wait for it.
    const now = (await admin.regions()).find((x) => x.id === r.id);
    if (now && !now.peers.some((p) => p.store_id === out.store_id)) {
      await this.#operator(ev, r.id, { name: "add-peer", store_id: out.store_id }, holdMs, signal)
        .catch(async (e) => {
          ev.description += ` (add-peer: ${(e as Error).message.slice(0, 80)})`;
          await admin.waitOperator(r.id, holdMs * 3, signal);
        });
    } else {
      ev.description += `; the scheduler had already put a peer back on ${name(out.store_id)}`;
    }
  }

  #admin(): Admin {
    if (!this.ctx.admin) throw new Error("this system has no scheduler admin API");
    return this.ctx.admin;
  }

  /** Adds an admin operator on `regionId` and waits for it to end (at most 3 holds). */
  async #operator(
    ev: FaultEvent,
    regionId: number,
    body: Record<string, unknown>,
    holdMs: number,
    signal: AbortSignal,
  ): Promise<void> {
    const started = this.ctx.now();
    await this.#admin().addOperator({ ...body, region_id: regionId });
    if (ev.heal === undefined) ev.start = started; // the first operator starts the fault
    const status = await this.#admin().waitOperator(
      regionId,
      Math.max(holdMs * 3, 5_000),
      signal,
    );
    ev.description += `; ${body.name} ${status} in ${Math.round(this.ctx.now() - started)} ms`;
    ev.heal = this.ctx.now();
  }

  /** Holds a fault for `ms`, watching for leaders among `ev.live` meanwhile. */
  async #hold(ev: FaultEvent, ms: number, signal: AbortSignal): Promise<void> {
    const until = this.ctx.now() + ms;
    if (!ev.live || !this.ctx.watchLeaders) return await sleep(ms, signal);
    ev.leaderReadyMs = null;
    while (!signal.aborted && this.ctx.now() < until) {
      const tick = sleep(100, signal);
      if (ev.leaderReadyMs === null) {
        const seen = await this.#leaders(ev.live);
        if (seen) ev.quorumRegions = seen.regions;
        if (seen?.ready) ev.leaderReadyMs = Math.round(this.ctx.now() - ev.start);
      }
      await tick;
    }
  }

  /**
   * Whether every region with a voter quorum among `live` has a leader among them, and how many
   * such regions there are; undefined when some store did not answer.
   */
  async #leaders(
    live: readonly string[],
  ): Promise<{ ready: boolean; regions: number } | undefined> {
    const { cluster, http } = this.ctx;
    const liveIds = new Set(live.map((s) => cluster.storeId(s)));
    const views = await Promise.all(
      live.map((s) => storePeers(http, cluster.url(s)).catch(() => undefined)),
    );
    if (views.some((v) => v === undefined)) return undefined;
    const regions = new Map<number, { voters: number[]; led: boolean }>();
    for (const view of views) {
      for (const p of view!) {
        const voters = p.region.peers.filter((x) => x.role === "Voter").map((x) => x.store_id);
        const r = regions.get(p.region.id) ?? { voters, led: false };
        r.led ||= p.role === "Leader";
        regions.set(p.region.id, r);
      }
    }
    let quorums = 0;
    let ready = true;
    for (const r of regions.values()) {
      const inside = r.voters.filter((id) => liveIds.has(id)).length;
      if (inside * 2 <= r.voters.length) continue;
      quorums++;
      if (!r.led) ready = false;
    }
    return { ready: ready && quorums > 0, regions: quorums };
  }
}

function fmt(ms: number | undefined): string {
  return ms === undefined ? "?" : `${(ms / 1000).toFixed(1)}s`;
}

/**
 * Two adjacent regions (a source, then the target that ends where it starts) that both have a
 * leader and voters on the same stores, picked at random; undefined if there are none.
 */
export function mergeablePair(
  regions: readonly RegionView[],
  rand: () => number,
): [RegionView, RegionView] | undefined {
  const stores = (r: RegionView) => r.peers.map((p) => `${p.store_id}:${p.role}`).sort().join(",");
  // The admin API gives a key as text if it is UTF-8, else as hex: compare both as hex.
  const hex = (text: string | undefined, h: string | undefined) =>
    text !== undefined ? new TextEncoder().encode(text).toHex() : h ?? "";
  const pairs: [RegionView, RegionView][] = [];
  for (const target of regions) {
    const end = hex(target.end_key, target.end_key_hex);
    if (!target.leader || end === "") continue;
    const source = regions.find((r) => hex(r.start_key, r.start_key_hex) === end);
    if (source?.leader && stores(source) === stores(target)) pairs.push([source, target]);
  }
  return pairs[Math.floor(rand() * pairs.length)];
}
