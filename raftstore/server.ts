/**
 * A store's HTTP routes: the KV API of docs/api.md, the Raft batch intake, store-local
 * inspection (`/debug/*`), `/status` and `/metrics`. Handlers decode, call the KV service or the
 * store, and encode; every error goes through `errorResponse` in `app.onError`.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { errorResponse, MrkvError } from "../proto/errors.ts";
import { jsonNewline, notFoundHandler } from "../proto/routes.ts";
import { VERSION } from "../telemetry/mod.ts";
import { callerOf, guard, type GuardOptions, type ServerEnv } from "../proto/http_guard.ts";
import { BodyReadError } from "../proto/http_body.ts";
import { Security } from "../proto/security.ts";
import { checkRaftBatch, isKvPath, storeRouteClass } from "./intake_guard.ts";
import {
  clientKeyAnswer,
  KEY_OPS,
  keyFromPathname,
  kvDirectRoute,
  MAX_KEY_BYTES,
} from "./kv_direct.ts";
import type { DirectAnswer, DirectRoute } from "../proto/http_server.ts";
import { readBodyLimited } from "../proto/http_body.ts";
import { ROUTE_HEADER } from "../proto/route_hint.ts";
import { keyJson, utf8OrNull } from "../proto/json.ts";
import type { Region } from "../proto/metapb.ts";
import { MAX_VALUE_BYTES } from "./cmd.ts";
import {
  decodeTagHeader,
  FORWARD_STREAM_PATH,
  FORWARD_STREAM_PROTOCOL,
  FORWARDED_HEADER,
  type KvService,
  MAX_SCAN_PAGE_BYTES,
  REQUEST_TAG_HEADER,
} from "./kv_service.ts";
import { newRequestTag, type RequestTag } from "./applied_requests.ts";
import { ScanGate } from "./scan_gate.ts";
import type { Store } from "./store.ts";
import { decodeRaftBatch } from "./transport.ts";
import { RAFT_BATCH_PATH } from "./transport_http.ts";
import { RAFT_STREAM_PATH, RAFT_STREAM_PROTOCOL, serveRaftStream } from "./raft_stream.ts";
import { serveRequestStream } from "../proto/request_stream.ts";
import { RAFT_SNAPSHOT_PATH, SNAPSHOT_CHUNK_BYTES, SnapshotAssembler } from "./snapshot_stream.ts";

/** Scan page size: default and maximum. */
const SCAN_DEFAULT_LIMIT = 100;
const SCAN_MAX_LIMIT = 10_000;
/**
 * Scan pages built and sent at once, per gate (client scans, and forwarded parts of other
 * stores' scans): a page holds about 1 MiB of data (more if one pair is larger), several times
 * that while it is rendered as JSON.
 */
const SCAN_PAGES_AT_ONCE = 4;
/** How long a client's page waits for a slot before `ServerIsBusy` (clients retry). */
const SCAN_SLOT_WAIT_MS = 5_000;
/** A forwarded part waits less: its sender gives up on an attempt after 2 s. */
const FORWARDED_SCAN_SLOT_WAIT_MS = 1_000;
/** Largest Raft batch accepted (snapshots come separately, in chunks). */
const MAX_RAFT_BATCH_BYTES = 64 * 1024 * 1024;
/** Requests one forwarding stream may have in flight; more are answered `ServerIsBusy`. */
const FORWARD_STREAM_MAX_IN_FLIGHT = 4096;
/** A Raft or forwarding stream idle this long is closed (Raft senders ping every few seconds). */
const RAFT_STREAM_IDLE_MS = 60_000;

const startedAt = Date.now();

/** The KV operation a request is, for metrics (undefined: not a KV operation). */
function kvOp(method: string, path: string): string | undefined {
  if (path === "/kv") return method === "GET" ? "scan" : undefined;
  return KEY_OPS[method];
}

/** How a store's app authenticates requests (docs/security.md); default: an open cluster. */
export interface StoreAppOptions {
  readonly security?: Security;
  /** The cluster this store belongs to. */
  readonly clusterId?: number;
  /** KV routes need no credential. */
  readonly clientRoutesOpen?: boolean;
  readonly log?: (message: string) => void;
}

