/**
 * The scheduler's internal API (after kvproto's `pdpb`): request and response messages of
 * `/pd/rpc/v1/*`, the operator steps a region leader receives, and a decoder for each message.
 * Every body is CBOR (`application/cbor`); errors are the JSON of `proto/errors.ts`.
 * `docs/scheduler.md` describes each route.
 *
 * @module
 */
import {
  expectArray,
  expectBool,
  expectBytes,
  expectId,
  expectObject,
  expectSafeInt,
  expectString,
  expectUint,
  field,
  optional,
} from "./codec.ts";
import { MrkvError } from "./errors.ts";
import {
  decodeEpoch,
  decodePeer,
  decodeRegion,
  decodeStore,
  MAX_KEY_BYTES,
  type Peer,
  type Region,
  type RegionEpoch,
  type Store,
} from "./metapb.ts";

/** URL prefix of every internal route. Bumped when a message changes incompatibly. */
export const RPC_PREFIX = "/pd/rpc/v1";

/** Most IDs one `alloc_id` call may take. */
export const MAX_ALLOC_COUNT = 10_000;
/** Most region heartbeats in one request. */
export const MAX_HEARTBEATS_PER_REQUEST = 10_000;
/** Most stores one store heartbeat may report unreachable. */
export const MAX_UNREACHABLE_STORES = 1_000;
/** Most new regions one `ask_batch_split` may ask for. */
export const MAX_SPLIT_COUNT = 1_000;

// ---- messages --------------------------------------------------------------------------------

/** `bootstrap`: the first store creates region 1 = `["", "")` with one peer on itself. */
export interface BootstrapRequest {
  readonly store: Store;
}
/** The region the store must create (its one peer is the store's). */
export interface BootstrapResponse {
  readonly clusterId: number;
  readonly region: Region;
}

/** `is_bootstrapped` (empty request body `{}`). */
export interface IsBootstrappedResponse {
  readonly clusterId: number;
  readonly bootstrapped: boolean;
}

/** `alloc_id`: `count` fresh IDs, never handed out before (even across restarts). */
export interface AllocIdRequest {
  readonly count: number;
}
/** IDs `firstId .. firstId + count - 1`. */
export interface AllocIdResponse {
  readonly firstId: number;
  readonly count: number;
}

/** `put_store`: register (or re-register after a restart) a store under its ID. */
export interface PutStoreRequest {
  readonly store: Store;
}
/** `put_store` and `store_heartbeat` answer with the cluster ID. */
export interface ClusterIdResponse {
  readonly clusterId: number;
}

/** What a store reports about itself (sizes in bytes). */
export interface StoreStats {
  readonly storeId: number;
  readonly capacity: number;
  readonly available: number;
  readonly usedSize: number;
  readonly regionCount: number;
  readonly leaderCount: number;
  readonly sendingSnapCount: number;
  readonly receivingSnapCount: number;
  readonly isBusy: boolean;
  /**
   * Stores this store failed to send Raft messages to within the last few seconds. The
   * scheduler counts a store most others cannot reach as Disconnected before it misses its
   * own heartbeats (a killed process refuses connections at once).
   */
  readonly unreachableStores?: readonly number[];
}
/** `store_heartbeat`. */
export interface StoreHeartbeatRequest {
  readonly stats: StoreStats;
}

/** A peer the leader has not heard from for `downSeconds`. */
export interface DownPeer {
  readonly peer: Peer;
  readonly downSeconds: number;
}

/**
 * An operator step the leader will not carry out, and why (a split with no key to split at, a
 * transfer to a peer it has not heard from recently). The scheduler cancels the operator
 * instead of repeating the step until its deadline.
 */
export interface RefusedStep {
  readonly type: OperatorStep["type"];
  readonly reason: string;
}

/** One region's heartbeat, sent by its leader. */
export interface RegionHeartbeat {
  readonly region: Region;
  /** The sender; null only in tests of odd input. */
  readonly leader: Peer | null;
  /** Peers whose log is behind the leader's truncated index (they need a snapshot). */
  readonly pendingPeers: readonly Peer[];
  readonly downPeers: readonly DownPeer[];
  /** Approximate region size in bytes. */
  readonly approximateSize: number;
  readonly approximateKeys: number;
  /** The step the leader refused since its last report, if any. */
  readonly refusedStep?: RefusedStep;
  /** Bytes written and read since the previous full report (absent: not measured this time). */
  readonly flow?: RegionFlow;
}

