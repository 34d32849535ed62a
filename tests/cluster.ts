/**
 * An in-process test cluster: a real scheduler on 127.0.0.1 (port 0, temp data dir) and N stores
 * in this process, each with its own Deno KV engine in a temp dir, talking Raft over a
 * {@link MemoryNetwork} whose filters drop, partition, isolate and delay messages. Stores can be
 * stopped and restarted from their data. Clients call any store's KV service, as curl would.
 *
 * Network faults affect only store-to-store Raft traffic; heartbeats to the scheduler and
 * forwarded client requests always get through (as in TinyKV's harness).
 *
 * @module
 */
import { type SchedulerServer, startScheduler } from "../scheduler/mod.ts";
import { parseCommandLine } from "../config/config.ts";
import { MemoryNetwork } from "../raftstore/transport_memory.ts";
import { startStoreNode, type StoreNode } from "../raftstore/node.ts";
import type { StoreConfig, StoreLogger } from "../raftstore/store.ts";
import type { Peer } from "../raftstore/peer.ts";
import { MrkvError } from "../proto/errors.ts";
import type { KvEngineOptions, RaftLogOptions } from "../storage/mod.ts";
import { LinkFaults } from "./link_faults.ts";

export interface ClusterOptions {
  readonly stores?: number;
  readonly seed?: number;
  readonly store?: Partial<StoreConfig>;
  readonly maxReplicas?: number;
  /** Extra scheduler flags, e.g. `["--max-store-down-time", "5s"]` (they win over the defaults). */
  readonly schedulerFlags?: readonly string[];
  /** Print store logs (default: only with MRKV_DEBUG=1). */
  readonly verbose?: boolean;
  /**
   * Stores talk real HTTP on 127.0.0.1 (Raft, forwarding, scheduler RPC) through
   * {@link TestCluster.links}, instead of the in-memory network.
   */
  readonly http?: boolean;
}

/** Settings fast enough for tests (TinyKV's test config). */
export const TEST_STORE_CONFIG: StoreConfig = {
  raftTickMs: 50,
  heartbeatTicks: 2,
  electionTicks: 10,
  regionMaxSize: 96 * 1024 * 1024,
  regionSplitSize: 64 * 1024 * 1024,
  splitCheckMs: 100,
  raftLogGcCountLimit: 10_000,
  schedulerHeartbeatMs: 100,
};

const enc = new TextEncoder();
const dec = new TextDecoder();
/** Bytes of a string (test keys and values are strings). */
export const b = (s: string): Uint8Array => enc.encode(s);
export const str = (u: Uint8Array | null): string | null => (u === null ? null : dec.decode(u));

/** A free TCP port on 127.0.0.1 (bound, then released; the window is short). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Polls `cond` until it holds or `timeoutMs` passes; throws naming `what`. */
export async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A scheduler and N stores in one process. */
export class TestCluster {
  readonly network: MemoryNetwork;
  /** Link faults of an `http` cluster (see link_faults.ts). */
  readonly links = new LinkFaults();
  readonly #http: boolean;
  /** Listening ports of an `http` cluster's store slots (kept across restarts). */
  readonly #ports: number[] = [];
  readonly nodes: (StoreNode | undefined)[] = [];
  readonly #storeIds: number[] = [];
  readonly #config: StoreConfig;
  readonly #log: StoreLogger;

  private constructor(
    readonly dir: string,
    readonly scheduler: SchedulerServer,
    readonly storeCount: number,
    opts: ClusterOptions,
  ) {
    this.network = new MemoryNetwork(opts.seed ?? 1);
    this.#http = opts.http ?? false;
    this.links.register(scheduler.addr, "scheduler");
    this.#config = { ...TEST_STORE_CONFIG, ...opts.store };
    const verbose = opts.verbose ?? Deno.env.get("MRKV_DEBUG") === "1";
    const quiet = () => {};
    this.#log = verbose
      ? {
        info: (m) => console.log(m),
        warn: (m) => console.warn(m),
        error: (m) => console.error(m),
      }
      : { info: quiet, warn: quiet, error: (m) => console.error(m) };
  }

