/**
 * The admin API's JSON shapes (docs/api.md): snake_case fields; keys as UTF-8 strings, or
 * hex under `<field>_hex` when not valid UTF-8. Sizes are MiB like PD's
 * (`approximate_size`, `region_size`), with exact bytes beside them.
 *
 * @module
 */
import { keyJson } from "../proto/json.ts";
import type { Peer } from "../proto/metapb.ts";
import type { OperatorStep } from "../proto/pdpb.ts";
import { describeStep, type Operator } from "./operator/operator.ts";
import type { RegionInfo } from "./region_info.ts";
import type { StoreRegionStats } from "./regions_info.ts";
import type { StoreInfo, StoreStateName } from "./store_info.ts";

/** Decodes a hex string to bytes, or returns undefined if it is not hex. */
export function hexToBytes(hex: string): Uint8Array | undefined {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return undefined;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function peerJson(p: Peer) {
  return { id: p.id, store_id: p.storeId, role: p.role };
}

/** A region as the admin API shows it. */
export function regionJson(r: RegionInfo) {
  return {
    id: r.meta.id,
    ...keyJson("start_key", r.meta.startKey),
    ...keyJson("end_key", r.meta.endKey),
    epoch: { conf_ver: r.meta.epoch.confVer, version: r.meta.epoch.version },
    peers: r.meta.peers.map(peerJson),
    leader: r.leader ? peerJson(r.leader) : null,
    pending_peers: r.pendingPeers.map(peerJson),
    down_peers: r.downPeers.map((d) => ({ peer: peerJson(d.peer), down_seconds: d.downSeconds })),
    approximate_size: r.approximateSize,
    approximate_size_bytes: r.approximateSizeBytes,
    approximate_keys: r.approximateKeys,
  };
}

/** A store as the admin API shows it. */
export function storeJson(s: StoreInfo, state: StoreStateName, st: Readonly<StoreRegionStats>) {
  return {
    store: { id: s.meta.id, address: s.meta.address, state_name: state },
    status: {
      region_count: st.regionCount,
      leader_count: st.leaderCount,
      region_size: st.regionSize,
      leader_size: st.leaderSize,
      pending_peer_count: st.pendingPeerCount,
      capacity: s.stats?.capacity ?? 0,
      available: s.stats?.available ?? 0,
      used_size: s.stats?.usedSize ?? 0,
      last_heartbeat_ts: s.heartbeatSeen ? new Date(s.lastHeartbeat).toISOString() : null,
    },
  };
}

function stepJson(s: OperatorStep) {
  const desc = describeStep(s);
  switch (s.type) {
    case "SplitRegion":
      return { type: s.type, keys: s.keys.map((k) => keyJson("key", k)), desc };
    case "ChangePeerV2Enter":
    case "ChangePeerV2Leave":
      return {
        type: s.type,
        promote: s.promote.map(peerJson),
        demote: s.demote.map(peerJson),
        desc,
      };
    case "MergeRegion":
      return {
        type: s.type,
        source_region_id: s.source.id,
        target_region_id: s.target.id,
        passive: s.passive,
        desc,
      };
    default:
      return { type: s.type, peer: peerJson(s.peer), desc };
  }
}

/** An operator as the admin API shows it. */
export function operatorJson(op: Operator) {
  return {
    region_id: op.regionId,
    desc: op.desc,
    kind: op.kind,
    status: op.status,
    steps: op.steps.map(stepJson),
    current_step: op.currentStep,
    created_at: new Date(op.createdAt).toISOString(),
    deadline: new Date(op.deadline).toISOString(),
    ended_at: op.endedAt === null ? null : new Date(op.endedAt).toISOString(),
    reason: op.reason,
  };
}