/** Builds the Hono app of one store. */
export function storeApp(store: Store, kv: KvService, opts: StoreAppOptions = {}): Hono {
  const app = new Hono();
  app.onError((err) => {
    if (err instanceof BodyReadError) opts.log?.(`store ${store.storeId}: ${err.message}`);
    return errorResponse(err);
  });
  app.use("*", jsonNewline);
  app.use(guard(guardOptions(opts)));
  const clientScans = new ScanGate(SCAN_PAGES_AT_ONCE, SCAN_SLOT_WAIT_MS);
  const forwardedScans = new ScanGate(SCAN_PAGES_AT_ONCE, FORWARDED_SCAN_SLOT_WAIT_MS);

  // Every KV request is timed, errors included (onError has set the response by then).
  app.use("/kv/*", async (c, next) => {
    const op = kvOp(c.req.method, c.req.path);
    if (op === undefined) return await next();
    const stop = store.metrics.kvRequest.startTimer({ op, forwarded: String(isForwarded(c)) });
    await next();
    stop({ code: String(c.res.status) });
  });

  // The scan route must come first: `/kv/*` would also match `/kv`.
  app.get("/kv", async (c) => {
    const q = new URL(c.req.url).searchParams;
    const encoding = q.get("encoding") ?? "utf8";
    if (encoding !== "utf8" && encoding !== "base64") {
      throw new MrkvError("BadRequest", `encoding must be utf8 or base64, got "${encoding}"`);
    }
    const param = (name: string): Uint8Array | undefined => {
      const v = q.get(name);
      if (v === null) return undefined;
      if (encoding === "utf8") return new TextEncoder().encode(v);
      try {
        return Uint8Array.fromBase64(v);
      } catch {
        throw new MrkvError("BadRequest", `${name} is not valid base64`);
      }
    };
    const start = param("start") ?? new Uint8Array();
    const endParam = param("end");
    const end = endParam && endParam.length > 0 ? endParam : undefined;
    const limitText = q.get("limit") ?? String(SCAN_DEFAULT_LIMIT);
    const limit = /^\d+$/.test(limitText) ? Number(limitText) : NaN;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > SCAN_MAX_LIMIT) {
      throw new MrkvError(
        "BadRequest",
        `limit must be a whole number from 1 to ${SCAN_MAX_LIMIT}, got "${limitText}"`,
      );
    }
    if (start.length > MAX_KEY_BYTES || (end && end.length > MAX_KEY_BYTES)) {
      throw new MrkvError("BadRequest", `start and end must be at most ${MAX_KEY_BYTES} bytes`);
    }
    const render = (b: Uint8Array) => (encoding === "base64" ? b.toBase64() : utf8OrNull(b));
    const forwarded = isForwarded(c);
    // Separate gates: a client scan holds a slot here while its forwarded part waits for one on
    // the leader, so one shared gate could stall two stores scanning through each other.
    const release = await (forwarded ? forwardedScans : clientScans).acquire();
    try {
      let res: Response;
      if (forwarded) {
        const budget = q.get("max_bytes");
        const maxBytes = budget !== null && /^\d{1,12}$/.test(budget)
          ? Math.min(Number(budget), MAX_SCAN_PAGE_BYTES)
          : MAX_SCAN_PAGE_BYTES;
        const { kvs, region } = await kv.localScanRegion(start, end, limit, maxBytes);
        res = c.json({
          kvs: kvs.map((p) => ({ key: p.key.toBase64(), value: p.value.toBase64() })),
          region_end: region.endKey.toBase64(),
        });
      } else {
        const page = await kv.scan(start, end, limit);
        res = c.json({
          kvs: page.kvs.map((p) => pairJson(p.key, p.value, render)),
          next: page.next === null ? null : render(page.next) ?? page.next.toBase64(),
        });
      }
      const whenSent = (c.env as ServerEnv | undefined)?.whenSent;
      if (whenSent) whenSent(release);
      else release();
      return res;
    } catch (e) {
      release();
      throw e;
    }
  });

  // A client's requests on one key usually come through the listener's direct route
  // (kv_direct.ts); these routes serve the rest, and forwarded requests, the same way.
  app.put("/kv/*", async (c) => {
    const key = keyFromPath(c);
    const value = await readBodyLimited(c.req.raw, MAX_VALUE_BYTES, "value");
    if (isForwarded(c)) {
      await kv.localWrite(key, value, forwardedTag(c));
      return c.body(null, 204);
    }
    return clientResponse(await clientKeyAnswer(kv, "put", key, value, askedRoute(c)));
  });

  app.delete("/kv/*", async (c) => {
    const key = keyFromPath(c);
    if (isForwarded(c)) {
      await kv.localWrite(key, null, forwardedTag(c));
      return c.body(null, 204);
    }
    return clientResponse(await clientKeyAnswer(kv, "delete", key, NO_VALUE, askedRoute(c)));
  });

  app.get("/kv/*", async (c) => {
    const key = keyFromPath(c);
    if (isForwarded(c)) {
      const value = await kv.localGet(key);
      if (value === null) throw new MrkvError("KeyNotFound", "key not found");
      return c.body(value as Uint8Array<ArrayBuffer>, 200, {
        "content-type": "application/octet-stream",
      });
    }
    return clientResponse(await clientKeyAnswer(kv, "get", key, NO_VALUE, askedRoute(c)));
  });

  app.post(RAFT_BATCH_PATH, async (c) => {
    const bytes = await readBodyLimited(c.req.raw, MAX_RAFT_BATCH_BYTES, "raft batch");
    const batch = decodeRaftBatch(bytes);
    checkRaftBatch(batch, callerOf(c), store.storeId);
    store.onRaftBatch(batch);
    return c.body(null, 204);
  });

  // One stream per sending store carries its batches (raft_stream.ts), each checked as above.
  app.get(RAFT_STREAM_PATH, (c) => {
    const { upgrade } = upgradeEnv(c, RAFT_STREAM_PATH, RAFT_STREAM_PROTOCOL);
    const caller = callerOf(c);
    upgrade(RAFT_STREAM_PROTOCOL, (socket, head) =>
      serveRaftStream(socket, head, {
        maxFrameBytes: MAX_RAFT_BATCH_BYTES,
        idleMs: RAFT_STREAM_IDLE_MS,
        onBatch: (bytes) => {
          const batch = decodeRaftBatch(bytes);
          checkRaftBatch(batch, caller, store.storeId);
          store.onRaftBatch(batch);
        },
        onRefused: (why) =>
          opts.log?.(
            `store ${store.storeId}: closed the Raft stream from store ${caller.storeId}: ${why}`,
          ),
      }));
    return c.body(null, 200);
  });

  // Another store's KV requests for leaders here, many on one connection (request_stream.ts).
  // Each carries its own credential: the guard checks it as for any request.
  app.get(FORWARD_STREAM_PATH, (c) => {
    const { upgrade, peer } = upgradeEnv(c, FORWARD_STREAM_PATH, FORWARD_STREAM_PROTOCOL);
    const caller = callerOf(c);
    upgrade(FORWARD_STREAM_PROTOCOL, (socket, head) =>
      serveRequestStream(socket, head, {
        handle: async (req) => await app.fetch(req, { peer }),
        allow: (_method, path) => isKvPath(path.split("?", 1)[0]!),
        maxInFlight: FORWARD_STREAM_MAX_IN_FLIGHT,
        idleMs: RAFT_STREAM_IDLE_MS,
        onRefused: (why) =>
          opts.log?.(
            `store ${store.storeId}: closed the forwarding stream from store ${caller.storeId}: ${why}`,
          ),
      }));
    return c.body(null, 200);
  });

  const snapshots = new SnapshotAssembler();
  app.post(RAFT_SNAPSHOT_PATH, async (c) => {
    const q = new URL(c.req.url).searchParams;
    const id = q.get("id") ?? "";
    const seq = Number(q.get("seq"));
    if (!/^[0-9a-f]{1,32}$/.test(id) || !Number.isSafeInteger(seq) || seq < 0) {
      throw new MrkvError("BadRequest", "snapshot chunk needs id (hex) and seq (a whole number)");
    }
    const bytes = await readBodyLimited(
      c.req.raw,
      q.get("last") === "1" ? MAX_RAFT_BATCH_BYTES : SNAPSHOT_CHUNK_BYTES,
      "snapshot chunk",
    );
    // Streams are kept per sender: one store cannot add to or finish another's.
    const stream = `${callerOf(c).storeId}/${id}`;
    if (q.get("last") === "1") {
      const batch = decodeRaftBatch(bytes);
      checkRaftBatch(batch, callerOf(c), store.storeId);
      store.onRaftBatch(snapshots.finish(stream, batch));
    } else snapshots.addChunk(stream, seq, bytes);
    return c.body(null, 204);
  });

  app.get("/debug/regions", (c) => {
    const regions = [...store.peers.values()].map((p) => {
      const st = p.raw.status();
      return {
        region: regionJson(p.region),
        peer_id: p.meta.id,
        role: st.softState.raftState,
        leader_id: st.softState.lead,
        term: st.hardState.term,
        commit_index: st.hardState.commit,
        applied_index: p.appliedIndex,
        truncated_index: p.storage.applyState.truncatedIndex,
        last_index: p.storage.lastIndex(),
        peer_state: !p.storage.isInitialized()
          ? "Uninitialized"
          : p.mergeState
          ? "Merging"
          : "Normal",
        ...(p.mergeState && { merging_into: p.mergeState.target.id }),
        approximate_size: p.approximateSize,
        asleep: p.sleep.asleep,
      };
    });
    const tombstones = [...store.tombstones.entries()].map(([id, t]) => ({
      region: regionJson(t.region),
      region_id: id,
      peer_id: t.peerId,
      peer_state: "Tombstone",
      ...(t.merge && { merged_into: t.merge.target.id }),
    }));
    return c.json({ store_id: store.storeId, count: regions.length, regions, tombstones });
  });

  app.get("/debug/hibernation", (c) => {
    const h = store.hibernation;
    return c.json({
      store_id: store.storeId,
      regions: store.peers.size,
      asleep: h.asleep,
      stats: h.stats,
      liveness: { pings: h.liveness.pings, changes: h.liveness.changes },
    });
  });

  app.get("/debug/kv/*", async (c) => {
    const key = keyFromPath(c, "/debug/kv/");
    const value = await store.engine.get(key);
    const region = store.meta.regionForKey(key);
    const headers: Record<string, string> = { "content-type": "application/octet-stream" };
    if (region) headers["x-region-id"] = String(region.id);
    if (value === null) throw new MrkvError("KeyNotFound", "key not in this store's engine");
    return c.body(value as Uint8Array<ArrayBuffer>, 200, headers);
  });

  app.get("/status", (c) =>
    c.json({
      role: "store",
      id: store.storeId,
      version: VERSION,
      uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
      healthy: store.fatal === undefined && !store.stopped,
      regions: store.peers.size,
      leaders: [...store.peers.values()].filter((p) => p.isLeader()).length,
    }));

  app.get(
    "/metrics",
    (c) =>
      c.text(store.metrics.registry.render(), 200, {
        "content-type": "text/plain; version=0.0.4",
      }),
  );
  app.notFound(notFoundHandler(app));
  return app;
}