  /** Starts the scheduler and `stores` stores; the first one bootstraps region 1. */
  static async start(opts: ClusterOptions = {}): Promise<TestCluster> {
    const dir = await Deno.makeTempDir({ prefix: "mrkv-cluster-" });
    const parsed = parseCommandLine([
      "--role",
      "scheduler",
      "--addr",
      "127.0.0.1:0",
      "--data-dir",
      `${dir}/scheduler`,
      "--max-replicas",
      String(opts.maxReplicas ?? 3),
      "--schedule-interval-ms",
      "50",
      "--log-level",
      "error",
      ...(opts.schedulerFlags ?? []),
    ]);
    if (parsed.help) throw new Error("unreachable");
    const scheduler = await startScheduler(parsed.config);
    const cluster = new TestCluster(dir, scheduler, opts.stores ?? 3, opts);
    for (let i = 0; i < cluster.storeCount; i++) await cluster.startStore(i);
    return cluster;
  }

  /** The store ID of store slot `i` (known once it has started once). */
  storeId(i: number): number {
    return this.#storeIds[i]!;
  }

  /** Starts (or restarts, from its data) the store in slot `i`. */
  async startStore(
    i: number,
    engineOptions?: KvEngineOptions,
    raftLogOptions?: RaftLogOptions,
  ): Promise<StoreNode> {
    if (this.nodes[i]) throw new Error(`store slot ${i} is already running`);
    const port = this.#http ? (this.#ports[i] ??= freePort()) : 30001 + i;
    const addr = `127.0.0.1:${port}`;
    // Requests are attributed to the slot's store ID once it is known (a new store learns it
    // from the scheduler first).
    const from = () => this.#storeIds[i] ?? -1 - i;
    const viaLinks: typeof fetch = (input, init) => this.links.fetchFrom(from())(input, init);
    const node = await startStoreNode({
      config: {
        ...this.#config,
        addr,
        advertiseAddr: addr,
        dataDir: `${this.dir}/store${i}`,
        scheduler: `http://${this.scheduler.addr}`,
      },
      engineOptions,
      raftLogOptions,
      log: this.#log,
      ...(this.#http
        ? {
          fetch: viaLinks,
          schedulerFetch: (url, init) => viaLinks(url, init),
        }
        : {
          serve: false,
          transport: (storeId, receiver, incarnation) =>
            this.network.connect(storeId, receiver, incarnation),
          forward: (storeId, req) => {
            const target = this.nodes.find((n) => n?.store.storeId === storeId);
            if (!target) {
              return Promise.reject(new MrkvError("NotLeader", `store ${storeId} is down`));
            }
            return Promise.resolve(target.app.fetch(req));
          },
        }),
      schedulerWaitMs: 5_000,
    });
    this.nodes[i] = node;
    this.#storeIds[i] = node.store.storeId;
    this.links.register(addr, node.store.storeId);
    return node;
  }

  /** Stops the store in slot `i`, keeping its data (a crash, as far as Raft can tell). */
  async stopStore(i: number): Promise<void> {
    const node = this.nodes[i];
    this.nodes[i] = undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      node?.stop(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`store slot ${i} did not stop within 10 s`)),
          10_000,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /**
   * Makes store `i` crash on its next engine write: the write never lands, as if the process
   * had been killed just before it (messages sent earlier in that Ready pass are out). Resolves
   * once the store has died; `startStore(i)` brings it back from its data.
   */
  async crashOnNextWrite(i: number): Promise<void> {
    const node = this.node(i);
    const crash = () => {
      throw new Error("injected crash before a write");
    };
    node.store.engine.beforeCommit = crash;
    node.store.raftLog.beforeWrite = crash;
    await node.finished.catch(() => {});
    this.nodes[i] = undefined;
    await node.stop();
  }

