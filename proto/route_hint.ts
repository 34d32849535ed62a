/**
 * Route hints: a store tells a client which store leads the region holding the key it asked
 * about, so that the client's next request for that key range goes straight there.
 *
 * Any store serves any key: one that does not lead the key's region forwards the request to the
 * store that does (or serves a read as a follower). That costs a second process on the request's
 * path, about half the stores' CPU per write at 64 writers on 3 stores (docs/benchmarks.md). A
 * client that keeps a map of key ranges to leaders, as TiKV's clients do with PD's region map,
 * skips it. mrkv hands the map out piece by piece with the answers themselves: a KV answer for
 * one key carries the header {@link ROUTE_HEADER} when the store that answered is not the
 * region's leader (the client was misrouted), or when the request asked for it by carrying the
 * same header (a client that has no route for the key yet).
 *
 * The header's value is six fields separated by single spaces:
 *
 * ```text
 * <region id> <region version> <start key, hex, or -> <end key, hex, or -> <leader store id> <leader URL>
 * ```
 *
 * `-` is an empty key: the first region starts at `-`, the last ends at `-` (unbounded). The
 * version is the region's epoch version, which every split and merge raises, so of two hints for
 * overlapping ranges the one with the higher version is newer. The URL is the leader store's
 * advertised address with the cluster's scheme (`http` or `https`). A hint is advice: a stale one
 * costs a forward, never a wrong answer, since every store still routes every request itself.
 *
 * @module
 */
import { compareBytes } from "./metapb.ts";

/** The response header carrying a hint, and the request header asking for one. */
export const ROUTE_HEADER = "x-mrkv-route";

/**
 * Region keys longer than this are not put in a hint (the header would grow past what HTTP
 * servers accept): such a range is simply not routed by the client.
 */
export const MAX_HINT_KEY_BYTES = 1024;

/** Where the region holding a key is led from. */
export interface RouteHint {
  readonly regionId: number;
  /** The region's epoch version (raised by every split and merge). */
  readonly version: number;
  /** Inclusive start; empty means from the first key. */
  readonly start: Uint8Array;
  /** Exclusive end; empty means to the last key. */
  readonly end: Uint8Array;
  readonly leaderStoreId: number;
  /** `http://host:port` or `https://host:port`, no path. */
  readonly leaderUrl: string;
}

/** The header value for `hint`, or undefined when a key is too long to carry. */
export function encodeRouteHint(hint: RouteHint): string | undefined {
  if (hint.start.length > MAX_HINT_KEY_BYTES || hint.end.length > MAX_HINT_KEY_BYTES) {
    return undefined;
  }
  const key = (k: Uint8Array) => k.length === 0 ? "-" : k.toHex();
  return `${hint.regionId} ${hint.version} ${key(hint.start)} ${key(hint.end)} ` +
    `${hint.leaderStoreId} ${hint.leaderUrl}`;
}

/**
 * Parses a header value; undefined when it is not a well-formed hint (a client must then route as
 * if there were none: the answer itself is still good).
 */
export function decodeRouteHint(value: string): RouteHint | undefined {
  const parts = value.split(" ");
  if (parts.length !== 6) return undefined;
  const [region, version, start, end, leader, url] = parts as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const regionId = id(region);
  const leaderStoreId = id(leader);
  const v = /^\d{1,15}$/.test(version) ? Number(version) : undefined;
  const startKey = hexKey(start);
  const endKey = hexKey(end);
  if (
    regionId === undefined || leaderStoreId === undefined || v === undefined ||
    startKey === undefined || endKey === undefined || !isStoreUrl(url)
  ) {
    return undefined;
  }
  if (endKey.length > 0 && compareBytes(startKey, endKey) >= 0) return undefined;
  return { regionId, version: v, start: startKey, end: endKey, leaderStoreId, leaderUrl: url };
}

function id(text: string): number | undefined {
  if (!/^[1-9]\d{0,14}$/.test(text)) return undefined;
  return Number(text);
}

function hexKey(text: string): Uint8Array | undefined {
  if (text === "-") return new Uint8Array(0);
  if (text.length > MAX_HINT_KEY_BYTES * 2 || !/^(?:[0-9a-f]{2})+$/.test(text)) return undefined;
  return Uint8Array.fromHex(text);
}

/** `http(s)://host:port` and nothing more: a hint cannot send a client to a path or a query. */
function isStoreUrl(text: string): boolean {
  return text.length <= 300 &&
    /^https?:\/\/(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/.test(text);
}
