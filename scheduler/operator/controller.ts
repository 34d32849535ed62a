/**
 * The operator controller (PD's `operator_controller.go`): at most one operator per region,
 * dispatching the current step to the region's leader in heartbeat responses, finishing,
 * cancelling and timing operators out, and keeping the last {@link HISTORY_LIMIT} ended ones.
 *
 * @module
 */
import type { MergeStep, OperatorStep } from "../../proto/pdpb.ts";
import type { RegionInfo } from "../region_info.ts";
import {
  isMergedInto,
  isSplitChild,
  isSplitOvertaken,
  KIND_PRIORITY,
  Operator,
  type OperatorKind,
  type OperatorStatus,
  type TargetCheck,
} from "./operator.ts";
import { mergeStepOf } from "./merge_builder.ts";

const ANY_TARGET: TargetCheck = () => undefined;

/** How many ended operators are kept for the admin API. */
export const HISTORY_LIMIT = 1000;

/** Why {@link OperatorController.addOperator} refused. */
export type AddRefusal = "region has a running operator of equal or higher priority";

/** Running operators, one per region, and the history of ended ones. */
export class OperatorController {
  readonly #running = new Map<number, Operator>();
  readonly #history: Operator[] = [];
  /** Ended operators by final status, for `/metrics`. */
  readonly ended: Record<OperatorStatus, number> = {
    Created: 0,
    Running: 0,
    Finished: 0,
    Cancelled: 0,
    TimedOut: 0,
  };
  /** Operators ever added, by kind. */
  readonly added: Record<OperatorKind, number> = {
    admin: 0,
    replica: 0,
    merge: 0,
    region: 0,
    leader: 0,
    hot: 0,
  };
  /** Called with every operator added (the cluster pushes its first step, step_push.ts). */
  onAdded: (op: Operator) => void = () => {};

  /** The running operator of a region. */
  get(regionId: number): Operator | undefined {
    return this.#running.get(regionId);
  }

