/**
 * The store's side of the guard (docs/security.md): which credential each route needs, and the
 * identity checks on Raft traffic once the sender is authenticated. A Raft batch must come from
 * the store its credential names and be addressed to this store, or nothing in it is delivered.
 *
 * @module
 */
import { type Caller, checkCallerIsStore, type RouteClass } from "../proto/http_guard.ts";
import { MrkvError } from "../proto/errors.ts";
import { FORWARD_STREAM_PATH, FORWARDED_HEADER } from "./kv_service.ts";
import type { RaftBatch } from "./transport.ts";

/** Whether `pathname` (no query) is a KV API route: `/kv` or `/kv/<key>`. */
export function isKvPath(pathname: string): boolean {
  return pathname === "/kv" || pathname.startsWith("/kv/");
}

/**
 * The route class of a store request. Anything not listed needs an admin credential, so a new
 * route is never open by accident.
 */
export function storeRouteClass(_method: string, path: string, headers: Headers): RouteClass {
  if (path === "/status" || path === "/metrics") return "public";
  if (isKvPath(path)) {
    // A forwarded request is served locally without routing: only another store may send one.
    return headers.has(FORWARDED_HEADER) ? "internal" : "client";
  }
  if (path.startsWith("/raft/") || path === FORWARD_STREAM_PATH) return "internal";
  return "admin";
}

/**
 * Refuses (403) a batch whose sender is not the authenticated store, or with an envelope for
 * another store: delivering it would let one store speak for another's peers.
 */
export function checkRaftBatch(batch: RaftBatch, caller: Caller, storeId: number): void {
  checkCallerIsStore(caller, batch.fromStoreId, "raft batch");
  for (const env of batch.envelopes) {
    if (env.toPeer.storeId !== storeId) {
      throw new MrkvError(
        "PermissionDenied",
        `raft batch holds a message for store ${env.toPeer.storeId}; this is store ${storeId}`,
      );
    }
    if (env.fromPeer.storeId !== batch.fromStoreId) {
      throw new MrkvError(
        "PermissionDenied",
        `raft batch from store ${batch.fromStoreId} holds a message from a peer on store ${env.fromPeer.storeId}`,
      );
    }
  }
}
