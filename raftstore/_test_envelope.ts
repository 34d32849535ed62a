/**
 * A Raft envelope for transport tests: region 7's peer 1 on store `fromStore` (default 1) to
 * peer 2 on store 2, a heartbeat unless `message` says otherwise.
 *
 * @module
 */
import type { Message } from "../raft/mod.ts";
import type { RaftEnvelope } from "./transport.ts";

export function testEnvelope(message: Partial<Message> = {}, fromStore = 1): RaftEnvelope {
  return {
    regionId: 7,
    fromPeer: { id: 1, storeId: fromStore, role: "Voter" },
    toPeer: { id: 2, storeId: 2, role: "Voter" },
    epoch: { confVer: 3, version: 4 },
    startKey: new TextEncoder().encode("a"),
    endKey: new Uint8Array(),
    message: {
      type: "MsgHeartbeat",
      to: 2,
      from: 1,
      term: 5,
      logTerm: 0,
      index: 0,
      entries: [],
      commit: 9,
      reject: false,
      rejectHint: 0,
      ...message,
    },
  };
}
