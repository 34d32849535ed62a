/**
 * The load tool's library: flags (`args.ts`), target adapters for mrkv and etcd
 * (`targets.ts`), the workload loop (`run.ts`), latency histograms (`histogram.ts`) and
 * reports (`report.ts`). `tools/load.ts` is the CLI and `tools/bench_compare.ts` runs the
 * benchmark matrix with it.
 *
 * Imports from the rest of mrkv: only `config/config.ts` (size and duration parsing) and the route
 * hint format (`proto/route_hint.ts`, with key order from `proto/metapb.ts`), so the tool can
 * measure any server speaking the KV API without pulling in the store.
 *
 * @module
 */
export {
  DEFAULT_ENDPOINTS,
  LoadArgError,
  type LoadOptions,
  loadUsage,
  parseLoadArgs,
} from "./args.ts";
export { LatencyHistogram, type LatencySummary } from "./histogram.ts";
export { formatText, type LoadReport, toReport } from "./report.ts";
export { runLoad, type RunOptions, type RunResult } from "./run.ts";
export {
  keyFor,
  makeTarget,
  makeValue,
  OpError,
  type RouteMode,
  type Target,
  targetFor,
  type TargetKind,
} from "./targets.ts";
export { RouteCache } from "./routes.ts";
