/**
 * The fault catalogue: the kinds a run can inject, how `--faults` names them, the order a
 * seeded run draws them in, and the shapes of network partitions (as pairs of servers that
 * cannot talk). Pure: `inject.ts` carries them out.
 *
 * @module
 */
import type { Cut } from "./netns.ts";

/** Every fault kind, in the order `--help` lists them. */
export const FAULT_KINDS = [
  "isolate-store",
  "split-sched-majority",
  "split-sched-minority",
  "bridge",
  "isolate-scheduler",
  "pause",
  "kill",
  "transfer-leader",
  "split-region",
  "merge-region",
  "membership",
] as const;

/** One fault kind. */
export type FaultKind = typeof FAULT_KINDS[number];

/** What each kind does, for `--help` and reports. */
export const FAULT_HELP: Readonly<Record<FaultKind, string>> = {
  "isolate-store": "cut one store (often a leader) off from every other server",
  "split-sched-majority": "majority | minority of the stores, the scheduler with the majority",
  "split-sched-minority": "majority | minority, the scheduler and a leader on the minority side",
  "bridge": "two halves that cannot talk, and one store that sees both",
  "isolate-scheduler": "cut the scheduler off from every store",
  "pause": "SIGSTOP a store (often a leader), SIGCONT it later",
  "kill": "kill -9 a store (often a leader), restart it with the same data dir",
  "transfer-leader": "admin operator: move a region's leader to another voter",
  "split-region": "admin operator: split a region at a workload key",
  "merge-region": "admin operator: merge two adjacent regions (split one first if none)",
  "membership": "admin: remove a follower, add it back (3 stores); transfer-region (5)",
};

/** Kinds that need network namespaces. */
export const PARTITION_KINDS: readonly FaultKind[] = [
  "isolate-store",
  "split-sched-majority",
  "split-sched-minority",
  "bridge",
  "isolate-scheduler",
];

/** Names `--faults` accepts besides the kinds themselves. */
export const FAULT_GROUPS: Readonly<Record<string, readonly FaultKind[]>> = {
  all: FAULT_KINDS,
  partition: PARTITION_KINDS,
  process: ["pause", "kill"],
  admin: ["transfer-leader", "split-region", "merge-region", "membership"],
  none: [],
};

/** Parses `--faults` (kinds and groups, comma-separated); throws naming what is unknown. */
export function parseFaults(spec: string): FaultKind[] {
  const out = new Set<FaultKind>();
  for (const raw of spec.split(",")) {
    const name = raw.trim();
    if (name === "") continue;
    const group = FAULT_GROUPS[name];
    if (group) {
      for (const k of group) out.add(k);
    } else if ((FAULT_KINDS as readonly string[]).includes(name)) {
      out.add(name as FaultKind);
    } else {
      throw new Error(
        `unknown fault "${name}" (kinds: ${FAULT_KINDS.join(", ")}; groups: ${
          Object.keys(FAULT_GROUPS).join(", ")
        })`,
      );
    }
  }
  return FAULT_KINDS.filter((k) => out.has(k));
}

/** Fisher-Yates with the run's PRNG. */
export function shuffle<T>(items: readonly T[], rand: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Draws kinds in rounds: each round is every kind once, shuffled, so all appear early. */
export class KindSequence {
  #round: FaultKind[] = [];

  constructor(readonly kinds: readonly FaultKind[], readonly rand: () => number) {
    if (kinds.length === 0) throw new Error("no fault kinds to draw from");
  }

  next(): FaultKind {
    if (this.#round.length === 0) this.#round = shuffle(this.kinds, this.rand);
    return this.#round.shift()!;
  }
}

/** Every pair with one side in `a` and the other in `b`. */
export function cutBetween(a: readonly string[], b: readonly string[]): Cut[] {
  return a.flatMap((x) => b.map((y) => [x, y] as const));
}

/** A partition: the cuts, and the stores expected to keep a quorum (the larger side). */
export interface PartitionShape {
  readonly cuts: Cut[];
  readonly description: string;
  /** Stores on the side that should keep serving (undefined: no single such side). */
  readonly live?: readonly string[];
}

/** `target` alone on one side; every other server (the scheduler too) on the other. */
export function isolateShape(target: string, servers: readonly string[]): PartitionShape {
  const rest = servers.filter((s) => s !== target);
  return {
    cuts: cutBetween([target], rest),
    description: `${target} isolated from ${rest.join(",")}`,
    live: target === "sched" ? undefined : rest.filter((s) => s !== "sched"),
  };
}

/**
 * Stores split into a minority (holding `minority`) and a majority, the scheduler on the side
 * `schedSide` says (none: a system without a scheduler).
 */
export function splitShape(
  stores: readonly string[],
  minority: readonly string[],
  schedSide: "majority" | "minority" | "none",
): PartitionShape {
  const majority = stores.filter((s) => !minority.includes(s));
  if (minority.length * 2 >= stores.length) throw new Error("the minority side is not a minority");
  const a = schedSide === "minority" ? ["sched", ...minority] : [...minority];
  const b = schedSide === "majority" ? ["sched", ...majority] : [...majority];
  return {
    cuts: cutBetween(a, b),
    description: `{${a.join(",")}} | {${b.join(",")}}`,
    live: majority,
  };
}

/**
 * A bridge: `bridge` sees both halves, the halves cannot see each other; the scheduler (if
 * there is one) sits in the first half.
 */
export function bridgeShape(
  bridge: string,
  halfA: readonly string[],
  halfB: readonly string[],
  withScheduler = true,
): PartitionShape {
  const a = withScheduler ? ["sched", ...halfA] : [...halfA];
  return {
    cuts: cutBetween(a, halfB),
    description: `{${a.join(",")}} | {${halfB.join(",")}}, ${bridge} sees both`,
  };
}

/** The smallest minority of `n` stores that still holds two stores when it can (5 → 2). */
export function minoritySize(n: number): number {
  return Math.floor((n - 1) / 2);
}
