/**
 * Test helpers for raft/ and for code built on it: the deterministic in-memory `Network`,
 * builders for messages, entries and peers, and state assertions. Imports only raft/.
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
export { ccAdd, ccLearner, ccRemove, ccV2, confState, LEAVE_JOINT } from "./conf.ts";
export { type ClusterNode, type ClusterOptions, RawNodeCluster } from "./cluster.ts";
export {
  checkState,
  electedNetwork,
  ent,
  entsWithTerms,
  hup,
  logTerms,
  msg,
  peerWithLog,
  prop,
  tickN,
  transferMsg,
} from "./helpers.ts";