  /** A running store node (the first one if `i` is omitted). */
  node(i?: number): StoreNode {
    const n = i === undefined ? this.nodes.find((x) => x !== undefined) : this.nodes[i];
    if (!n) throw new Error(`store ${i ?? "(any)"} is not running`);
    return n;
  }

  /** Every running node. */
  running(): StoreNode[] {
    return this.nodes.filter((n): n is StoreNode => n !== undefined);
  }

  /** The leader peer of `regionId` among running stores, if any. */
  leaderOf(regionId: number): Peer | undefined {
    for (const n of this.running()) {
      const p = n.store.peers.get(regionId);
      if (p?.isLeader() && !p.destroyed) return p;
    }
    return undefined;
  }

  /** The leader peer of `regionId`, waiting for one (an election may be under way). */
  async waitLeader(regionId: number, timeoutMs = 10_000): Promise<Peer> {
    await waitFor(
      `region ${regionId} to have a leader`,
      () => this.leaderOf(regionId) !== undefined,
      timeoutMs,
    );
    return this.leaderOf(regionId)!;
  }

  /** Waits until every running store agrees region `regionId` has `count` voters. */
  async waitReplicas(regionId: number, count: number, timeoutMs = 20_000): Promise<void> {
    await waitFor(`region ${regionId} to have ${count} voters on every store`, () => {
      const leader = this.leaderOf(regionId);
      if (!leader) return false;
      const voters = leader.region.peers.filter((p) => p.role === "Voter");
      if (voters.length !== count) return false;
      return voters.every((v) => {
        const n = this.running().find((x) => x.store.storeId === v.storeId);
        const p = n?.store.peers.get(regionId);
        return p !== undefined && p.appliedIndex >= leader.appliedIndex - 0 &&
          p.region.epoch.confVer === leader.region.epoch.confVer;
      });
    }, timeoutMs);
  }

  // ---- client operations through any running store ----

  async put(key: string, value: string, via?: number): Promise<void> {
    await this.node(via).kv.put(b(key), b(value));
  }

  async get(key: string, via?: number): Promise<string | null> {
    return str(await this.node(via).kv.get(b(key)));
  }

  async delete(key: string, via?: number): Promise<void> {
    await this.node(via).kv.delete(b(key));
  }

  /** The value of `key` in store `i`'s local engine (no Raft: possibly stale). */
  async localGet(i: number, key: string): Promise<string | null> {
    return str(await this.node(i).store.engine.get(b(key)));
  }

  /** Waits until store `i`'s engine holds `value` for `key` (null: absent). */
  async waitLocal(i: number, key: string, value: string | null, timeoutMs = 15_000): Promise<void> {
    await waitFor(
      `store slot ${i} to hold ${key}=${value}`,
      async () => (await this.localGet(i, key)) === value,
      timeoutMs,
    );
  }

  async close(): Promise<void> {
    this.links.heal({ release: false });
    for (let i = 0; i < this.nodes.length; i++) await this.stopStore(i).catch(() => {});
    await this.scheduler.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Stops the balance and hot-region schedulers, so only a test's own operators move regions and
 * leaders.
 */
export async function pauseBalancers(c: TestCluster): Promise<void> {
  for (
    const name of ["balance-region-scheduler", "balance-leader-scheduler", "hot-region-scheduler"]
  ) {
    await fetch(`http://${c.scheduler.addr}/pd/api/v1/schedulers/${name}`, { method: "DELETE" })
      .then((r) => r.body?.cancel());
  }
}

/**
 * Runs `scenario` on a fresh cluster whose region 1 already has its replicas, and always closes
 * the cluster afterwards.
 */
export async function withCluster(
  opts: ClusterOptions,
  scenario: (c: TestCluster) => Promise<void>,
): Promise<void> {
  const c = await TestCluster.start(opts);
  try {
    await c.waitReplicas(1, Math.min(opts.maxReplicas ?? 3, opts.stores ?? 3));
    await scenario(c);
  } finally {
    await c.close();
  }
}
