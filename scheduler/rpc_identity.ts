/**
 * Identity checks on the internal API beyond authentication (docs/security.md): a store may
 * only report and split regions it holds, and no region may claim an epoch the cluster could
 * not have reached with the IDs the scheduler has handed out.
 *
 * @module
 */
import { type Caller, checkCallerIsStore } from "../proto/http_guard.ts";
import { MrkvError } from "../proto/errors.ts";
import type { Region } from "../proto/metapb.ts";
import type { RegionHeartbeat } from "../proto/pdpb.ts";

/**
 * Conf changes one peer ID can take part in (added as learner, promoted, demoted, removed):
 * each conf change concerns a peer, and every peer ID was allocated here.
 */
const CONF_CHANGES_PER_PEER_ID = 4;

/** Refuses (403) a heartbeat not sent by the store of the leader it names. */
export function checkHeartbeatFromCaller(hb: RegionHeartbeat, caller: Caller): void {
  if (!caller.identified) return;
  if (hb.leader === null) {
    throw new MrkvError("PermissionDenied", `region ${hb.region.id}'s heartbeat names no leader`);
  }
  checkCallerIsStore(caller, hb.leader.storeId, `region ${hb.region.id}'s heartbeat leader`);
}

/**
 * Refuses (403) an epoch ahead of anything handed out. Every split takes fresh region and peer
 * IDs from the scheduler and raises `version` by one, so `version <= 1 + IDs handed out`; every
 * conf change raises `confVer` by one for a peer whose ID was handed out. `highWaterMark` is the
 * persisted end of the allocator's reserved range, so the bound also holds after a restart.
 * Without it one forged heartbeat with epoch 2^53-1 would freeze the region in the scheduler's
 * view for good (every real heartbeat would look stale).
 */
export function checkEpochHandedOut(region: Region, highWaterMark: number): void {
  const { version, confVer } = region.epoch;
  if (version > 1 + highWaterMark || confVer > 1 + CONF_CHANGES_PER_PEER_ID * highWaterMark) {
    throw new MrkvError(
      "PermissionDenied",
      `region ${region.id} claims epoch (conf_ver ${confVer}, version ${version}), ahead of ` +
        `anything this scheduler handed out (IDs up to ${highWaterMark})`,
    );
  }
}

/** Refuses (403) a split request for a region without a peer on the caller's store. */
export function checkRegionHasCaller(region: Region, caller: Caller): void {
  if (!caller.identified) return;
  if (!region.peers.some((p) => p.storeId === caller.storeId)) {
    throw new MrkvError(
      "PermissionDenied",
      `store ${caller.storeId} asked to split region ${region.id}, which has no peer on it`,
    );
  }
}
