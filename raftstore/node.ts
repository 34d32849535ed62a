/**
 * Brings a store up (TiKV's `Node`): opens the engine, establishes the store's identity with the
 * scheduler (kept in the data dir so a restart is the same store), bootstraps region 1 if the
 * cluster is new, starts the peers, the workers and the HTTP server. The same composition serves
 * `--role store` and the in-process test cluster, which injects its transport, its way of
 * reaching the scheduler and other stores, and its engine.
 *
 * @module
 */
import {
  KvEngine,
  type KvEngineOptions,
  migrateRaftLog,
  RaftLogEngine,
  RaftLogMissingError,
  raftLogMoved,
  type RaftLogOptions,
} from "../storage/mod.ts";
import { join } from "node:path";
import { DirLock } from "../proto/dir_lock.ts";
import { type Store as StoreMeta, STORE_FEATURES } from "../proto/metapb.ts";
import { errorResponse, MrkvError, unknownOutcome } from "../proto/errors.ts";
import { AddressBook } from "./address_book.ts";
import { HeartbeatWorker } from "./heartbeat.ts";
import {
  FORWARD_STREAM_PATH,
  FORWARD_STREAM_PROTOCOL,
  type ForwardFn,
  KvService,
} from "./kv_service.ts";
import { LogGcWorker } from "./log_gc.ts";
import { MergeWorker } from "./merge_worker.ts";
import type { PeerConfig } from "./peer.ts";
import { type Fetcher, PdClient } from "../proto/pd_client.ts";
import { isStoreRemoved } from "../proto/pdpb.ts";
import { storeApp, type StoreAppOptions, storeDirectRoute } from "./server.ts";
import { SplitWorker } from "./split.ts";
import { LoadSampler, loadSplitConfig, LoadSplitWorker } from "./load_split.ts";
import { Store, type StoreConfig, type StoreLogger } from "./store.ts";
import type { RaftReceiver, Transport } from "./transport.ts";
import { HttpTransport } from "./transport_http.ts";
import { RequestStreams, StreamUnavailableError } from "../proto/request_stream.ts";
import type { Hono } from "hono";
import { diskStats, Logger, type LogLevel } from "../telemetry/mod.ts";
import { registerStoreMetrics } from "./metrics.ts";
import { isLoopbackAddr } from "../config/config.ts";
import type { ServerEnv } from "../proto/http_guard.ts";
import { type DirectRoute, type HttpServer, serveHttp } from "../proto/http_server.ts";
import { splitHostPort } from "../proto/http_incoming.ts";
import { type FetchFn, type Identity, Security, type SecurityConfig } from "../proto/security.ts";

/** What a store node needs. */
export interface StoreNodeOptions {
  readonly config: StoreConfig & SecurityConfig & {
    readonly addr: string;
    readonly advertiseAddr: string;
    readonly dataDir: string;
    readonly scheduler: string;
    /** Used when no `log` is given: lines below it are dropped. */
    readonly logLevel?: LogLevel;
    readonly kvAuth?: "auto" | "required" | "open";
  };
  /** Credentials to use instead of reading the files the config names (tests). */
  readonly security?: Security;
  /** An engine to use instead of opening `dataDir` (tests). The node does not close it. */
  readonly engine?: KvEngine;
  /** Options for the engine opened on `dataDir` (crash tests: small commits, commit hooks). */
  readonly engineOptions?: KvEngineOptions;
  /**
   * A Raft log to use instead of opening `<dataDir>/raftlog` (tests; the node does not close
   * it). Given with `engine`; with `engine` alone the log lives in memory.
   */
  readonly raftLog?: RaftLogEngine;
  /** Options for the Raft log opened on `dataDir` (crash tests: write hooks, small files). */
  readonly raftLogOptions?: RaftLogOptions;
  readonly schedulerFetch?: Fetcher;
  /**
   * Makes the transport (tests: an in-memory network), whose batches carry `incarnation` (see
   * liveness.ts). Default: HTTP.
   */
  readonly transport?: (storeId: number, receiver: RaftReceiver, incarnation: number) => Transport;
  /** Reaches another store's HTTP API (tests: in-process). Default: fetch to its address. */
  readonly forward?: ForwardFn;
  /** Sends this store's requests to other stores (default: `fetch`; tests inject faults). */
  readonly fetch?: FetchFn;
  /** Listen on `addr` (default true). */
  readonly serve?: boolean;
  readonly log?: StoreLogger;
  readonly peerConfig?: Partial<PeerConfig>;
  /** How long to wait for the scheduler at startup. */
  readonly schedulerWaitMs?: number;
}

