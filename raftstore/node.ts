/**
 * Brings a store up (TiKV's `Node`): opens the engine, establishes the store's identity with the
 * scheduler (kept in the data dir so a restart is the same store), bootstraps region 1 if the
 * cluster is new, starts the peers, the workers and the HTTP server. The same composition serves
 * `--role store` and the in-process test cluster, which injects its transport, its way of
 * reaching the scheduler and other stores, and its engine.
 *
 * @module
 */
import { KvEngine } from "../storage/mod.ts";
import { errorResponse, MrkvError } from "../proto/errors.ts";
import { HeartbeatWorker, isTombstoneError, tombstoneMessage } from "./heartbeat.ts";
import { type ForwardFn, KvService } from "./kv_service.ts";
import { LogGcWorker } from "./log_gc.ts";
import type { PeerConfig } from "./peer.ts";
import { type Fetcher, PdClient } from "../proto/pd_client.ts";
import { storeApp } from "./server.ts";
import { SplitWorker } from "./split.ts";
import { Store, type StoreConfig, type StoreLogger } from "./store.ts";
import type { RaftReceiver, Transport } from "./transport.ts";
import { HttpTransport } from "./transport_http.ts";
import type { Hono } from "hono";

/** What a store node needs. */
export interface StoreNodeOptions {
  readonly config: StoreConfig & {
    readonly addr: string;
    readonly advertiseAddr: string;
    readonly dataDir: string;
    readonly scheduler: string;
  };
  /** An engine to use instead of opening `dataDir` (tests). The node does not close it. */
  readonly engine?: KvEngine;
  readonly schedulerFetch?: Fetcher;
  /** Makes the transport (tests: an in-memory network). Default: HTTP. */
  readonly transport?: (storeId: number, receiver: RaftReceiver) => Transport;
  /** Reaches another store's HTTP API (tests: in-process). Default: fetch to its address. */
  readonly forward?: ForwardFn;
  /** Listen on `addr` (default true). */
  readonly serve?: boolean;
  readonly log?: StoreLogger;
  readonly peerConfig?: Partial<PeerConfig>;
  /** How long to wait for the scheduler at startup. */
  readonly schedulerWaitMs?: number;
}

/** A running store. */
export class StoreNode {
  #server: Deno.HttpServer | undefined;
  #ownsEngine: boolean;

  constructor(
    readonly store: Store,
    readonly kv: KvService,
    readonly app: Hono,
    readonly workers: { heartbeat: HeartbeatWorker; split: SplitWorker; gc: LogGcWorker },
    ownsEngine: boolean,
  ) {
    this.#ownsEngine = ownsEngine;
  }

  /** Resolves if the store dies on its own (its Ready loop failed). */
  finished: Promise<void> = new Promise(() => {});

  /** The listener bound before the node was built; it serves this node from now on. */
  attach(server: Listener | undefined): void {
    this.#server = server?.serve(this.app.fetch);
  }

  get port(): number | undefined {
    const a = this.#server?.addr;
    return a && "port" in a ? a.port : undefined;
  }

  #stopping: Promise<void> | undefined;

  /** Stops everything; later calls wait for the first one. */
  stop(): Promise<void> {
    return this.#stopping ??= this.#stop();
  }

  async #stop(): Promise<void> {
    this.workers.heartbeat.stop();
    this.workers.split.stop();
    this.workers.gc.stop();
    this.store.stop();
    await this.#server?.shutdown();
    await this.store.idle();
    if (this.#ownsEngine) this.store.engine.close();
  }
}

/**
 * The store's HTTP listener, bound before the store registers with the scheduler (so a store
 * that cannot listen never appears in the cluster). Until the node is ready it answers 503.
 */
class Listener {
  #handler: (req: Request) => Response | Promise<Response> = () =>
    errorResponse(new MrkvError("ServerIsBusy", "the store is starting"));
  readonly #server: Deno.HttpServer;

  constructor(addr: string) {
    const { hostname, port } = splitAddr(addr);
    try {
      this.#server = Deno.serve(
        { hostname, port, onListen: () => {} },
        (req) => this.#handler(req),
      );
    } catch (e) {
      throw new Error(`cannot listen on ${addr}: ${(e as Error).message}`, { cause: e });
    }
  }

  serve(handler: (req: Request) => Response | Promise<Response>): Deno.HttpServer {
    this.#handler = handler;
    return this.#server;
  }

  async close(): Promise<void> {
    await this.#server.shutdown();
  }
}

function splitAddr(addr: string): { hostname: string; port: number } {
  const i = addr.lastIndexOf(":");
  return { hostname: addr.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(addr.slice(i + 1)) };
}

const consoleLog: StoreLogger = {
  info: (m) => console.log(m),
  warn: (m) => console.warn(m),
  error: (m) => console.error(m),
};

