/**
 * The one place where both servers decide who may call a route: a Hono middleware installed
 * before every route (docs/security.md). It classifies the route, authenticates the caller
 * ({@link Security.authenticate}), checks that the credential allows the route and that an
 * internal request names this cluster, and records the {@link Caller} for the handlers' identity
 * checks (`callerOf`). Handlers never read credential headers themselves.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { MrkvError } from "./errors.ts";
import {
  CLUSTER_ID_HEADER,
  type Credential,
  type CredentialKind,
  idHeader,
  type PeerInfo,
  type Security,
  STORE_ID_HEADER,
} from "./security.ts";
import type { Socket } from "node:net";

/**
 * Who may call a route: anyone (`public`), KV clients (`client`), operators (`admin`), cluster
 * members (`internal`), or members that may not know the cluster ID yet (`join`).
 */
export type RouteClass = "public" | "client" | "admin" | "internal" | "join";

/** The authenticated sender of a request, for identity checks in handlers. */
export interface Caller {
  /** The sender's store ID (0: the scheduler, a new store, or not a node). */
  readonly storeId: number;
  /** The cluster ID the sender named (0: none). */
  readonly clusterId: number;
  /**
   * False only in an insecure cluster for a request that named no store: identity checks are
   * skipped for it (there is nothing to check against).
   */
  readonly identified: boolean;
  readonly credential: Credential | undefined;
}

declare module "hono" {
  interface ContextVariableMap {
    caller: Caller;
  }
}

/** What {@link guard} needs from the server it protects. */
export interface GuardOptions {
  readonly security: Security;
  /** The route class of a request (a table per role). */
  readonly classify: (method: string, path: string, headers: Headers) => RouteClass;
  /** This server's cluster ID; undefined while it is not known yet (internal calls wait). */
  readonly clusterId: () => number | undefined;
  /** KV routes need no credential (`--kv-auth open`, or `auto` on loopback). */
  readonly clientRoutesOpen?: boolean;
  /** Where refusals are reported (rate-limited here). */
  readonly log?: (message: string) => void;
}

const NEEDED: Record<Exclude<RouteClass, "public">, CredentialKind> = {
  client: "client",
  admin: "admin",
  internal: "node",
  join: "node",
};

/** A route's taker of an upgraded connection: the socket, and bytes that came after the head. */
export type UpgradeUse = (socket: Socket, head: Uint8Array) => void;

/** Environment the HTTP listener passes to `app.fetch` (see `http_server.ts`). */
export interface ServerEnv {
  readonly peer?: PeerInfo;
  /**
   * Calls `fn` once the response has been written to the connection, or the connection has
   * closed (for resources held until a response is sent). Absent outside the listener.
   */
  readonly whenSent?: (fn: () => void) => void;
  /**
   * Present only on a request asking to upgrade its connection (`http_upgrade.ts`): a route
   * that calls it and answers 2xx gets the connection, switched to `protocol`.
   */
  readonly upgrade?: (protocol: string, use: UpgradeUse) => void;
}

/** The guard middleware; install it with `app.use(guard(...))` before any route. */
export function guard(opts: GuardOptions): MiddlewareHandler {
  const admit = admitter(opts);
  return async (c, next) => {
    const peer = (c.env as ServerEnv | undefined)?.peer;
    c.set("caller", admit(c.req.method, c.req.path, c.req.raw.headers, peer));
    return await next();
  };
}

/**
 * The guard's decision, for a server that answers some requests without its router (the
 * listener's direct routes): the caller of a request to `path`, or a thrown `MrkvError`
 * (refusals are logged, at most once a second).
 */
export function admitter(
  opts: GuardOptions,
): (method: string, path: string, headers: Headers, peer: PeerInfo | undefined) => Caller {
  let lastLog = 0;
  let suppressed = 0;
  const refuse = (method: string, path: string, err: MrkvError): never => {
    const now = Date.now();
    if (opts.log && now - lastLog >= 1000) {
      const more = suppressed > 0 ? ` (${suppressed} more refused since the last report)` : "";
      opts.log(`refused ${method} ${path}: ${err.message}${more}`);
      lastLog = now;
      suppressed = 0;
    } else {
      suppressed++;
    }
    throw err;
  };
  return (method, path, headers, peer) => {
    const cls = opts.classify(method, path, headers);
    if (cls === "public" || (cls === "client" && opts.clientRoutesOpen)) {
      return { storeId: 0, clusterId: 0, identified: false, credential: undefined };
    }
    const storeId = idHeader(headers, STORE_ID_HEADER);
    const clusterId = idHeader(headers, CLUSTER_ID_HEADER);
    const credential = opts.security.authenticate(headers, peer, storeId);
    if (!credential) {
      return refuse(
        method,
        path,
        new MrkvError(
          "Unauthenticated",
          `${cls} route needs a valid credential (docs/security.md)`,
        ),
      );
    }
    const needed = NEEDED[cls];
    if (!credential.kinds.has(needed)) {
      return refuse(
        method,
        path,
        new MrkvError(
          "PermissionDenied",
          `${cls} route needs ${needed === "admin" ? "an" : "a"} ${needed} credential`,
        ),
      );
    }
    if (cls === "internal" || cls === "join") {
      const ours = opts.clusterId();
      if (ours === undefined) {
        throw new MrkvError("ServerIsBusy", "this server does not know its cluster ID yet");
      }
      if (clusterId !== 0 && clusterId !== ours) {
        return refuse(
          method,
          path,
          new MrkvError("PermissionDenied", `request for cluster ${clusterId}, this is ${ours}`),
        );
      }
      if (clusterId === 0 && cls === "internal" && opts.security.secured) {
        return refuse(
          method,
          path,
          new MrkvError("PermissionDenied", `missing ${CLUSTER_ID_HEADER}`),
        );
      }
    }
    const identified = opts.security.secured || headers.has(STORE_ID_HEADER);
    return { storeId, clusterId, identified, credential };
  };
}

/** The caller the guard recorded. */
export function callerOf(c: Context): Caller {
  return c.get("caller") ??
    { storeId: 0, clusterId: 0, identified: false, credential: undefined };
}

/**
 * Refuses (403) unless the caller is store `storeId`: a node may only speak for itself.
 * Skipped for an unidentified caller (insecure cluster, no store named).
 */
export function checkCallerIsStore(caller: Caller, storeId: number, what: string): void {
  if (!caller.identified) return;
  if (caller.storeId !== storeId) {
    throw new MrkvError(
      "PermissionDenied",
      `${what} names store ${storeId}, but the request comes from store ${caller.storeId}`,
    );
  }
}
