/**
 * Raft messages from other stores, one at a time (the store queues them): a tombstone destroys
 * a stale peer or tells it where its merged region went; a message for a region this store has
 * no peer of may create one (unless a tombstone or a local range says no); a message from a peer
 * no longer in the region tells it to go; a forwarded proposal is checked before it enters the
 * log; a merge target's snapshot first retires the local source peer it covers.
 *
 * @module
 */
import { isQuiesceMessage, type Message } from "../raft/mod.ts";
import type { Peer as PeerMeta, Region } from "../proto/metapb.ts";
import type { Peer } from "./peer.ts";
import { PeerStorage } from "./peer_storage.ts";
import { decodeCmd, type RaftCmd } from "./cmd.ts";
import { decodeSnapshotData } from "./snapshot.ts";
import { isMergedSourceOf } from "./merge.ts";
import { MAX_TAG_CLOCK_AHEAD_MS } from "./applied_requests.ts";
import { isVoteRequest } from "./split.ts";
import { OverlapDrops } from "./overlap_drops.ts";
import type { RaftEnvelope } from "./transport.ts";
import type { PeerLifecycle } from "./peer_lifecycle.ts";
import type { StoreMerges } from "./store_merge.ts";
import type { StoreParts } from "./store_parts.ts";

/** Raft message types that may create a peer for a region this store does not have. */
function isInitialMessage(m: Message): boolean {
  return m.type === "MsgVote" || m.type === "MsgPreVote" ||
    (m.type === "MsgHeartbeat" && m.commit === 0) || m.type === "MsgSnap" || m.type === "MsgApp";
}

/** The handling of one store's inbound Raft messages. */
export class Inbound {
  /** Messages dropped as overlapping a local region, for a rate-limited report. */
  readonly #overlapDrops = new OverlapDrops();

  constructor(
    readonly store: StoreParts,
    readonly lifecycle: PeerLifecycle,
    readonly merges: StoreMerges,
  ) {}

  /** Handles one message (the store calls this for one at a time). */
  async onEnvelope(env: RaftEnvelope): Promise<void> {
    const s = this.store;
    if (env.toPeer.storeId !== s.storeId) return;
    let peer = s.peers.get(env.regionId);
    if (env.isTombstone) {
      if (env.mergeTarget) {
        // Our region was merged away while this peer was cut off. It is not destroyed here:
        // its data may still be needed by the local target to catch up (merge_worker.ts).
        if (peer && peer.meta.id === env.toPeer.id && !peer.mergedInto) {
          s.log.info(
            `region ${env.regionId}: peer ${peer.meta.id} learns its region was merged into ` +
              `region ${env.mergeTarget.id} (told by peer ${env.fromPeer.id})`,
          );
          peer.mergedInto = env.mergeTarget;
        }
        return;
      }
      // Only a sender with a newer membership can tell us we are gone.
      if (peer && peer.meta.id === env.toPeer.id && peer.region.epoch.confVer < env.epoch.confVer) {
        s.log.info(
          `region ${env.regionId}: peer ${peer.meta.id} is stale (told by peer ${env.fromPeer.id}); destroying it`,
        );
        await this.lifecycle.destroyPeer(peer);
      }
      return;
    }
    if (peer && peer.meta.id !== env.toPeer.id) {
      if (env.toPeer.id < peer.meta.id) return; // for an older incarnation of our peer
      // A newer incarnation implies our peer was removed and the region re-added this store,
      // which bumps conf_ver twice: without a newer epoch the message proves nothing.
      if (peer.storage.isInitialized() && env.epoch.confVer <= peer.region.epoch.confVer) return;
      // Our peer was removed and the region re-added us under a new ID: replace it.
      await this.lifecycle.destroyPeer(peer);
      peer = undefined;
    }
    if (!peer) {
      const tomb = s.tombstones.get(env.regionId);
      if (tomb?.merge && env.toPeer.id <= tomb.peerId) {
        this.merges.replyMerged(env, tomb.region, tomb.merge);
        return;
      }
      peer = await this.#maybeCreatePeer(env);
      if (!peer) return;
    }
    // A message from a peer that is no longer a member, with an older epoch: tell it to go.
    const region = peer.region;
    if (
      peer.storage.isInitialized() && env.epoch.confVer < region.epoch.confVer &&
      !region.peers.some((x) => x.id === env.fromPeer.id)
    ) {
      s.send(env.fromPeer.storeId, [{
        regionId: region.id,
        fromPeer: peer.meta,
        toPeer: env.fromPeer,
        epoch: region.epoch,
        startKey: region.startKey,
        endKey: region.endKey,
        isTombstone: true,
        message: {
          ...env.message,
          type: "MsgHeartbeat",
          to: env.fromPeer.id,
          from: peer.meta.id,
          entries: [],
          snapshot: undefined,
        },
      }]);
      return;
    }
    if (env.message.type === "MsgProp") {
      const refusal = checkForwardedProposal(env);
      if (refusal) {
        s.log.warn(
          `region ${env.regionId}: refused a proposal from peer ${env.fromPeer.id}: ${refusal}`,
        );
        return;
      }
    }
    if (env.message.type === "MsgSnap" && env.message.snapshot) {
      const snapRegion = decodeSnapshotData(env.message.snapshot.data).region;
      // A snapshot of a merge target taken after the merge covers its source: a local source
      // peer that missed the merge goes first.
      for (const r of s.meta.overlapping(snapRegion)) {
        const source = s.peers.get(r.id);
        if (r.id !== snapRegion.id && source && isMergedSourceOf(source, snapRegion)) {
          s.log.info(
            `region ${r.id}: merged into region ${snapRegion.id}, whose snapshot arrived; ` +
              `destroying peer ${source.meta.id}`,
          );
          await this.lifecycle.destroyPeer(source);
        }
      }
      const clash = s.meta.overlapping(snapRegion).find((r) => r.id !== snapRegion.id);
      if (clash) {
        s.log.warn(
          `region ${snapRegion.id}: refusing a snapshot that overlaps local region ${clash.id}`,
        );
        return;
      }
      // A peer destroyed just before (its region removed it, then merged into this one) may
      // still be deleting the data of a range this snapshot covers: installed first, the data
      // would go with it.
      await this.lifecycle.settledOver(snapRegion);
    }
    if (s.hibernation.onMessage(peer, env, isQuiesceMessage(env.message))) return;
    peer.step(env.message, env.fromPeer);
    s.markDirty(peer);
  }

