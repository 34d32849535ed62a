/**
 * Types both servers speak, the way TiKV and PD share `kvproto`: cluster metadata
 * (`metapb.ts`), the scheduler API (`pdpb.ts`), the error family and its HTTP mapping
 * (`errors.ts`), the CBOR codec with its validators (`codec.ts`), and a typed client for the
 * scheduler API (`pd_client.ts`).
 *
 * May import: `cborg` only. Imported by `scheduler/` and `raftstore/`.
 *
 * @module
 */
export * from "./codec.ts";
export * from "./errors.ts";
export * from "./metapb.ts";
export * from "./pd_client.ts";
export * from "./pdpb.ts";