/** A region's traffic over one reporting interval (for hot-region statistics). */
export interface RegionFlow {
  readonly bytesWritten: number;
  readonly bytesRead: number;
  /** Keys written (put or deleted) and read; absent from stores that do not count them. */
  readonly keysWritten?: number;
  readonly keysRead?: number;
  /** Length of the interval the bytes were counted over, in ms (at least 1). */
  readonly intervalMs: number;
}

function decodeRegionFlow(v: unknown, name: string): RegionFlow {
  const o = expectObject(v, name);
  const intervalMs = expectUint(field(o, "intervalMs"), `${name}.intervalMs`);
  if (intervalMs < 1) throw new MrkvError("BadRequest", `${name}.intervalMs must be at least 1`);
  return {
    bytesWritten: expectUint(field(o, "bytesWritten"), `${name}.bytesWritten`),
    bytesRead: expectUint(field(o, "bytesRead"), `${name}.bytesRead`),
    ...(field(o, "keysWritten") !== undefined &&
      { keysWritten: expectUint(field(o, "keysWritten"), `${name}.keysWritten`) }),
    ...(field(o, "keysRead") !== undefined &&
      { keysRead: expectUint(field(o, "keysRead"), `${name}.keysRead`) }),
    intervalMs,
  };
}

/** `region_heartbeat`: many regions in one request (one per region led by this store). */
export interface RegionHeartbeatRequest {
  readonly heartbeats: readonly RegionHeartbeat[];
}

/**
 * One operator step for a region leader to carry out. Each is idempotent from the store's view:
 * the scheduler repeats the current step on every heartbeat until the region shows it done.
 * - `AddLearner`: propose ConfChange AddLearner(peer).
 * - `PromoteLearner`: propose ConfChange AddVoter(peer) for an existing learner.
 * - `RemovePeer`: propose ConfChange RemovePeer(peer) (never the leader itself).
 * - `TransferLeader`: transfer leadership to `peer`.
 * - `SplitRegion`: split at `keys` (empty: the store picks the size midpoint), then ask_batch_split.
 * - `ChangePeerV2Enter`: propose one joint change promoting the learners `promote` and demoting
 *   the voters `demote`; `ChangePeerV2Leave`: leave the joint configuration (both carry the
 *   lists, so the step's end can be judged from the region).
 * - `MergeRegion`: merge this region (`source`) into the adjacent `target`: propose PrepareMerge.
 *   The target's own operator carries the same step with `passive` set; it is never sent.
 */
export type OperatorStep =
  | { readonly type: "AddLearner"; readonly peer: Peer }
  | { readonly type: "PromoteLearner"; readonly peer: Peer }
  | { readonly type: "RemovePeer"; readonly peer: Peer }
  | { readonly type: "TransferLeader"; readonly peer: Peer }
  | { readonly type: "SplitRegion"; readonly keys: readonly Uint8Array[] }
  | JointStep
  | MergeStep;

/** A step of a joint-consensus change (see {@link OperatorStep}). */
export interface JointStep {
  readonly type: "ChangePeerV2Enter" | "ChangePeerV2Leave";
  readonly promote: readonly Peer[];
  readonly demote: readonly Peer[];
}

/** A merge step (see {@link OperatorStep}). */
export interface MergeStep {
  readonly type: "MergeRegion";
  readonly source: Region;
  readonly target: Region;
  readonly passive: boolean;
}

/**
 * The answer for one heartbeat that needs one. `error` is set if the heartbeat was refused
 * (e.g. `EpochNotMatch` for a stale one); `step` if the leader has something to do, with the
 * epoch the scheduler saw (the leader must skip the step if its epoch differs).
 */
export interface RegionHeartbeatResult {
  readonly regionId: number;
  readonly error?: { readonly code: string; readonly message: string };
  readonly step?: OperatorStep;
  readonly epoch?: RegionEpoch;
}
/**
 * `region_heartbeat` response: one result per heartbeat that was refused or carries a step, in
 * request order; regions with nothing to say are left out (the common case costs nothing).
 */
export interface RegionHeartbeatResponse {
  readonly results: readonly RegionHeartbeatResult[];
}

/**
 * `wait_operator_steps`: a store's long poll for operator steps the scheduler pushes as soon as
 * they are made (the answer has the shape of a {@link RegionHeartbeatResponse}: steps for regions
 * the store leads, possibly none if `waitMs` passed first).
 */
export interface WaitOperatorStepsRequest {
  readonly storeId: number;
  readonly waitMs: number;
}

