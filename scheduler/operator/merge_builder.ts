/**
 * The merge operator (PD's `CreateMergeRegionOperator`): a pair of operators, one per region.
 * The source's moves its peers onto the target's stores if they are elsewhere (data is never
 * copied between regions, so each store must hold both), then asks its leader to merge
 * (`MergeRegion`); the target's only holds the target still (`passive`: nothing is sent), so no
 * other operator changes it meanwhile. Both end together (see `OperatorController`).
 *
 * @module
 */
import { MrkvError } from "../../proto/errors.ts";
import { isJointRegion, type Region, regionsAdjacent } from "../../proto/metapb.ts";
import type { MergeStep, OperatorStep } from "../../proto/pdpb.ts";
import type { RegionInfo } from "../region_info.ts";
import { type BuildContext, createTransferRegionOperator } from "./builder.ts";
import { DEFAULT_STEP_TIMEOUTS, Operator, type OperatorKind } from "./operator.ts";

/** True if both regions have voters, and only voters, on the same stores. */
export function isAligned(a: Region, b: Region): boolean {
  const stores = (r: Region) => r.peers.map((p) => `${p.storeId}:${p.role}`).sort().join(",");
  return stores(a) === stores(b) && a.peers.every((p) => p.role === "Voter");
}

/** The merge step of an operator, if it has one. */
export function mergeStepOf(op: Operator): MergeStep | undefined {
  return op.steps.find((s): s is MergeStep => s.type === "MergeRegion");
}

/**
 * Builds the operators that merge `source` into the adjacent `target`: `[source's, target's]`.
 * Throws `BadRequest` saying why the merge cannot be done.
 */
export function createMergeRegionOperators(
  desc: string,
  kind: OperatorKind,
  source: RegionInfo,
  target: RegionInfo,
  ctx: BuildContext,
): [Operator, Operator] {
  const s = source.meta, t = target.meta;
  if (s.id === t.id) throw new MrkvError("BadRequest", `region ${s.id} cannot merge into itself`);
  if (!regionsAdjacent(s, t)) {
    throw new MrkvError("BadRequest", `regions ${s.id} and ${t.id} are not adjacent`);
  }
  for (const r of [s, t]) {
    if (isJointRegion(r)) {
      throw new MrkvError("BadRequest", `region ${r.id} is in a joint configuration`);
    }
    if (r.peers.length === 0 || r.peers.some((p) => p.role !== "Voter")) {
      throw new MrkvError("BadRequest", `region ${r.id} has learners or no peers`);
    }
  }
  const steps: OperatorStep[] = [];
  if (!isAligned(s, t)) {
    // Move the source's peers onto the target's stores first.
    const stores = t.peers.map((p) => p.storeId);
    steps.push(...createTransferRegionOperator(desc, kind, source, stores, ctx).steps);
  }
  const merge: MergeStep = { type: "MergeRegion", source: s, target: t, passive: false };
  const timeouts = ctx.timeouts ?? DEFAULT_STEP_TIMEOUTS;
  const sourceOp = new Operator(desc, kind, s.id, s.epoch, [...steps, merge], ctx.now, timeouts);
  const targetOp = new Operator(
    desc,
    kind,
    t.id,
    t.epoch,
    [{ ...merge, passive: true }],
    ctx.now,
    timeouts,
    sourceOp.deadline,
  );
  return [sourceOp, targetOp];
}
