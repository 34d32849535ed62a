/**
 * Cluster metadata both servers speak (after kvproto's `metapb`): peers, region epochs, regions
 * and stores, plus key-range helpers. Keys are raw bytes compared bytewise; an empty `endKey`
 * means +infinity, an empty `startKey` means -infinity.
 *
 * @module
 */
import {
  expectArray,
  expectBytes,
  expectId,
  expectObject,
  expectString,
  expectUint,
  field,
  optional,
} from "./codec.ts";
import { MrkvError } from "./errors.ts";

/** Largest key accepted anywhere (docs/api.md: keys are 1..1024 bytes; split keys likewise). */
export const MAX_KEY_BYTES = 4096;

/**
 * A peer's role in its Raft group. Learners replicate but do not vote. The other two exist only
 * in a joint configuration (TiKV's roles): an `IncomingVoter` votes in the incoming configuration
 * only, a `DemotingVoter` in the outgoing one only, and becomes a learner when the joint
 * configuration is left. A `Voter` votes in both.
 */
export type PeerRole = "Voter" | "Learner" | "IncomingVoter" | "DemotingVoter";

/** Every {@link PeerRole}. */
export const PEER_ROLES: readonly PeerRole[] = [
  "Voter",
  "Learner",
  "IncomingVoter",
  "DemotingVoter",
];

/** True for the roles that exist only in a joint configuration. */
export function isJointRole(role: PeerRole): boolean {
  return role === "IncomingVoter" || role === "DemotingVoter";
}

/** True if a region's peer list describes a joint configuration. */
export function isJointRegion(region: Pick<Region, "peers">): boolean {
  return region.peers.some((p) => isJointRole(p.role));
}

/** One replica of a region, living on one store. */
export interface Peer {
  readonly id: number;
  readonly storeId: number;
  readonly role: PeerRole;
}

/**
 * A region's epoch. `confVer` grows by one on every membership change, `version` on every
 * split or merge. Invariant: both only grow.
 */
export interface RegionEpoch {
  readonly confVer: number;
  readonly version: number;
}

/** A key range `[startKey, endKey)` replicated by one Raft group. */
export interface Region {
  readonly id: number;
  readonly startKey: Uint8Array;
  /** Empty means +infinity. */
  readonly endKey: Uint8Array;
  readonly epoch: RegionEpoch;
  readonly peers: readonly Peer[];
}

/** A store (one process), as registered with the scheduler. */
export interface Store {
  readonly id: number;
  /** HOST:PORT other servers dial. */
  readonly address: string;
  /**
   * What the store's version can do beyond the basics ({@link STORE_FEATURES}); the scheduler
   * uses a feature only once every store has it. Absent: none (an older store).
   */
  readonly features?: readonly string[];
}

/** Joint-consensus membership changes (ChangePeerV2). */
export const FEATURE_JOINT_CONSENSUS = "joint-consensus";
/** Region merge (PrepareMerge, CommitMerge, RollbackMerge). */
export const FEATURE_MERGE = "merge";
/** The features this version's stores register with. */
export const STORE_FEATURES: readonly string[] = [FEATURE_JOINT_CONSENSUS, FEATURE_MERGE];

/** Bytewise comparison: negative, zero or positive like `Array.prototype.sort` wants. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** True if both byte strings are equal. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && compareBytes(a, b) === 0;
}

/**
 * Index of the last of `sorted` (ranges in start-key order) whose start key is <= `key`, or -1:
 * the only range that can hold `key`. Binary search, for every sorted map of key ranges (a
 * store's regions, the scheduler's region tree, a client's routes).
 */