  async #maybeCreatePeer(env: RaftEnvelope): Promise<Peer | undefined> {
    const s = this.store;
    if (!isInitialMessage(env.message)) return undefined;
    await this.lifecycle.destroying(env.regionId);
    const tomb = s.tombstones.get(env.regionId);
    if (tomb && env.toPeer.id <= tomb.peerId) return undefined;
    const range = { startKey: env.startKey, endKey: env.endKey };
    const clash = s.meta.overlapping(range)[0];
    if (clash) {
      // A split we have not applied yet. Its new region's leader campaigns as soon as it has
      // applied the split, usually before we have: dropping the vote request would leave the
      // region leaderless for an election timeout, so it is held until the split creates the
      // peer (split.ts).
      if (isVoteRequest(env.message)) s.earlyVotes.hold(env);
      this.#noteOverlapDrop(env, clash);
      return undefined;
    }
    if (s.peers.has(env.regionId)) return s.peers.get(env.regionId);
    const region: Region = {
      id: env.regionId,
      startKey: new Uint8Array(),
      endKey: new Uint8Array(),
      epoch: { confVer: 0, version: 0 },
      peers: [],
    };
    // Raft state left by an earlier, destroyed peer of the region belongs to another peer ID.
    const storage = tomb
      ? new PeerStorage(region, { term: 0, vote: 0, commit: 0 }, {
        appliedIndex: 0,
        truncatedIndex: 0,
        truncatedTerm: 0,
      }, [])
      : await PeerStorage.load(s.engine, s.raftLog, region);
    if (s.peers.has(env.regionId)) return s.peers.get(env.regionId);
    const meta: PeerMeta = { id: env.toPeer.id, storeId: s.storeId, role: env.toPeer.role };
    const peer = s.newPeer(meta, storage);
    s.tombstones.delete(env.regionId);
    this.#overlapDrops.clear(env.regionId);
    s.peers.set(env.regionId, peer);
    s.hibernation.added(peer);
    s.meta.setRegion(region, false);
    s.log.info(
      `region ${env.regionId}: created peer ${meta.id} on demand (from peer ${env.fromPeer.id})`,
    );
    return peer;
  }

  /**
   * Logs, rate-limited (see overlap_drops.ts), that a message that would create a peer was
   * dropped because its region's range overlaps local region `clash`.
   */
  #noteOverlapDrop(env: RaftEnvelope, clash: Region): void {
    const s = this.store;
    const report = this.#overlapDrops.note(env.regionId, performance.now());
    if (!report) return;
    const local = s.peers.get(clash.id);
    s.log.warn(
      `region ${env.regionId}: no peer ${env.toPeer.id} created here for ${
        Math.round(report.forMs / 1000)
      } s (${report.dropped} messages dropped since the last report): its range overlaps ` +
        `local region ${clash.id} (epoch ${clash.epoch.confVer}/${clash.epoch.version}, ` +
        `${local && !local.destroyed ? `peer ${local.meta.id}` : "no local peer"})`,
    );
  }
}

/**
 * Why a proposal forwarded by another store's peer must not enter the log, or `undefined`.
 * Followers forward only data writes for this region (admin commands and membership changes are
 * proposed by the leader itself), so anything else is a bug or a forgery; what passes here is
 * still checked again at apply.
 */
function checkForwardedProposal(env: RaftEnvelope): string | undefined {
  for (const e of env.message.entries) {
    if (e.type !== "Normal") return `a ${e.type} entry`;
    if (e.data.length === 0) return "an empty entry";
    let cmd: RaftCmd;
    try {
      cmd = decodeCmd(e.data);
    } catch (err) {
      return `an undecodable command: ${(err as Error).message}`;
    }
    if (cmd.admin) return `an admin command (${cmd.admin.type})`;
    if (cmd.header.regionId !== env.regionId) {
      return `a command for region ${cmd.header.regionId}`;
    }
    // A tag from the future would move the region's request clock ahead and make fresh writes
    // of other stores look expired (see applied_requests.ts).
    const ahead = (cmd.header.request?.issuedAt ?? 0) - Date.now();
    if (ahead > MAX_TAG_CLOCK_AHEAD_MS) return `a write issued ${ahead} ms in the future`;
  }
  return undefined;
}