/** `ask_batch_split`: IDs for `splitCount` new regions carved out of `region`. */
export interface AskBatchSplitRequest {
  readonly region: Region;
  readonly splitCount: number;
}
/** IDs for one new region: its ID and one peer ID per existing peer, in `region.peers` order. */
export interface SplitId {
  readonly newRegionId: number;
  readonly newPeerIds: readonly number[];
}
/** `ask_batch_split` response. */
export interface AskBatchSplitResponse {
  readonly ids: readonly SplitId[];
}
/** `ask_split`: one new region. */
export interface AskSplitRequest {
  readonly region: Region;
}
/** `ask_split` response: a single {@link SplitId}. */
export type AskSplitResponse = SplitId;

/** `get_store`. */
export interface GetStoreRequest {
  readonly storeId: number;
}
/** A store and its state (`Up`, `Disconnected`, `Down`, `Offline`, `Tombstone`). */
export interface GetStoreResponse {
  readonly store: Store;
  readonly stateName: string;
}

/**
 * The scheduler's refusal of a store it has removed for good (`Tombstone`): the store's
 * heartbeats and registrations get this, and the store stops instead of retrying forever.
 */
export function storeRemovedError(storeId: number): MrkvError {
  return new MrkvError(
    "BadRequest",
    `store ${storeId} is a tombstone: it was removed from the cluster and cannot come back`,
    { store_state: "Tombstone" },
  );
}

/** True if `e` is {@link storeRemovedError}'s refusal (also after a trip over the wire). */
export function isStoreRemoved(e: unknown): e is MrkvError {
  return e instanceof MrkvError && e.details.store_state === "Tombstone";
}

/** `get_all_stores` response: every store the scheduler knows, with its state. */
export interface GetAllStoresResponse {
  readonly stores: readonly GetStoreResponse[];
}

/** `get_region`: the region holding `key`. */
export interface GetRegionRequest {
  readonly key: Uint8Array;
}
/** `get_region_by_id`. */
export interface GetRegionByIdRequest {
  readonly regionId: number;
}
/** A region and its last reported leader (null if unknown). */
export interface GetRegionResponse {
  readonly region: Region;
  readonly leader: Peer | null;
}

// ---- decoders --------------------------------------------------------------------------------

const key = (v: unknown, n: string) => expectBytes(v, n, MAX_KEY_BYTES);
const peers = (v: unknown, n: string) => expectArray(v, n, decodePeer, 64);

/** Decodes a {@link BootstrapRequest} (or a {@link PutStoreRequest}: same shape). */
export function decodeBootstrapRequest(v: unknown): BootstrapRequest {
  return { store: decodeStore(field(expectObject(v, "body"), "store"), "store") };
}
/** Decodes a {@link PutStoreRequest}. */
export const decodePutStoreRequest: (v: unknown) => PutStoreRequest = decodeBootstrapRequest;

/** Decodes a {@link BootstrapResponse}. */
export function decodeBootstrapResponse(v: unknown): BootstrapResponse {
  const o = expectObject(v, "body");
  return {
    clusterId: expectId(field(o, "clusterId"), "clusterId"),
    region: decodeRegion(field(o, "region"), "region"),
  };
}

/** Decodes an {@link IsBootstrappedResponse}. */
export function decodeIsBootstrappedResponse(v: unknown): IsBootstrappedResponse {
  const o = expectObject(v, "body");
  return {
    clusterId: expectId(field(o, "clusterId"), "clusterId"),
    bootstrapped: expectBool(field(o, "bootstrapped"), "bootstrapped"),
  };
}

/** Decodes an {@link AllocIdRequest}. */
export function decodeAllocIdRequest(v: unknown): AllocIdRequest {
  const o = expectObject(v, "body");
  return { count: expectSafeInt(field(o, "count"), "count", 1, MAX_ALLOC_COUNT) };
}
/** Decodes an {@link AllocIdResponse}. */
export function decodeAllocIdResponse(v: unknown): AllocIdResponse {
  const o = expectObject(v, "body");
  return {
    firstId: expectId(field(o, "firstId"), "firstId"),
    count: expectId(field(o, "count"), "count"),
  };
}

/** Decodes a {@link ClusterIdResponse}. */
export function decodeClusterIdResponse(v: unknown): ClusterIdResponse {
  return { clusterId: expectId(field(expectObject(v, "body"), "clusterId"), "clusterId") };
}

