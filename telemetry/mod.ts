/**
 * telemetry: what both roles (and the tools) use to tell people what they are doing —
 * structured logs (`log.ts`), the Prometheus registry (`metrics.ts`), process metrics and disk
 * capacity (`process.ts`) and the version (`version.ts`).
 *
 * Imports nothing of ours; `raftstore/`, `scheduler/`, `ctl/`, `tools/` and `main.ts` import it.
 *
 * @module
 */
export * from "./log.ts";
export * from "./metrics.ts";
export * from "./process.ts";
export * from "./version.ts";
