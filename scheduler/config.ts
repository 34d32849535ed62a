/**
 * The schedule config: what `GET/POST /pd/api/v1/config` reads and changes at run time
 * (admin JSON is snake_case; numbers are counts or milliseconds, durations may also be given
 * as strings such as `"30m"`).
 *
 * @module
 */
import { parseDuration } from "../config/config.ts";
import { expectObject, expectSafeInt, field, type Fields } from "../proto/codec.ts";
import { MrkvError } from "../proto/errors.ts";

/** Knobs the checkers, schedulers and coordinator read on every run. */
export interface ScheduleConfig {
  maxReplicas: number;
  /** ms without a store heartbeat before a store is Down. */
  maxStoreDownTime: number;
  /** ms without a store heartbeat before a store is Disconnected (never an operator target). */
  storeDisconnectTime: number;
  scheduleIntervalMs: number;
  /** Most running balance-region operators (PD: region-schedule-limit). */
  regionScheduleLimit: number;
  /** Most running balance-leader operators (PD: leader-schedule-limit). */
  leaderScheduleLimit: number;
  /** Most running hot-region operators (PD: hot-region-schedule-limit). */
  hotRegionScheduleLimit: number;
  /** Most running replica-checker operators (PD: replica-schedule-limit). */
  replicaScheduleLimit: number;
  /** Most merges at once (PD: merge-schedule-limit); 0 turns the merge checker off. */
  mergeScheduleLimit: number;
  /** A region at most this large (MiB) may be merged into a neighbour. */
  maxMergeRegionSize: number;
  /** ... and with at most this many keys. */
  maxMergeRegionKeys: number;
  /**
   * A merge never makes a region larger than this (MiB): keep it below the stores'
   * `region-max-size`, or merged regions split again.
   */
  maxMergedRegionSize: number;
  /**
   * ms a region must go unsplit before it is merged (PD: split-merge-interval), also counted
   * from the scheduler's start: ranges do not flap between splitting and merging.
   */
  splitMergeInterval: number;
}

/** PD's defaults, and those of docs/configuration.md. */
export const DEFAULT_SCHEDULE_CONFIG: Readonly<ScheduleConfig> = {
  maxReplicas: 3,
  maxStoreDownTime: 30 * 60_000,
  // Three missed heartbeats at the stores' default interval of 1 s.
  storeDisconnectTime: 3_000,
  scheduleIntervalMs: 100,
  regionScheduleLimit: 2048,
  leaderScheduleLimit: 4,
  hotRegionScheduleLimit: 4,
  replicaScheduleLimit: 64,
  mergeScheduleLimit: 8,
  maxMergeRegionSize: 20,
  maxMergeRegionKeys: 200_000,
  maxMergedRegionSize: 64,
  splitMergeInterval: 60 * 60_000,
};

const FIELDS: ReadonlyArray<[keyof ScheduleConfig, string, number, boolean]> = [
  // [camelCase, snake_case, minimum, is a duration]
  ["maxReplicas", "max_replicas", 1, false],
  ["maxStoreDownTime", "max_store_down_time", 1, true],
  ["storeDisconnectTime", "store_disconnect_time", 1, true],
  ["scheduleIntervalMs", "schedule_interval_ms", 1, true],
  ["regionScheduleLimit", "region_schedule_limit", 0, false],
  ["leaderScheduleLimit", "leader_schedule_limit", 0, false],
  ["hotRegionScheduleLimit", "hot_region_schedule_limit", 0, false],
  ["replicaScheduleLimit", "replica_schedule_limit", 0, false],
  ["mergeScheduleLimit", "merge_schedule_limit", 0, false],
  ["maxMergeRegionSize", "max_merge_region_size", 0, false],
  ["maxMergeRegionKeys", "max_merge_region_keys", 0, false],
  ["maxMergedRegionSize", "max_merged_region_size", 1, false],
  ["splitMergeInterval", "split_merge_interval", 0, true],
];

/** The admin JSON of a config. */
export function configToJson(c: ScheduleConfig): Record<string, number> {
  return Object.fromEntries(FIELDS.map(([k, snake]) => [snake, c[k]]));
}

/**
 * Applies a (partial) admin JSON object to `base`, returning the new config. Unknown fields or
 * bad values are `BadRequest`s naming the field; nothing is applied unless all are valid.
 */
export function applyConfigJson(base: ScheduleConfig, body: unknown): ScheduleConfig {
  const o: Fields = expectObject(body, "body");
  const known = new Set(FIELDS.map((f) => f[1]));
  for (const k of Object.keys(o)) {
    if (!known.has(k)) throw new MrkvError("BadRequest", `unknown config field "${k}"`);
  }
  const out = { ...base };
  for (const [k, snake, min, duration] of FIELDS) {
    let v = field(o, snake);
    if (v === undefined) continue;
    if (duration && typeof v === "string") {
      try {
        v = parseDuration(v);
      } catch (e) {
        throw new MrkvError("BadRequest", `${snake}: ${(e as Error).message}`);
      }
    }
    out[k] = expectSafeInt(v, snake, min, k === "maxReplicas" ? 15 : Number.MAX_SAFE_INTEGER);
  }
  return out;
}