/**
 * The listener's direct route for this store's client requests on one key (kv_direct.ts), with
 * the same guard as {@link storeApp}'s.
 */
export function storeDirectRoute(
  store: Store,
  kv: KvService,
  opts: StoreAppOptions = {},
): DirectRoute {
  return kvDirectRoute({
    kv,
    timer: store.metrics.kvRequest,
    guard: guardOptions(opts),
    maxValueBytes: MAX_VALUE_BYTES,
  });
}

function guardOptions(opts: StoreAppOptions): GuardOptions {
  return {
    security: opts.security ?? Security.insecure(),
    classify: storeRouteClass,
    clusterId: () => opts.clusterId ?? 0,
    clientRoutesOpen: opts.clientRoutesOpen ?? true,
    log: opts.log,
  };
}

function isForwarded(c: Context): boolean {
  return c.req.header(FORWARDED_HEADER) !== undefined;
}

/** The tag of a forwarded write (a fresh one if the sender gave none). */
function forwardedTag(c: Context): RequestTag {
  const header = c.req.header(REQUEST_TAG_HEADER);
  return header === undefined ? newRequestTag() : decodeTagHeader(header);
}

/** Whether the client asked for a route hint (`proto/route_hint.ts`). */
function askedRoute(c: Context): boolean {
  return c.req.header(ROUTE_HEADER) !== undefined;
}

