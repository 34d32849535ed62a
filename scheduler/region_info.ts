/**
 * What the scheduler knows about one region: its meta (range, epoch, peers) plus what its
 * leader last reported (leader, pending and down peers, approximate size and keys).
 *
 * @module
 */
import { bytesEqual, epochEqual, type Peer, type Region } from "../proto/metapb.ts";
import type { DownPeer, RegionHeartbeat } from "../proto/pdpb.ts";

const MIB = 1024 * 1024;

/** A region as the cluster map holds it. Immutable: a heartbeat replaces the whole object. */
export interface RegionInfo {
  readonly meta: Region;
  readonly leader: Peer | null;
  readonly pendingPeers: readonly Peer[];
  readonly downPeers: readonly DownPeer[];
  /** Approximate size in MiB, at least 1 (PD's `EmptyRegionApproximateSize`), for balancing. */
  readonly approximateSize: number;
  /** Approximate size in bytes, as reported. */
  readonly approximateSizeBytes: number;
  readonly approximateKeys: number;
}

/**
 * Whether the leader reports peer `peerId` as catching up (pending) or silent (down): such a
 * peer should not be given leadership.
 */
export function isPeerLagging(r: RegionInfo, peerId: number): boolean {
  return r.pendingPeers.some((p) => p.id === peerId) ||
    r.downPeers.some((d) => d.peer.id === peerId);
}

/** Whether the balancers may give `p` leadership of `r`: a voter its leader reports healthy. */
export function mayLead(r: RegionInfo, p: Peer): boolean {
  return p.role === "Voter" && !isPeerLagging(r, p.id);
}

/** Converts a reported size in bytes to scheduling units (MiB, at least 1). */
export function sizeInMiB(bytes: number): number {
  return Math.max(1, Math.round(bytes / MIB));
}

/** Builds the cluster map's view of a region from its leader's heartbeat. */
export function regionInfoFromHeartbeat(hb: RegionHeartbeat): RegionInfo {
  const ids = new Set(hb.region.peers.map((p) => p.id));
  return {
    meta: hb.region,
    leader: hb.leader && ids.has(hb.leader.id) ? hb.leader : null,
    // Only peers of this region count; anything else in the report is noise.
    pendingPeers: hb.pendingPeers.filter((p) => ids.has(p.id)),
    downPeers: hb.downPeers.filter((d) => ids.has(d.peer.id)),
    approximateSize: sizeInMiB(hb.approximateSize),
    approximateSizeBytes: hb.approximateSize,
    approximateKeys: hb.approximateKeys,
  };
}

/** A region with no leader report yet (bootstrap, or loaded from disk). */
export function regionInfoFromMeta(meta: Region, leader: Peer | null = null): RegionInfo {
  return {
    meta,
    leader,
    pendingPeers: [],
    downPeers: [],
    approximateSize: 1,
    approximateSizeBytes: 0,
    approximateKeys: 0,
  };
}

function peersEqual(a: readonly Peer[], b: readonly Peer[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (x.id !== y.id || x.storeId !== y.storeId || x.role !== y.role) return false;
  }
  return true;
}

/** True if range, epoch or peers differ: the change must be persisted. */
export function metaChanged(a: Region, b: Region): boolean {
  return !epochEqual(a.epoch, b.epoch) || !bytesEqual(a.startKey, b.startKey) ||
    !bytesEqual(a.endKey, b.endKey) || !peersEqual(a.peers, b.peers);
}

/** True if anything the scheduler tracks differs: meta, leader, pending or down peers, size. */
export function regionChanged(a: RegionInfo, b: RegionInfo): boolean {
  return metaChanged(a.meta, b.meta) || a.leader?.id !== b.leader?.id ||
    !peersEqual(a.pendingPeers, b.pendingPeers) || a.downPeers.length !== b.downPeers.length ||
    a.downPeers.some((d, i) =>
      d.peer.id !== b.downPeers[i]!.peer.id || d.downSeconds !== b.downPeers[i]!.downSeconds
    ) ||
    a.approximateSizeBytes !== b.approximateSizeBytes || a.approximateKeys !== b.approximateKeys;
}
