/**
 * Starts the scheduler: opens its Deno KV under `--data-dir`, loads the cluster, builds the
 * Hono app (internal CBOR API, admin API, PD-shaped read-only API, the dashboard, `/status`,
 * `/metrics`) and serves it on `--addr`.
 *
 * @module
 */
import { Hono } from "hono";
import type { Config } from "../config/config.ts";
import { DirLock } from "../proto/dir_lock.ts";
import { RPC_PREFIX } from "../proto/pdpb.ts";
import { jsonNewline, notFoundHandler } from "../proto/routes.ts";
import { Logger, VERSION } from "../telemetry/mod.ts";
import { adminRoutes } from "./admin_routes.ts";
import { Cluster } from "./cluster.ts";
import { DEFAULT_SCHEDULE_CONFIG, type ScheduleConfig } from "./config.ts";
import { Coordinator } from "./coordinator.ts";
import { DASHBOARD_FILES, dashboardRoutes } from "./dashboard/mod.ts";
import { drainReport } from "./diagnose.ts";
import { onError } from "./http.ts";
import { schedulerMetrics } from "./metrics.ts";
import { pdRoutes } from "./pd_routes.ts";
import { rpcRoutes } from "./rpc_routes.ts";
import { guard, type RouteClass } from "../proto/http_guard.ts";
import { type HttpServer, serveHttp } from "../proto/http_server.ts";
import { splitHostPort } from "../proto/http_incoming.ts";
import { Security } from "../proto/security.ts";
import { BodyReadError } from "../proto/http_body.ts";

/**
 * The route class of a scheduler request (docs/security.md). Anything not listed needs an
 * admin credential, so a new route is never open by accident. The dashboard's files are
 * public: they hold no data, and the page asks for the admin credential before it reads any.
 */
export function schedulerRouteClass(method: string, path: string): RouteClass {
  if (path === "/status" || path === "/metrics") return "public";
  if (method === "GET" && Object.hasOwn(DASHBOARD_FILES, path)) return "public";
  // A new store asks this before it knows the cluster ID.
  if (path === `${RPC_PREFIX}/is_bootstrapped`) return "join";
  if (path.startsWith(`${RPC_PREFIX}/`)) return "internal";
  return "admin";
}

/** Options of {@link schedulerApp}. */
export interface SchedulerAppOptions {
  readonly startedAt?: number;
  /** `http://HOST:PORT` others use to reach this scheduler (PD's member URLs). */
  readonly url?: () => string;
  /** How callers authenticate (default: an open cluster). */
  readonly security?: Security;
  /** Where refused requests and unreadable bodies are reported. */
  readonly log?: (message: string) => void;
}

/** Builds the whole HTTP app over a cluster and coordinator (tests call it directly). */
export function schedulerApp(
  cluster: Cluster,
  coordinator: Coordinator,
  opts: SchedulerAppOptions = {},
): Hono {
  const startedAt = opts.startedAt ?? Date.now();
  const metrics = schedulerMetrics(cluster);
  const app = new Hono();
  app.onError((err) => {
    if (err instanceof BodyReadError) opts.log?.(err.message);
    return onError(err);
  });
  app.use("*", jsonNewline);
  app.use(guard({
    security: opts.security ?? Security.insecure(),
    classify: schedulerRouteClass,
    clusterId: () => cluster.clusterId,
    log: opts.log,
  }));
  app.get("/status", (c) =>
    c.json({
      role: "scheduler",
      id: cluster.clusterId,
      cluster_id: cluster.clusterId,
      version: VERSION,
      uptime: (Date.now() - startedAt) / 1000,
      uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
      healthy: true,
      bootstrapped: cluster.bootstrapped,
    }));
  app.get(
    "/metrics",
    (c) => c.body(metrics.render(), 200, { "content-type": "text/plain; version=0.0.4" }),
  );
  app.route("/", rpcRoutes(cluster));
  app.route("/", adminRoutes(cluster, coordinator));
  app.route(
    "/",
    pdRoutes(cluster, coordinator, {
      startedAt,
      url: opts.url ?? (() => "http://127.0.0.1:2379"),
    }),
  );
  app.route("/", dashboardRoutes());
  app.notFound(notFoundHandler(app));
  return app;
}

/** How often Offline stores are checked for a drain that cannot finish. */
const DRAIN_CHECK_MS = 5_000;

/**
 * Logs, once per change, why an Offline store cannot be drained (and when it can again), so a
 * stuck drain is visible in the log as well as in the admin API.
 */
function watchDrains(cluster: Cluster, log: Logger, intervalMs: number): () => void {
  const last = new Map<number, string | null>();
  const timer = setInterval(() => {
    for (const s of cluster.stores()) {
      if (s.state !== "Offline") {
        last.delete(s.meta.id);
        continue;
      }
      const d = drainReport(cluster, s.meta.id);
      if (last.get(s.meta.id) === d.blocked) continue;
      if (d.blocked) {
        log.warn(
          `store ${s.meta.id} is offline and cannot be drained (${d.regionsLeft} regions left): ${d.blocked}`,
        );
      } else if (last.get(s.meta.id)) {
        log.info(`store ${s.meta.id}: drain is moving again (${d.regionsLeft} regions left)`);
      }
      last.set(s.meta.id, d.blocked);
    }
  }, intervalMs);
  return () => clearInterval(timer);
}