/** Decodes a {@link StoreHeartbeatRequest}. Counters other than `storeId` default to 0. */
export function decodeStoreHeartbeatRequest(v: unknown): StoreHeartbeatRequest {
  const s = expectObject(field(expectObject(v, "body"), "stats"), "stats");
  const n = (k: string) => optional(field(s, k), `stats.${k}`, expectUint, 0);
  return {
    stats: {
      storeId: expectId(field(s, "storeId"), "stats.storeId"),
      capacity: n("capacity"),
      available: n("available"),
      usedSize: n("usedSize"),
      regionCount: n("regionCount"),
      leaderCount: n("leaderCount"),
      sendingSnapCount: n("sendingSnapCount"),
      receivingSnapCount: n("receivingSnapCount"),
      isBusy: optional(field(s, "isBusy"), "stats.isBusy", expectBool, false),
      unreachableStores: optional(
        field(s, "unreachableStores"),
        "stats.unreachableStores",
        (v, n) => expectArray(v, n, expectId, MAX_UNREACHABLE_STORES),
        [],
      ),
    },
  };
}

function decodeDownPeer(v: unknown, name: string): DownPeer {
  const o = expectObject(v, name);
  return {
    peer: decodePeer(field(o, "peer"), `${name}.peer`),
    downSeconds: expectUint(field(o, "downSeconds"), `${name}.downSeconds`),
  };
}

const STEP_TYPES: readonly OperatorStep["type"][] = [
  "AddLearner",
  "PromoteLearner",
  "RemovePeer",
  "TransferLeader",
  "SplitRegion",
];

/** Most characters of a refusal's reason. */
export const MAX_REASON_CHARS = 1024;

function decodeRefusedStep(v: unknown, name: string): RefusedStep {
  const o = expectObject(v, name);
  const type = expectString(field(o, "type"), `${name}.type`, 32);
  const known = STEP_TYPES.find((t) => t === type);
  if (!known) throw new MrkvError("BadRequest", `${name}.type "${type}" is not an operator step`);
  return {
    type: known,
    reason: expectString(field(o, "reason"), `${name}.reason`, MAX_REASON_CHARS),
  };
}

/** Decodes one {@link RegionHeartbeat}. */
export function decodeRegionHeartbeat(v: unknown, name: string): RegionHeartbeat {
  const o = expectObject(v, name);
  const refused = field(o, "refusedStep");
  return {
    region: decodeRegion(field(o, "region"), `${name}.region`),
    leader: optional(field(o, "leader"), `${name}.leader`, decodePeer, null),
    pendingPeers: optional(field(o, "pendingPeers"), `${name}.pendingPeers`, peers, []),
    downPeers: optional(
      field(o, "downPeers"),
      `${name}.downPeers`,
      (x, n) => expectArray(x, n, decodeDownPeer, 64),
      [],
    ),
    approximateSize: optional(
      field(o, "approximateSize"),
      `${name}.approximateSize`,
      expectUint,
      0,
    ),
    approximateKeys: optional(
      field(o, "approximateKeys"),
      `${name}.approximateKeys`,
      expectUint,
      0,
    ),
    ...(refused !== undefined && refused !== null &&
      { refusedStep: decodeRefusedStep(refused, `${name}.refusedStep`) }),
    ...(field(o, "flow") !== undefined &&
      { flow: decodeRegionFlow(field(o, "flow"), `${name}.flow`) }),
  };
}

/** Decodes a {@link RegionHeartbeatRequest}. */
export function decodeRegionHeartbeatRequest(v: unknown): RegionHeartbeatRequest {
  const o = expectObject(v, "body");
  return {
    heartbeats: expectArray(
      field(o, "heartbeats"),
      "heartbeats",
      decodeRegionHeartbeat,
      MAX_HEARTBEATS_PER_REQUEST,
    ),
  };
}

/** Decodes an {@link OperatorStep}. */
export function decodeOperatorStep(v: unknown, name: string): OperatorStep {
  const o = expectObject(v, name);
  const type = expectString(field(o, "type"), `${name}.type`, 32);
  switch (type) {
    case "AddLearner":
    case "PromoteLearner":
    case "RemovePeer":
    case "TransferLeader":
      return { type, peer: decodePeer(field(o, "peer"), `${name}.peer`) };
    case "SplitRegion":
      return { type, keys: expectArray(field(o, "keys"), `${name}.keys`, key, MAX_SPLIT_COUNT) };
    case "ChangePeerV2Enter":
    case "ChangePeerV2Leave":
      return {
        type,
        promote: peers(field(o, "promote"), `${name}.promote`),
        demote: peers(field(o, "demote"), `${name}.demote`),
      };
    case "MergeRegion":
      return {
        type,
        source: decodeRegion(field(o, "source"), `${name}.source`),
        target: decodeRegion(field(o, "target"), `${name}.target`),
        passive: optional(field(o, "passive"), `${name}.passive`, expectBool, false),
      };
    default:
      throw new MrkvError("BadRequest", `${name}.type "${type}" is not an operator step`);
  }
}