  /** All running operators. */
  running(): Operator[] {
    return [...this.#running.values()];
  }

  /** Number of running operators of `kind`. */
  countOf(kind: OperatorKind): number {
    let n = 0;
    for (const op of this.#running.values()) if (op.kind === kind) n++;
    return n;
  }

  /** Ended operators, oldest first (at most {@link HISTORY_LIMIT}). */
  history(): readonly Operator[] {
    return this.#history;
  }

  /** The newest ended operator of a region. */
  lastEnded(regionId: number): Operator | undefined {
    for (let i = this.#history.length - 1; i >= 0; i--) {
      if (this.#history[i]!.regionId === regionId) return this.#history[i];
    }
    return undefined;
  }

  /**
   * Adds `op` unless its region already has an operator of equal or higher priority; a lower
   * priority one is cancelled and replaced. Returns true if added.
   */
  addOperator(op: Operator, now: number): boolean {
    const old = this.#running.get(op.regionId);
    if (old) {
      if (KIND_PRIORITY[old.kind] >= KIND_PRIORITY[op.kind]) return false;
      this.#end(old, "Cancelled", now, `replaced by ${op.desc}`);
    }
    this.#running.set(op.regionId, op);
    this.added[op.kind]++;
    this.onAdded(op);
    return true;
  }

  /**
   * Adds the two operators of a merge (see merge_builder.ts), both or neither. Returns true if
   * added.
   */
  addMergeOperators(ops: readonly [Operator, Operator], now: number): boolean {
    const [source, target] = ops;
    for (const op of ops) {
      const old = this.#running.get(op.regionId);
      if (old && KIND_PRIORITY[old.kind] >= KIND_PRIORITY[op.kind]) return false;
    }
    return this.addOperator(target, now) && this.addOperator(source, now);
  }

  /** Cancels the region's operator; returns it, or undefined if none was running. */
  cancel(regionId: number, now: number, reason: string): Operator | undefined {
    const op = this.#running.get(regionId);
    if (op) this.#end(op, "Cancelled", now, reason);
    return op;
  }

  /**
   * Called for every admitted heartbeat: advances the region's operator and returns the step
   * its leader should carry out now, if any. The step is repeated on every heartbeat until the
   * region shows it done (stores ignore a step already applied or in flight).
   */
  dispatch(
    r: RegionInfo,
    now: number,
    unusable: TargetCheck = ANY_TARGET,
  ): OperatorStep | undefined {
    const op = this.#running.get(r.meta.id);
    if (!op) return undefined;
    if (now > op.deadline) {
      this.#end(op, "TimedOut", now, `not done by ${new Date(op.deadline).toISOString()}`);
      return undefined;
    }
    const split = op.steps.find((s) => s.type === "SplitRegion");
    const merge = mergeStepOf(op);
    if (
      !split && r.meta.epoch.version !== op.epoch.version && !isMergeVersion(op, merge, r)
    ) {
      this.#end(op, "Cancelled", now, "the region split or merged under the operator");
      return undefined;
    }
    if (split && isSplitOvertaken(split, r, op.epoch)) {
      this.#end(op, "Cancelled", now, "the region was split at other keys before this split ran");
      return undefined;
    }
    const step = op.check(r);
    if (step === undefined) {
      this.#end(op, "Finished", now);
      return undefined;
    }
    if (this.#cancelIfTargetUnusable(op, now, unusable)) return undefined;
    if (op.status === "Created") op.transition("Running", now);
    // The target of a merge only waits: its region is held still, nothing is sent to it.
    if (step.type === "MergeRegion" && step.passive) return undefined;
    return step;
  }

  /**
   * Called when an admitted heartbeat removed regions it overlaps from the map: a split
   * operator on one of them is Finished if the new region is one its split created (the new
   * regions may report before the old one). Other operators on them are left for
   * {@link checkAll}, which cancels them as gone.
   */
  onRegionsOverlapped(overlapped: readonly RegionInfo[], by: RegionInfo, now: number): void {
    for (const o of overlapped) {
      const op = this.#running.get(o.meta.id);
      const step = op?.stepInProgress();
      if (op && step?.type === "SplitRegion" && isSplitChild(step, op.epoch, by.meta)) {
        op.markAllDone();
        this.#end(op, "Finished", now);
      }
    }
  }

  /**
   * Times out overdue operators and cancels those whose region is gone — but a merge's source
   * operator whose region is gone because its target took it in has finished. `regionOf` gives
   * the known region with an ID. Also cancels operators that still have to send work to a store
   * that may not receive any now.
   */
  checkAll(
    now: number,
    regionExists: (id: number) => boolean,
    regionOf?: (id: number) => RegionInfo | undefined,
    unusable: TargetCheck = ANY_TARGET,
  ): void {
    for (const op of [...this.#running.values()]) {
      if (op.status !== "Created" && op.status !== "Running") continue; // ended with its partner
      if (now > op.deadline) this.#end(op, "TimedOut", now, "deadline passed");
      else if (!regionExists(op.regionId)) {
        const merge = mergeStepOf(op);
        const target = merge && !merge.passive ? regionOf?.(merge.target.id) : undefined;
        if (merge && target && isMergedInto(target.meta, merge, merge.target.epoch)) {
          this.#end(op, "Finished", now, `merged into region ${merge.target.id}`);
        } else {
          this.#end(op, "Cancelled", now, "the region is gone");
        }
      } else this.#cancelIfTargetUnusable(op, now, unusable);
    }
  }

  /** Ends `op` as Cancelled if a store it still has to send work to may not receive any. */
  #cancelIfTargetUnusable(op: Operator, now: number, unusable: TargetCheck): boolean {
    for (const storeId of op.targetStores()) {
      const why = unusable(storeId);
      if (why !== undefined) {
        this.#end(op, "Cancelled", now, `target store ${storeId} is ${why}`);
        return true;
      }
    }
    return false;
  }

  /**
   * Ends the region's operator as Cancelled because its leader refused the step in progress
   * (e.g. a split with no split key, a transfer to a peer it has not heard from). Returns the
   * operator if one was cancelled.
   */
  onStepRefused(
    regionId: number,
    type: OperatorStep["type"],
    reason: string,
    now: number,
  ): Operator | undefined {
    const op = this.#running.get(regionId);
    if (!op || op.stepInProgress()?.type !== type) return undefined;
    this.#end(op, "Cancelled", now, `the leader refused ${type}: ${reason}`);
    return op;
  }

  #end(op: Operator, status: OperatorStatus, now: number, reason = ""): void {
    op.transition(status, now, reason);
    this.#running.delete(op.regionId);
    // The two operators of a merge end together: a merge done on one side is done on both.
    const merge = mergeStepOf(op);
    if (merge) {
      const partner = this.#running.get(merge.passive ? merge.source.id : merge.target.id);
      if (partner && mergeStepOf(partner)) {
        this.#end(
          partner,
          status === "Finished" ? "Finished" : "Cancelled",
          now,
          `its merge partner, region ${op.regionId}, ended: ${status}${
            reason ? ` (${reason})` : ""
          }`,
        );
      }
    }
    this.ended[status]++;
    this.#history.push(op);
    if (this.#history.length > HISTORY_LIMIT) {
      this.#history.splice(0, this.#history.length - HISTORY_LIMIT);
    }
  }
}

/**
 * Whether a merge operator's region changed version as the merge expects: the source by its
 * PrepareMerge (one more), the target by taking the source in.
 */
function isMergeVersion(op: Operator, merge: MergeStep | undefined, r: RegionInfo): boolean {
  if (!merge) return false;
  return merge.passive
    ? isMergedInto(r.meta, merge, op.epoch)
    : r.meta.epoch.version === op.epoch.version + 1;
}