const NO_VALUE = new Uint8Array();

/** A {@link clientKeyAnswer} as a `Response`. */
function clientResponse(a: DirectAnswer): Response {
  return new Response(a.body as BodyInit | undefined, {
    status: a.status,
    headers: [...a.headers] as [string, string][],
  });
}

/** The key from the request path. */
function keyFromPath(c: Context, prefix = "/kv/"): Uint8Array {
  return keyFromPathname(new URL(c.req.url).pathname, prefix);
}

/** A scan pair as JSON; bytes that are not UTF-8 go as `key_base64`/`value_base64`. */
function pairJson(key: Uint8Array, value: Uint8Array, render: (b: Uint8Array) => string | null) {
  const out: Record<string, string> = {};
  const k = render(key);
  const v = render(value);
  if (k === null) out.key_base64 = key.toBase64();
  else out.key = k;
  if (v === null) out.value_base64 = value.toBase64();
  else out.value = v;
  return out;
}

function regionJson(r: Region) {
  return {
    id: r.id,
    ...keyJson("start_key", r.startKey),
    ...keyJson("end_key", r.endKey),
    epoch: { conf_ver: r.epoch.confVer, version: r.epoch.version },
    peers: r.peers.map((p) => ({ id: p.id, store_id: p.storeId, role: p.role })),
  };
}

/** The listener's upgrade hook and peer of a request to `path`, which must be an upgrade. */
function upgradeEnv(
  c: Context,
  path: string,
  protocol: string,
): Required<Pick<ServerEnv, "upgrade">> & Pick<ServerEnv, "peer"> {
  const env = c.env as ServerEnv | undefined;
  if (!env?.upgrade) {
    throw new MrkvError(
      "BadRequest",
      `${path} is an upgrade: send "connection: upgrade" and "upgrade: ${protocol}"`,
    );
  }
  return { upgrade: env.upgrade, peer: env.peer };
}