/** Decodes a {@link RegionHeartbeatResponse}. */
export function decodeRegionHeartbeatResponse(v: unknown): RegionHeartbeatResponse {
  const o = expectObject(v, "body");
  const results = expectArray(field(o, "results"), "results", (x, n): RegionHeartbeatResult => {
    const r = expectObject(x, n);
    const err = optional(field(r, "error"), `${n}.error`, expectObject, undefined);
    return {
      regionId: expectId(field(r, "regionId"), `${n}.regionId`),
      ...(err && {
        error: {
          code: expectString(field(err, "code"), `${n}.error.code`),
          message: expectString(field(err, "message"), `${n}.error.message`, 65536),
        },
      }),
      ...(field(r, "step") !== undefined &&
        { step: decodeOperatorStep(field(r, "step"), `${n}.step`) }),
      ...(field(r, "epoch") !== undefined &&
        { epoch: decodeEpoch(field(r, "epoch"), `${n}.epoch`) }),
    };
  }, MAX_HEARTBEATS_PER_REQUEST);
  return { results };
}

/** Decodes a {@link WaitOperatorStepsRequest}. */
export function decodeWaitOperatorStepsRequest(v: unknown): WaitOperatorStepsRequest {
  const o = expectObject(v, "body");
  return {
    storeId: expectId(field(o, "storeId"), "storeId"),
    waitMs: expectSafeInt(field(o, "waitMs"), "waitMs", 0, 60_000),
  };
}

/** Decodes an {@link AskBatchSplitRequest}. */
export function decodeAskBatchSplitRequest(v: unknown): AskBatchSplitRequest {
  const o = expectObject(v, "body");
  return {
    region: decodeRegion(field(o, "region"), "region"),
    splitCount: expectSafeInt(field(o, "splitCount"), "splitCount", 1, MAX_SPLIT_COUNT),
  };
}
/** Decodes an {@link AskSplitRequest}. */
export function decodeAskSplitRequest(v: unknown): AskSplitRequest {
  return { region: decodeRegion(field(expectObject(v, "body"), "region"), "region") };
}

function decodeSplitId(v: unknown, name: string): SplitId {
  const o = expectObject(v, name);
  return {
    newRegionId: expectId(field(o, "newRegionId"), `${name}.newRegionId`),
    newPeerIds: expectArray(field(o, "newPeerIds"), `${name}.newPeerIds`, expectId, 64),
  };
}
/** Decodes an {@link AskBatchSplitResponse}. */
export function decodeAskBatchSplitResponse(v: unknown): AskBatchSplitResponse {
  const o = expectObject(v, "body");
  return { ids: expectArray(field(o, "ids"), "ids", decodeSplitId, MAX_SPLIT_COUNT) };
}
/** Decodes an {@link AskSplitResponse}. */
export function decodeAskSplitResponse(v: unknown): AskSplitResponse {
  return decodeSplitId(v, "body");
}

/** Decodes a {@link GetStoreRequest}. */
export function decodeGetStoreRequest(v: unknown): GetStoreRequest {
  return { storeId: expectId(field(expectObject(v, "body"), "storeId"), "storeId") };
}
/** Decodes a {@link GetStoreResponse}. */
export function decodeGetStoreResponse(v: unknown): GetStoreResponse {
  const o = expectObject(v, "body");
  return {
    store: decodeStore(field(o, "store"), "store"),
    stateName: expectString(field(o, "stateName"), "stateName", 32),
  };
}

/** Most stores one `get_all_stores` answer may list. */
const MAX_STORES = 100_000;

/** Decodes a {@link GetAllStoresResponse}. */
export function decodeGetAllStoresResponse(v: unknown): GetAllStoresResponse {
  const o = expectObject(v, "body");
  return {
    stores: expectArray(field(o, "stores"), "stores", decodeGetStoreResponse, MAX_STORES),
  };
}

/** Decodes a {@link GetRegionRequest}. */
export function decodeGetRegionRequest(v: unknown): GetRegionRequest {
  return { key: key(field(expectObject(v, "body"), "key"), "key") };
}
/** Decodes a {@link GetRegionByIdRequest}. */
export function decodeGetRegionByIdRequest(v: unknown): GetRegionByIdRequest {
  return { regionId: expectId(field(expectObject(v, "body"), "regionId"), "regionId") };
}
/** Decodes a {@link GetRegionResponse}. */
export function decodeGetRegionResponse(v: unknown): GetRegionResponse {
  const o = expectObject(v, "body");
  return {
    region: decodeRegion(field(o, "region"), "region"),
    leader: optional(field(o, "leader"), "leader", decodePeer, null),
  };
}