/** A running scheduler. */
export interface SchedulerServer {
  /** HOST:PORT it listens on (the real port when `--addr` asked for port 0). */
  readonly addr: string;
  readonly cluster: Cluster;
  readonly coordinator: Coordinator;
  stop(): Promise<void>;
  readonly finished: Promise<void>;
}

function scheduleConfigFrom(config: Config): Partial<ScheduleConfig> {
  return {
    maxReplicas: config.maxReplicas,
    maxStoreDownTime: config.maxStoreDownTime,
    storeDisconnectTime: config.storeDisconnectTime,
    scheduleIntervalMs: config.scheduleIntervalMs,
  };
}

/** Options for tests: a clock, whether to run the coordinator's timer, where logs go. */
export interface StartOptions {
  readonly now?: () => number;
  readonly runCoordinator?: boolean;
  /** Credentials to use instead of reading the files the config names. */
  readonly security?: Security;
  /** Where log lines go (default: stderr, at `--log-level`). */
  readonly log?: Logger;
  /** How often Offline stores are checked for a stuck drain (default 5 s). */
  readonly drainCheckMs?: number;
}

/** Starts `--role scheduler`. */
export async function startScheduler(
  config: Config,
  opts: StartOptions = {},
): Promise<SchedulerServer> {
  const logger = opts.log ?? new Logger({ level: config.logLevel, fields: { role: "scheduler" } });
  const log = (level: "info" | "warn" | "error", msg: string) => logger.log(level, msg);
  // One process per data dir: taken before the database is opened (see proto/dir_lock.ts).
  const lock = await DirLock.acquire(config.dataDir, { role: "scheduler", addr: config.addr });
  let kv: Deno.Kv;
  try {
    kv = await Deno.openKv(`${config.dataDir}/scheduler.kv`);
  } catch (e) {
    lock.release();
    throw e;
  }
  let cluster: Cluster;
  let schedulers: string[] | null;
  try {
    ({ cluster, schedulers } = await Cluster.open(kv, {
      config: { ...DEFAULT_SCHEDULE_CONFIG, ...scheduleConfigFrom(config) },
      now: opts.now,
      onError: (e) => log("error", `saving regions: ${(e as Error).message}`),
    }));
  } catch (e) {
    kv.close();
    lock.release();
    throw e;
  }
  // Flags given on this start win over run-time changes an earlier run saved for the same keys.
  cluster.config = { ...cluster.config, ...scheduleConfigFrom(config) };
  const coordinator = new Coordinator(
    cluster,
    schedulers ?? undefined,
    Math.random,
    (e) => log("error", `schedule run failed: ${(e as Error).message}`),
  );
  const { hostname, port } = splitHostPort(config.addr);
  let server: HttpServer;
  let security: Security;
  try {
    security = opts.security ?? await Security.fromConfig(config);
  } catch (e) {
    await cluster.close();
    kv.close();
    lock.release();
    throw e;
  }
  // Known once listening (the port may be 0); until then, what the flags say.
  let advertised = config.advertiseAddr;
  const url = () => `${security.scheme}://${advertised}`;
  try {
    const app = schedulerApp(cluster, coordinator, {
      security,
      url,
      log: (m) => log("warn", m),
    });
    server = await serveHttp((req, env) => app.fetch(req, env), {
      hostname,
      port,
      tls: security.tls,
      onError: (m) => log("warn", m),
    });
  } catch (e) {
    await cluster.close();
    kv.close();
    lock.release();
    throw new Error(`cannot listen on ${config.addr}: ${(e as Error).message}`, { cause: e });
  }
  const addr = { hostname: server.hostname, port: server.port };
  if (config.advertiseAddr === config.addr) advertised = `${addr.hostname}:${addr.port}`;
  if (opts.runCoordinator !== false) coordinator.start();
  const stopWatching = watchDrains(cluster, logger, opts.drainCheckMs ?? DRAIN_CHECK_MS);
  log(
    "info",
    `cluster ${cluster.clusterId} listening on ${security.scheme}://${addr.hostname}:${addr.port} (dashboard at ${url()}/)`,
  );
  if (security.secured) log("info", `security: ${security.mode}`);
  else {
    log("warn", `security: ${security.mode}; anyone who can reach ${config.addr} owns the cluster`);
  }

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      stopWatching();
      await coordinator.stop();
      cluster.outbox.close(); // stores' long polls end now, not at the shutdown grace period
      await server.shutdown();
      security.close();
      await cluster.close();
      kv.close();
      lock.release();
      log("info", "stopped");
    })();
    return stopping;
  };
  return {
    addr: `${addr.hostname}:${addr.port}`,
    cluster,
    coordinator,
    stop,
    finished: server.finished.then(() => stopping ?? undefined),
  };
}
