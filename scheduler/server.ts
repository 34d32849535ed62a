/**
 * Starts the scheduler: opens its Deno KV under `--data-dir`, loads the cluster, builds the
 * Hono app (internal CBOR API, admin API, `/status`, `/metrics`) and serves it on `--addr`.
 *
 * @module
 */
import { Hono } from "hono";
import type { Config } from "../config/config.ts";
import { MrkvError } from "../proto/errors.ts";
import { adminRoutes } from "./admin_routes.ts";
import { Cluster } from "./cluster.ts";
import { DEFAULT_SCHEDULE_CONFIG, type ScheduleConfig } from "./config.ts";
import { Coordinator } from "./coordinator.ts";
import { onError } from "./http.ts";
import { renderMetrics } from "./metrics.ts";
import { rpcRoutes } from "./rpc_routes.ts";

/** The version reported by `/status`. */
export const VERSION = "0.1.0";

/** Builds the whole HTTP app over a cluster and coordinator (tests call it directly). */
export function schedulerApp(
  cluster: Cluster,
  coordinator: Coordinator,
  startedAt = Date.now(),
): Hono {
  const app = new Hono();
  app.onError((err) => onError(err));
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
  await Deno.mkdir(config.dataDir, { recursive: true });
  const kv = await Deno.openKv(`${config.dataDir}/scheduler.kv`);
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
  const abort = new AbortController();
  let resolveListen!: (addr: Deno.NetAddr) => void;
  const listening = new Promise<Deno.NetAddr>((r) => resolveListen = r);
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname,
      port: Number(portText),
      signal: abort.signal,
      onListen: (addr) => resolveListen(addr),
    }, schedulerApp(cluster, coordinator).fetch);
  } catch (e) {
    await cluster.close();
    kv.close();
    throw new Error(`cannot listen on ${config.addr}: ${(e as Error).message}`, { cause: e });
  }
  const addr = await listening;
  if (opts.runCoordinator !== false) coordinator.start();
  log("info", `cluster ${cluster.clusterId} listening on ${addr.hostname}:${addr.port}`);

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      await coordinator.stop();
      cluster.steps.close(); // answers the stores' held wait_steps calls, so serving can end
      abort.abort();
      await server.finished;
      await cluster.close();
      kv.close();
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