/** Longest a forwarded KV request waits for the leader's store to answer. */
const FORWARD_TIMEOUT_MS = 15_000;

/** A running store. */
export class StoreNode {
  #server: HttpServer | undefined;
  #ownsEngine: boolean;
  #ownsRaftLog: boolean;
  #lock: DirLock | undefined;

  constructor(
    readonly store: Store,
    readonly kv: KvService,
    readonly app: Hono,
    readonly workers: {
      heartbeat: HeartbeatWorker;
      split: SplitWorker;
      loadSplit: LoadSplitWorker;
      gc: LogGcWorker;
      merge: MergeWorker;
    },
    ownsEngine: boolean,
    ownsRaftLog: boolean,
    readonly security: Security = Security.insecure(),
    lock?: DirLock,
  ) {
    this.#ownsEngine = ownsEngine;
    this.#ownsRaftLog = ownsRaftLog;
    this.#lock = lock;
  }

  /** Resolves if the store dies on its own (its Ready loop failed). */
  finished: Promise<void> = new Promise(() => {});
  /** Where the other stores are (see address_book.ts). */
  book: AddressBook | undefined;
  /** The streams this store forwards KV requests on (closed on stop). */
  forwardStreams: RequestStreams | undefined;

  /**
   * The listener bound before the node was built; it serves this node from now on, with
   * `direct` taking the client requests it answers without the app (`kv_direct.ts`).
   */
  attach(server: Listener | undefined, direct?: DirectRoute): void {
    this.#server = server?.serve((req, env) => this.app.fetch(req, env), direct);
  }

  get port(): number | undefined {
    return this.#server?.port;
  }

  /** Client requests the listener answered without the app (`kv_direct.ts`). */
  get directAnswers(): number {
    return this.#server?.directAnswers ?? 0;
  }

  #stopping: Promise<void> | undefined;

  /** Stops everything; later calls wait for the first one. */
  stop(): Promise<void> {
    return this.#stopping ??= this.#stop();
  }

  async #stop(): Promise<void> {
    await this.book?.stop();
    this.forwardStreams?.close();
    this.workers.heartbeat.stop();
    this.workers.loadSplit.stop();
    const splitting = this.workers.split.stop();
    this.workers.gc.stop();
    this.workers.merge.stop();
    this.store.stop();
    await this.#server?.shutdown();
    await this.store.idle();
    // A size check still scanning must finish before the engine it reads is closed.
    await splitting;
    if (this.#ownsRaftLog) await this.store.raftLog.close();
    if (this.#ownsEngine) this.store.engine.close();
    this.security.close();
    this.#lock?.release();
  }
}

/**
 * The store's HTTP listener, bound before the store registers with the scheduler (so a store
 * that cannot listen never appears in the cluster). Until the node is ready it answers 503.
 */
class Listener {
  #handler: (req: Request, env: ServerEnv) => Response | Promise<Response> = () =>
    errorResponse(new MrkvError("ServerIsBusy", "the store is starting"));
  #direct: DirectRoute | undefined;

  private constructor(readonly server: HttpServer) {}

  static async bind(addr: string, security: Security, log: StoreLogger): Promise<Listener> {
    const { hostname, port } = splitHostPort(addr);
    let listener: Listener | undefined;
    try {
      const server = await serveHttp((req, env) => listener!.#handler(req, env), {
        direct: (head) => listener && listener.#direct?.(head),
        hostname,
        port,
        tls: security.tls,
        onError: (m) => log.warn(m),
      });
      listener = new Listener(server);
      return listener;
    } catch (e) {
      throw new Error(`cannot listen on ${addr}: ${(e as Error).message}`, { cause: e });
    }
  }

