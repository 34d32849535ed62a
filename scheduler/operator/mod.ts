/**
 * Operators: step sequences that change one region (`operator.ts`), their builders
 * (`builder.ts`) and the controller that runs at most one per region (`controller.ts`).
 *
 * May import: `proto/` and `scheduler/region_info.ts`.
 *
 * @module
 */
export * from "./builder.ts";
export * from "./controller.ts";
export * from "./operator.ts";
