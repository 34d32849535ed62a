/**
 * The fault suite's library: flags (`args.ts`); the cluster under test as processes
 * (`procs.ts`, `cluster.ts`, `etcd.ts`) placed in network namespaces (`netns.ts`); the fault
 * catalogue and injector (`faults.ts`, `inject.ts`, `admin.ts`); the workload and its history
 * (`workload.ts`, `register.ts`, `http.ts`, `outcome.ts`, `history.ts`); the linearizability
 * checker and its explanations (`checker.ts`, `explain.ts`); reports (`report.ts`); and one
 * whole run (`run.ts`). `tools/chaos.ts` is the CLI; `chaos_test.ts` runs a short run in CI.
 *
 * Imports from the rest of mrkv: `seededRandom` (raft/), duration parsing (config/) and the
 * end-to-end tests' process helpers (tests/process_cluster.ts). The servers are driven only
 * over HTTP, as a user would.
 *
 * @module
 */
export { ChaosArgError, type ChaosOptions, chaosUsage, parseChaosArgs } from "./args.ts";
export { checkRegister, type RegisterOp } from "./checker.ts";
export { historyFromJson, type Op } from "./history.ts";
export { checkHistory, formatReport, type RunReport } from "./report.ts";
export { runChaos, type RunResult } from "./run.ts";
