/**
 * Test helpers for raft/ and for code built on it: the deterministic in-memory `Network`
 * and small helpers to create peers and drain their logs. Imports only raft/.
 *
 * @module
 */
export {
  Network,
  type NetworkOptions,
  newTestRaft,
  newTestStorage,
  nextEnts,
  nodes,
} from "./network.ts";
