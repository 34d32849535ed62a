/**
 * The scheduler (placement driver, after PD): the persistent ID allocator, the cluster map
 * (stores with their states, regions by ID and key range), heartbeat handling with the
 * staleness rules, operators, the replica checker, balance schedulers, and the HTTP APIs.
 *
 * Files: `cluster.ts` (handlers), `regions_info.ts` + `region_tree.ts` (region map),
 * `store_info.ts` (store states), `id_allocator.ts`, `storage.ts` (Deno KV layout),
 * `operator/`, `schedulers/`, `coordinator.ts` (the schedule loop), `rpc_routes.ts` (the
 * internal CBOR API stores use), `admin_routes.ts` (the admin JSON API), `pd_routes.ts` (PD's
 * read-only routes and `/diagnose`), `diagnose.ts` (why nothing moves), `hot_stats.ts`,
 * `metrics.ts`, `dashboard/` (the page at `GET /`), `server.ts`.
 *
 * May import: `proto/`, `config/`, `telemetry/`, `hono`. Nothing imports it but `main.ts`, the
 * ctl's tests and tests.
 *
 * @module
 */
export { schedulerApp, type SchedulerServer, type StartOptions, startScheduler } from "./server.ts";
