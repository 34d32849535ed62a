/**
 * raftstore: one store process's region peers and everything that drives them — the Ready loop
 * (store.ts), apply (apply.ts), peer storage on the engine, transports, snapshots, split, log
 * GC, heartbeats to the scheduler and the KV service with its HTTP routes.
 *
 * May import `raft/`, `storage/`, `proto/` and `telemetry/`; nothing imports raftstore but
 * `main.ts` and tests.
 *
 * @module
 */
export { startStoreNode, StoreNode, type StoreNodeOptions } from "./node.ts";
export { Store, type StoreConfig, type StoreLogger } from "./store.ts";
export { type ForwardFn, KvService } from "./kv_service.ts";
export { MemoryNetwork } from "./transport_memory.ts";
export type { RaftBatch, RaftEnvelope, Transport } from "./transport.ts";
