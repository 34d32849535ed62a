/**
 * A client's map of key ranges to the stores that lead them, learned from the route hints mrkv's
 * stores put on their answers (`proto/route_hint.ts`). With it the load tool sends each request
 * to the leader of its key's region, as TiKV's clients do, instead of to the next endpoint in
 * turn, which two times in three is a store that must forward it (`--route leader`).
 *
 * The map is advice, never truth: a stale route costs one forward, and the answer carries a
 * fresh hint. A route whose store cannot be reached, or answers that it cannot serve, is
 * forgotten, and requests for its range go round-robin again until a store names the new leader.
 *
 * @module
 */
import {
  compareBytes,
  keyInRegion,
  lastStartingAtOrBefore,
  rangesOverlap,
} from "../../proto/metapb.ts";
import type { RouteHint } from "../../proto/route_hint.ts";

interface Route {
  readonly startKey: Uint8Array;
  /** Empty: unbounded. */
  readonly endKey: Uint8Array;
  readonly version: number;
  readonly url: string;
}

/** What a run's routing did, for the report. */
export interface RouteStats {
  /** Requests sent to a leader a hint named, and requests sent to the runner's endpoint. */
  readonly routed: number;
  readonly unrouted: number;
  /** Key ranges routed at the end. */
  readonly ranges: number;
  /** Hints that changed a route, hints ignored (stale, malformed or refused), routes forgotten. */
  readonly learned: number;
  readonly ignored: number;
  readonly forgotten: number;
}

/** Key ranges → leader URLs; ranges never overlap. */
export class RouteCache {
  /** Sorted by start key. */
  #routes: Route[] = [];
  /** Hints taken, and ignored (stale or refused by `accept`), for the report. */
  learned = 0;
  ignored = 0;
  /** Routes dropped because their store did not answer, or could not serve. */
  forgotten = 0;
  /** Requests sent by a route, and without one (counted by the client). */
  routed = 0;
  unrouted = 0;

  /** `accept` says whether the client may follow a hint to this URL at all. */
  constructor(readonly accept: (url: string) => boolean = () => true) {}

  /** The counters so far. */
  stats(): RouteStats {
    return {
      routed: this.routed,
      unrouted: this.unrouted,
      ranges: this.#routes.length,
      learned: this.learned,
      ignored: this.ignored,
      forgotten: this.forgotten,
    };
  }

  /** How many ranges are routed. */
  get size(): number {
    return this.#routes.length;
  }

  /** The leader URL for `key`, if a route covers it. */
  lookup(key: Uint8Array): string | undefined {
    const route = this.#routes[lastStartingAtOrBefore(this.#routes, key)];
    return route && keyInRegion(key, route) ? route.url : undefined;
  }

  /**
   * Takes a hint: it replaces every route it overlaps, unless one of them comes from a newer
   * region version (the hint describes a region since split or merged).
   */
  learn(hint: RouteHint): void {
    if (!this.accept(hint.leaderUrl)) {
      this.ignored++;
      return;
    }
    const range = { startKey: hint.start, endKey: hint.end };
    const overlapping = this.#routes.filter((r) => rangesOverlap(r, range));
    if (overlapping.some((r) => r.version > hint.version)) {
      this.ignored++;
      return;
    }
    const same = overlapping.length === 1 && overlapping[0]!.url === hint.leaderUrl &&
      overlapping[0]!.version === hint.version;
    if (same) return;
    this.learned++;
    const kept = this.#routes.filter((r) => !rangesOverlap(r, range));
    kept.push({ ...range, version: hint.version, url: hint.leaderUrl });
    kept.sort((a, b) => compareBytes(a.startKey, b.startKey));
    this.#routes = kept;
  }

  /** Drops every route to `url` (its store did not answer). */
  forget(url: string): void {
    const before = this.#routes.length;
    this.#routes = this.#routes.filter((r) => r.url !== url);
    this.forgotten += before - this.#routes.length;
  }
}