async function waitForScheduler(client: PdClient, waitMs: number, log: StoreLogger) {
  const deadline = Date.now() + waitMs;
  let delay = 100;
  for (;;) {
    try {
      return await client.isBootstrapped();
    } catch (e) {
      if (Date.now() + delay > deadline) {
        throw new Error(`cannot reach the scheduler: ${(e as Error).message}`, { cause: e });
      }
      log.warn(`waiting for the scheduler: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 2000);
    }
  }
}

/** Starts a store as {@link StoreNodeOptions} say. */
export async function startStoreNode(opts: StoreNodeOptions): Promise<StoreNode> {
  const { config } = opts;
  const log = opts.log ?? consoleLog;
  const client = new PdClient(config.scheduler, { fetch: opts.schedulerFetch, timeoutMs: 5_000 });
  const listener = (opts.serve ?? true) ? new Listener(config.addr) : undefined;
  let engine: KvEngine;
  try {
    engine = opts.engine ?? await KvEngine.open(config.dataDir);
  } catch (e) {
    await listener?.close();
    throw e;
  }
  try {
    const cluster = await waitForScheduler(client, opts.schedulerWaitMs ?? 60_000, log);
    let ident = await engine.storeIdent();
    if (ident && ident.clusterId !== cluster.clusterId) {
      throw new Error(
        `data dir ${config.dataDir} belongs to cluster ${ident.clusterId}, but the scheduler runs cluster ${cluster.clusterId}`,
      );
    }
    if (!ident) {
      ident = { clusterId: cluster.clusterId, storeId: await client.allocId() };
      const wb = engine.batch();
      wb.putStoreIdent(ident);
      await engine.write(wb);
      log.info(`store ${ident.storeId}: new store in cluster ${ident.clusterId}`);
    }
    const storeId = ident.storeId;
    const storeMeta = { id: storeId, address: config.advertiseAddr };
    await client.putStore(storeMeta).catch((e) => {
      // A Tombstone store must not start: say what to do with its data dir (heartbeat.ts).
      throw isTombstoneError(e)
        ? new Error(tombstoneMessage(storeId, config.dataDir, e.message), { cause: e })
        : e;
    });

    const store = new Store(storeId, engine, config, log, opts.peerConfig);
    const receiver: RaftReceiver = (batch) => store.onRaftBatch(batch);
    const addresses = new Map<number, string>();
    const resolve = async (id: number) => {
      const cached = addresses.get(id);
      if (cached) return cached;
      const { store: s } = await client.getStore(id);
      addresses.set(id, s.address);
      return s.address;
    };
    store.transport = opts.transport?.(storeId, receiver) ?? new HttpTransport({
      fromStoreId: storeId,
      resolve: async (id) => {
        try {
          return await resolve(id);
        } catch (e) {
          addresses.delete(id);
          throw e;
        }
      },
      onUnreachable: (id) => {
        addresses.delete(id);
        store.onStoreUnreachable(id);
      },
    });
    await store.start();

    const forward: ForwardFn = opts.forward ?? (async (id, req) => {
      const address = await resolve(id).catch((e) => {
        throw new MrkvError("ServerIsBusy", `cannot find store ${id}: ${(e as Error).message}`);
      });
      const url = new URL(req.url);
      try {
        return await fetch(`http://${address}${url.pathname}${url.search}`, {
          method: req.method,
          headers: req.headers,
          // The value is already in memory: send it whole, not as a chunked stream.
          body: req.method === "GET" || req.method === "HEAD" ? undefined : await req.arrayBuffer(),
          signal: AbortSignal.timeout(15_000),
        });
      } catch (e) {
        addresses.delete(id);
        throw new MrkvError(
          "NotLeader",
          `store ${id} at ${address} is unreachable: ${(e as Error).message}`,
        );
      }
    });
    const kv = new KvService(store, client, forward);
    const split = new SplitWorker(store, client);
    const usedSize = () => [...store.peers.values()].reduce((n, p) => n + p.approximateSize, 0);
    const heartbeat = new HeartbeatWorker(
      store,
      client,
      () => ({ capacity: 0, available: 0, usedSize: usedSize() }),
      split,
    );
    const gc = new LogGcWorker(store);
    const node = new StoreNode(
      store,
      kv,
      storeApp(store, kv),
      { heartbeat, split, gc },
      opts.engine === undefined,
    );
    node.attach(listener);

    if (store.peers.size === 0 && store.tombstones.size === 0) {
      await maybeBootstrap(store, client, storeMeta, log);
    }
    // A store the scheduler calls a Tombstone stops serving and exits (heartbeat.ts).
    const retired = new Promise<void>((_, reject) => {
      heartbeat.onTombstone = (e) => {
        const why = new Error(tombstoneMessage(storeId, config.dataDir, e.message), { cause: e });
        log.error(why.message);
        void node.stop().finally(() => reject(why));
      };
    });
    heartbeat.start();
    split.start();
    gc.start();
    node.finished = Promise.race([store.dead, retired]);
    return node;
  } catch (e) {
    await listener?.close();
    if (!opts.engine) engine.close();
    throw e;
  }
}

/**
 * Creates region 1 if the cluster is new. If the scheduler accepted our bootstrap earlier but
 * we crashed before writing region 1, the scheduler's region 1 with its one peer on this store
 * is written now.
 */
async function maybeBootstrap(
  store: Store,
  client: PdClient,
  meta: { id: number; address: string },
  log: StoreLogger,
): Promise<void> {
  const { bootstrapped } = await client.isBootstrapped();
  if (!bootstrapped) {
    try {
      const { region } = await client.bootstrap(meta);
      await store.bootstrapRegion(region);
      log.info(`store ${store.storeId}: bootstrapped the cluster with region ${region.id}`);
      return;
    } catch (e) {
      if (!(e instanceof MrkvError)) throw e;
      log.info(`store ${store.storeId}: another store bootstrapped the cluster first`);
    }
  }
  try {
    const { region, leader } = await client.getRegionById(1);
    if (
      leader === null && region.peers.length === 1 && region.peers[0]!.storeId === store.storeId
    ) {
      log.warn(
        `store ${store.storeId}: recreating region 1, which the scheduler assigned to this store`,
      );
      await store.bootstrapRegion(region);
    }
  } catch { /* region 1 unknown or elsewhere: nothing to do */ }
}