export function lastStartingAtOrBefore(
  sorted: readonly { readonly startKey: Uint8Array }[],
  key: Uint8Array,
): number {
  let lo = 0;
  let hi = sorted.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (compareBytes(sorted[mid]!.startKey, key) <= 0) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

/** True if `key` is inside `[region.startKey, region.endKey)`. */
export function keyInRegion(key: Uint8Array, region: Pick<Region, "startKey" | "endKey">): boolean {
  return compareBytes(key, region.startKey) >= 0 &&
    (region.endKey.length === 0 || compareBytes(key, region.endKey) < 0);
}

/** Compares two end keys where empty means +infinity. */
export function compareEndKeys(a: Uint8Array, b: Uint8Array): number {
  if (a.length === 0) return b.length === 0 ? 0 : 1;
  if (b.length === 0) return -1;
  return compareBytes(a, b);
}

/** True if two key ranges share at least one key. */
export function rangesOverlap(
  a: Pick<Region, "startKey" | "endKey">,
  b: Pick<Region, "startKey" | "endKey">,
): boolean {
  const before = (start: Uint8Array, end: Uint8Array) =>
    end.length === 0 || compareBytes(start, end) < 0;
  return before(a.startKey, b.endKey) && before(b.startKey, a.endKey);
}

/** True if two epochs are field-for-field equal. */
export function epochEqual(a: RegionEpoch, b: RegionEpoch): boolean {
  return a.confVer === b.confVer && a.version === b.version;
}

/** True if `a` is lower than `b` in either field: a region with epoch `a` is stale. */
export function isEpochStale(a: RegionEpoch, b: RegionEpoch): boolean {
  return a.version < b.version || a.confVer < b.confVer;
}

/** The peer of `region` on `storeId`, if any. */
export function peerOnStore(region: Region, storeId: number): Peer | undefined {
  return region.peers.find((p) => p.storeId === storeId);
}

/** Decodes a {@link Peer}; `role` defaults to `"Voter"`. */
export function decodePeer(v: unknown, name: string): Peer {
  const o = expectObject(v, name);
  const role = optional(field(o, "role"), `${name}.role`, expectString, "Voter");
  if (!(PEER_ROLES as readonly string[]).includes(role)) {
    throw new MrkvError("BadRequest", `${name}.role must be one of ${PEER_ROLES.join(", ")}`);
  }
  return {
    id: expectId(field(o, "id"), `${name}.id`),
    storeId: expectId(field(o, "storeId"), `${name}.storeId`),
    role: role as PeerRole,
  };
}

/** Decodes a {@link RegionEpoch}. */
export function decodeEpoch(v: unknown, name: string): RegionEpoch {
  const o = expectObject(v, name);
  return {
    confVer: expectUint(field(o, "confVer"), `${name}.confVer`),
    version: expectUint(field(o, "version"), `${name}.version`),
  };
}

/** Decodes a {@link Region}. A missing epoch is `{0, 0}`; missing keys are empty. */
export function decodeRegion(v: unknown, name: string): Region {
  const o = expectObject(v, name);
  const empty = new Uint8Array();
  const keyField = (k: string) =>
    optional(field(o, k), `${name}.${k}`, (x, n) => expectBytes(x, n, MAX_KEY_BYTES), empty);
  const region: Region = {
    id: expectId(field(o, "id"), `${name}.id`),
    startKey: keyField("startKey"),
    endKey: keyField("endKey"),
    epoch: optional(field(o, "epoch"), `${name}.epoch`, decodeEpoch, { confVer: 0, version: 0 }),
    peers: optional(
      field(o, "peers"),
      `${name}.peers`,
      (x, n) => expectArray(x, n, decodePeer, 64),
      [],
    ),
  };
  if (region.endKey.length > 0 && compareBytes(region.startKey, region.endKey) >= 0) {
    throw new MrkvError("BadRequest", `${name} has startKey >= endKey`);
  }
  const ids = new Set<number>();
  const stores = new Set<number>();
  for (const p of region.peers) {
    if (ids.has(p.id) || stores.has(p.storeId)) {
      throw new MrkvError("BadRequest", `${name}.peers repeats peer ${p.id} or store ${p.storeId}`);
    }
    ids.add(p.id);
    stores.add(p.storeId);
  }
  return region;
}

/** Decodes a {@link Store}. */
export function decodeStore(v: unknown, name: string): Store {
  const o = expectObject(v, name);
  const address = expectString(field(o, "address"), `${name}.address`, 256);
  if (!/^[^\s/]+:\d{1,5}$/.test(address)) {
    throw new MrkvError("BadRequest", `${name}.address must look like HOST:PORT, got "${address}"`);
  }
  const features = optional(
    field(o, "features"),
    `${name}.features`,
    (v, n) => expectArray(v, n, (x, m) => expectString(x, m, 64), 32),
    undefined,
  );
  return {
    id: expectId(field(o, "id"), `${name}.id`),
    address,
    ...(features === undefined ? {} : { features }),
  };
}

/** True if `a` ends where `b` starts or `b` ends where `a` starts (they may merge). */
export function regionsAdjacent(
  a: Pick<Region, "startKey" | "endKey">,
  b: Pick<Region, "startKey" | "endKey">,
): boolean {
  return (a.endKey.length > 0 && bytesEqual(a.endKey, b.startKey)) ||
    (b.endKey.length > 0 && bytesEqual(b.endKey, a.startKey));
}

/** True if `store` registered with `feature`. */
export function storeHasFeature(store: Store, feature: string): boolean {
  return store.features?.includes(feature) ?? false;
}
