/**
 * Starts the scheduler: opens its Deno KV under `--data-dir`, loads the cluster, builds the
 * Hono app (internal CBOR API, admin API, `/status`, `/metrics`) and serves it on `--addr`.
 *
 * @module
 */
import { Hono } from "hono";
import type { Config } from "../config/config.ts";
import { DirLock } from "../proto/dir_lock.ts";
import { MrkvError } from "../proto/errors.ts";
import { RPC_PREFIX } from "../proto/pdpb.ts";
import { adminRoutes } from "./admin_routes.ts";
import { Cluster } from "./cluster.ts";
import { DEFAULT_SCHEDULE_CONFIG, type ScheduleConfig } from "./config.ts";
import { Coordinator } from "./coordinator.ts";
import { onError } from "./http.ts";
import { renderMetrics } from "./metrics.ts";
import { rpcRoutes } from "./rpc_routes.ts";
import { guard, type RouteClass } from "../proto/http_guard.ts";
import { type HttpServer, serveHttp } from "../proto/http_server.ts";
import { Security } from "../proto/security.ts";
import { BodyReadError } from "../proto/http_body.ts";

/** The version reported by `/status`. */
export const VERSION = "0.1.0";

/**
 * The route class of a scheduler request (docs/security.md). Anything not listed needs an
 * admin credential, so a new route is never open by accident.
 */
export function schedulerRouteClass(_method: string, path: string): RouteClass {
  if (path === "/status" || path === "/metrics") return "public";
  // A new store asks this before it knows the cluster ID.
  if (path === `${RPC_PREFIX}/is_bootstrapped`) return "join";
  if (path.startsWith(`${RPC_PREFIX}/`)) return "internal";
  return "admin";
}

/** Builds the whole HTTP app over a cluster and coordinator (tests call it directly). */
export function schedulerApp(
  cluster: Cluster,
  coordinator: Coordinator,
  startedAt = Date.now(),
  security: Security = Security.insecure(),
  log?: (message: string) => void,
): Hono {
  const app = new Hono();
  app.onError((err) => {
    if (err instanceof BodyReadError) log?.(err.message);
    return onError(err);
  });
  app.use(guard({
    security,
    classify: schedulerRouteClass,
    clusterId: () => cluster.clusterId,
    log,
  }));
  app.notFound((c) => onError(new MrkvError("NotFound", `no route ${c.req.method} ${c.req.path}`)));
  app.get("/status", (c) =>
    c.json({
      role: "scheduler",
      id: cluster.clusterId,
      cluster_id: cluster.clusterId,
      version: VERSION,
      uptime: (Date.now() - startedAt) / 1000,
      healthy: true,
      bootstrapped: cluster.bootstrapped,
    }));
  app.get(
    "/metrics",
    (c) => c.body(renderMetrics(cluster), 200, { "content-type": "text/plain; version=0.0.4" }),
  );
  app.route("/", rpcRoutes(cluster));
  app.route("/", adminRoutes(cluster, coordinator));
  return app;
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

/** Options for tests: a clock and whether to run the coordinator's timer. */
export interface StartOptions {
  readonly now?: () => number;
  readonly runCoordinator?: boolean;
  /** Credentials to use instead of reading the files the config names. */
  readonly security?: Security;
}

/** Starts `--role scheduler`. */
export async function startScheduler(
  config: Config,
  opts: StartOptions = {},
): Promise<SchedulerServer> {
  const log = (level: string, msg: string) => {
    if (config.logLevel === "error" && level !== "error") return;
    if (config.logLevel === "warn" && level === "info") return;
    console.error(`${new Date().toISOString()} ${level} scheduler: ${msg}`);
  };
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
  const [hostname, portText] = splitAddr(config.addr);
  let server: HttpServer;
  let security: Security;
  try {
    security = opts.security ?? await Security.fromConfig(config);
  } catch (e) {
    await cluster.close();
    kv.close();
    throw e;
  }
  try {
    const app = schedulerApp(cluster, coordinator, Date.now(), security, (m) => log("warn", m));
    server = await serveHttp((req, env) => app.fetch(req, env), {
      hostname,
      port: Number(portText),
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
  if (opts.runCoordinator !== false) coordinator.start();
  log("info", `cluster ${cluster.clusterId} listening on ${addr.hostname}:${addr.port}`);
  if (security.secured) log("info", `security: ${security.mode}`);
  else {log(
      "warn",
      `security: ${security.mode}; anyone who can reach ${config.addr} owns the cluster`,
    );}

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      await coordinator.stop();
      cluster.steps.close(); // answers the stores' held wait_steps calls, so serving can end
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

function splitAddr(addr: string): [string, string] {
  const i = addr.lastIndexOf(":");
  return [addr.slice(0, i).replace(/^\[|\]$/g, ""), addr.slice(i + 1)];
}