  serve(
    handler: (req: Request, env: ServerEnv) => Response | Promise<Response>,
    direct?: DirectRoute,
  ): HttpServer {
    this.#handler = handler;
    this.#direct = direct;
    return this.server;
  }

  async close(): Promise<void> {
    await this.server.shutdown();
  }
}

async function waitForScheduler(client: PdClient, waitMs: number, log: StoreLogger) {
  const deadline = Date.now() + waitMs;
  let delay = 100;
  for (;;) {
    try {
      return await client.isBootstrapped();
    } catch (e) {
      if (Date.now() + delay > deadline) {
        throw new Error(
          `gave up waiting for the scheduler after ${waitMs / 1000} s: ${
            (e as Error).message
          } (is it running, and is --scheduler ${client.baseUrl} right?)`,
          { cause: e },
        );
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
  const baseLog = new Logger({ level: config.logLevel ?? "info", fields: { role: "store" } });
  let log: StoreLogger = opts.log ?? baseLog;
  const security = opts.security ?? await Security.fromConfig(config);
  // Filled in as the store learns its cluster and its ID; every internal request carries it.
  const identity: Identity = { clusterId: 0, storeId: 0 };
  const internalFetch: FetchFn = security.fetcher(
    identity,
    opts.schedulerFetch && (async (url, init) => await opts.schedulerFetch!(url, init)),
  );
  const client = new PdClient(config.scheduler, { fetch: internalFetch, timeoutMs: 5_000 });
  // The data dir is locked before anything else, so a second process on it changes nothing.
  const lock = opts.engine
    ? undefined
    : await DirLock.acquire(config.dataDir, { role: "store", addr: config.advertiseAddr });
  let listener: Listener | undefined;
  let engine: KvEngine | undefined;
  let raftLog: RaftLogEngine | undefined;
  try {
    listener = (opts.serve ?? true) ? await Listener.bind(config.addr, security, log) : undefined;
    engine = opts.engine ?? await KvEngine.open(config.dataDir, opts.engineOptions);
    raftLog = opts.raftLog ?? await openRaftLog(opts, engine, log);
    // A data dir of an earlier version keeps its raft logs in Deno KV: move them first.
    const moved = await migrateRaftLog(engine, raftLog);
    if (moved.regions > 0) {
      log.info(
        `moved the raft logs of ${moved.regions} regions (${moved.entries} entries) from ` +
          `Deno KV to the raft log engine`,
      );
    }
  } catch (e) {
    await listener?.close();
    if (!opts.raftLog) await raftLog?.close();
    if (!opts.engine) engine?.close();
    lock?.release();
    throw e;
  }
  try {
    const waitMs = opts.schedulerWaitMs ?? 60_000;
    let ident = await engine.storeIdent();
    let registered = false;
    if (!ident) {
      // A new store needs the scheduler for its ID.
      const cluster = await waitForScheduler(client, waitMs, log);
      identity.clusterId = cluster.clusterId;
      ident = { clusterId: cluster.clusterId, storeId: await client.allocId() };
      identity.storeId = ident.storeId;
      const wb = engine.batch();
      wb.putStoreIdent(ident);
      await engine.write(wb);
      log.info(`store ${ident.storeId}: new store in cluster ${ident.clusterId}`);
      registered = await client.putStore({
        id: ident.storeId,
        address: config.advertiseAddr,
        features: STORE_FEATURES,
      })
        .then(() => true, () => false);
    } else {
      // A known store starts without waiting for the scheduler: its regions must elect leaders
      // and serve even while the scheduler is down or cut off. If the scheduler answers now, a
      // data dir of another cluster is refused before anything runs; otherwise the check runs
      // with the registration in the background.
      identity.clusterId = ident.clusterId;
      identity.storeId = ident.storeId;
      registered = await register(client, ident, config, log, { quick: true });
    }
    const storeId = ident.storeId;
    identity.storeId = storeId;
    if (!opts.log) log = baseLog.child({ store: storeId });
    const storeMeta = { id: storeId, address: config.advertiseAddr, features: STORE_FEATURES };
    const mode = `security: ${security.mode}`;
    if (security.secured) log.info(`store ${storeId}: ${mode}`);
    else {
      log.warn(`store ${storeId}: ${mode}; anyone who can reach ${config.addr} owns the cluster`);
    }

    const store = new Store(storeId, engine, raftLog, config, log, opts.peerConfig);
    const book = await AddressBook.load(storeId, engine, client, log);
    store.onRegionPeers = (region) => book.want(region.peers.map((p) => p.storeId));
    const receiver: RaftReceiver = (batch) => {
      if (batch.fromAddress !== undefined) {
        book.learn(
          batch.fromStoreId,
          batch.fromAddress,
          `a Raft batch from store ${batch.fromStoreId}`,
        );
      }
      store.onRaftBatch(batch);
    };
    const incarnation = store.hibernation.liveness.incarnation;
    const transport = opts.transport ? undefined : new HttpTransport({
      fromStoreId: storeId,
      fromAddress: config.advertiseAddr,
      incarnation,
      fetch: security.fetcher(identity, opts.fetch),
      scheme: security.scheme,
      // Streams need real connections: not when requests go to an in-process app.
      ...(!opts.fetch && {
        stream: {
          headers: () => security.fetcherHeaders(identity.storeId, identity.clusterId),
          tls: security.tls,
        },
      }),
      resolve: (id) => book.resolve(id),
      onUnreachable: (id) => store.onStoreUnreachable(id),
      onSent: (seconds, ok) =>
        store.metrics.raftSend.observe(seconds, { result: ok ? "ok" : "error" }),
    });
    store.transport = opts.transport?.(storeId, receiver, incarnation) ?? transport!;
    await store.start();

    book.start();

    const storeFetch = security.fetcher(identity, opts.fetch);
    // Forwarded KV requests share one stream per leader's store (not with an in-process app).
    const streams = opts.fetch ? undefined : new RequestStreams({
      path: FORWARD_STREAM_PATH,
      protocol: FORWARD_STREAM_PROTOCOL,
      headers: () => security.fetcherHeaders(identity.storeId, identity.clusterId),
      tls: security.tls,
      connectTimeoutMs: 3_000,
    });
    const forward: ForwardFn = opts.forward ?? (async (id, req) => {
      const address = await book.resolve(id).catch((e) => {
        throw new MrkvError("ServerIsBusy", `cannot find store ${id}: ${(e as Error).message}`);
      });
      if (streams && !streams.unsupported(address)) {
        try {
          return await streams.request(
            address,
            req,
            FORWARD_TIMEOUT_MS,
            security.fetcherHeaders(identity.storeId, identity.clusterId),
          );
        } catch (e) {
          if (e instanceof StreamUnavailableError && !e.unsupported) {
            // Never sent: certainly not applied.
            throw new MrkvError("ServerIsBusy", `cannot reach store ${id}: ${e.message}`);
          }
          if (!(e instanceof StreamUnavailableError)) {
            // It may have been served: for a write the outcome is unknown; a retry with the
            // same tag is safe.
            throw unknownOutcome(
              `store ${id} at ${address} did not answer: ${(e as Error).message}`,
            );
          }
          // A store without streams (an older version): an ordinary request below.
        }
      }
      const url = new URL(req.url);
      try {
        return await storeFetch(`${security.scheme}://${address}${url.pathname}${url.search}`, {
          method: req.method,
          headers: req.headers,
          // The value is already in memory: send it whole, not as a chunked stream.
          body: req.method === "GET" || req.method === "HEAD" ? undefined : await req.arrayBuffer(),
          signal: AbortSignal.any([req.signal, AbortSignal.timeout(FORWARD_TIMEOUT_MS)]),
        });
      } catch (e) {
        // The request may have reached the store (and fetch may even have sent it twice): for a
        // write the outcome is unknown; a retry with the same tag is safe.
        throw unknownOutcome(`store ${id} at ${address} did not answer: ${(e as Error).message}`);
      }
    });
    const kv = new KvService(store, client, forward, undefined, config.followerRead ?? true);
    kv.storeUrl = (id) => {
      const address = id === storeId ? config.advertiseAddr : book.get(id);
      return address === undefined ? undefined : `${security.scheme}://${address}`;
    };
    const split = new SplitWorker(store, client);
    const loadSplit = new LoadSplitWorker(store, split, new LoadSampler(loadSplitConfig(config)));
    if (loadSplit.sampler.config.enabled) store.loadSampler = loadSplit.sampler;
    const merge = new MergeWorker(store);
    const usedSize = () => [...store.peers.values()].reduce((n, p) => n + p.approximateSize, 0);
    // The filesystem's figures, as PD's stores report them: the whole disk, and what is free.
    const capacity = () => ({ ...diskStats(config.dataDir), usedSize: usedSize() });
    const heartbeat = new HeartbeatWorker(store, client, capacity, split, merge);
    registerStoreMetrics(store.metrics, {
      store,
      kv,
      capacity,
      heartbeatsSent: () => heartbeat.sent,
      loadSplits: () => loadSplit.splits,
      ...(transport && { raftStreamsOpened: () => transport.streamsOpened }),
      ...(streams && { forwardStreamsOpened: () => streams.opened }),
    });
    const gc = new LogGcWorker(store);
    const appOpts: StoreAppOptions = {
      security,
      clusterId: ident.clusterId,
      clientRoutesOpen: config.kvAuth === "open" ||
        ((config.kvAuth ?? "auto") === "auto" && isLoopbackAddr(config.addr)),
      log: (m) => log.warn(m),
    };
    const node = new StoreNode(
      store,
      kv,
      storeApp(store, kv, appOpts),
      { heartbeat, split, loadSplit, gc, merge },
      opts.engine === undefined,
      opts.raftLog === undefined,
      security,
      lock,
    );
    node.attach(listener, storeDirectRoute(store, kv, appOpts));
    node.forwardStreams = streams;

    if (store.peers.size === 0 && store.tombstones.size === 0) {
      if (!registered) {
        await waitForScheduler(client, waitMs, log);
        registered = await register(client, ident, config, log, { quick: false });
      }
      await maybeBootstrap(store, client, storeMeta, log);
    }
    // A store the scheduler has removed stops serving (its listener too) and ends the process
    // with what to do.
    const removed = new Promise<never>((_, reject) => {
      heartbeat.onRemoved = () => {
        const reason = new Error(removedMessage(storeId, config.dataDir));
        log.error(reason.message);
        void node.stop().finally(() => reject(reason));
      };
    });
    removed.catch(() => {}); // observed through `finished`
    heartbeat.start();
    split.start();
    loadSplit.start();
    gc.start();
    merge.start();
    node.book = book;
    node.finished = registered ? Promise.race([store.dead, removed]) : Promise.race([
      store.dead,
      removed,
      registerInBackground(client, ident, config, log, store),
    ]);
    return node;
  } catch (e) {
    await listener?.close();
    if (!opts.raftLog) await raftLog.close();
    if (!opts.engine) engine.close();
    lock?.release();
    throw e;
  }
}

/** Name of the Raft log's directory inside the data dir. */
export const RAFT_LOG_DIR = "raftlog";

async function openRaftLog(
  opts: StoreNodeOptions,
  engine: KvEngine,
  log: StoreLogger,
): Promise<RaftLogEngine> {
  const options: RaftLogOptions = { log: (m) => log.warn(m), ...opts.raftLogOptions };
  // An injected Deno KV engine lives in memory: so does its log.
  if (opts.engine) return await RaftLogEngine.openInMemory(options);
  const dir = join(opts.config.dataDir, RAFT_LOG_DIR);
  // Checked before opening, which would create the directory and a first file: a refused start
  // must leave the data dir as it found it, or the next start would not be refused.
  if (await raftLogMoved(engine) && !await RaftLogEngine.existsAt(dir)) {
    throw new RaftLogMissingError(
      `data dir ${opts.config.dataDir}: its raft logs were moved to ${dir}, which is missing or ` +
        `empty. Starting without it would forget Raft votes and acknowledged writes: restore ` +
        `it, or remove this store from the cluster and start it on an empty data dir`,
    );
  }
  return await RaftLogEngine.open(dir, options);
}

/**
 * Checks that the scheduler runs this data dir's cluster and registers the store's address.
 * Returns false if the scheduler could not be reached; throws if it runs another cluster.
 * `quick` gives up after one short attempt (a restarting store does not wait for the scheduler).
 */
async function register(
  client: PdClient,
  ident: { clusterId: number; storeId: number },
  config: StoreNodeOptions["config"],
  log: StoreLogger,
  { quick }: { quick: boolean },
): Promise<boolean> {
  const pd = quick ? client.withTimeout(QUICK_SCHEDULER_MS) : client;
  let clusterId: number;
  try {
    clusterId = (await pd.isBootstrapped()).clusterId;
  } catch (e) {
    if (!(e instanceof MrkvError) || e.code !== "Timeout") throw e;
    if (quick) {
      log.warn(
        `store ${ident.storeId}: the scheduler at ${config.scheduler} does not answer ` +
          `(${e.message}); starting from local state, registering in the background`,
      );
    }
    return false;
  }
  if (clusterId !== ident.clusterId) {
    throw new Error(
      `data dir ${config.dataDir} belongs to cluster ${ident.clusterId}, but the scheduler at ` +
        `${config.scheduler} runs cluster ${clusterId}`,
    );
  }
  try {
    await pd.putStore({
      id: ident.storeId,
      address: config.advertiseAddr,
      features: STORE_FEATURES,
    });
    return true;
  } catch (e) {
    if (e instanceof MrkvError && e.code === "Timeout") return false;
    if (isStoreRemoved(e)) throw new Error(removedMessage(ident.storeId, config.dataDir));
    throw e;
  }
}

/** Why a removed (Tombstone) store stops, and what its operator should do. */
function removedMessage(storeId: number, dataDir: string): string {
  return `store ${storeId} was removed from the cluster (it is a Tombstone) and cannot come ` +
    `back: this process stops; delete its data directory ${dataDir} before starting a new ` +
    `store there (it will get a new store ID)`;
}

/** How long a restarting store waits for the scheduler before it starts without it. */
const QUICK_SCHEDULER_MS = 2_000;

/**
 * Keeps trying {@link register} until it succeeds. Never resolves; rejects (ending the store)
 * if the scheduler turns out to run another cluster.
 */
async function registerInBackground(
  client: PdClient,
  ident: { clusterId: number; storeId: number },
  config: StoreNodeOptions["config"],
  log: StoreLogger,
  store: Store,
): Promise<void> {
  let delay = 500;
  while (!store.stopped) {
    await new Promise((r) => setTimeout(r, delay));
    if (store.stopped) break;
    try {
      if (await register(client, ident, config, log, { quick: false })) {
        log.info(`store ${ident.storeId}: registered with the scheduler at ${config.scheduler}`);
        break;
      }
    } catch (e) {
      log.error(`store ${ident.storeId}: ${(e as Error).message}; stopping`);
      store.stop();
      throw e;
    }
    delay = Math.min(delay * 2, 5_000);
  }
  return await new Promise<void>(() => {});
}

/**
 * Creates region 1 if the cluster is new. If the scheduler accepted our bootstrap earlier but
 * we crashed before writing region 1, the scheduler's region 1 with its one peer on this store
 * is written now.
 */
async function maybeBootstrap(
  store: Store,
  client: PdClient,
  meta: StoreMeta,
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
