/**
 * A cluster of real mrkv processes, started the way a user starts them: one
 * `deno run -A --unstable-kv main.ts --role scheduler` and N `--role store` processes on
 * 127.0.0.1, each with its own temp `--data-dir` and free ports, fast timing flags. Stores can be
 * killed (`SIGKILL`, a crash) or stopped (`SIGTERM`) and restarted with the same data dir and
 * address. Every process's output is kept (last lines only) so a failing test can print it; set
 * `MRKV_DEBUG=1` to stream it live.
 *
 * Secure like any cluster (docs/security.md): a cluster secret by default, or mutual TLS with a
 * test CA (`security: "tls"` or `"tls+secret"`), certificates made with `openssl`.
 *
 * Used by the end-to-end tests; it talks to the processes only over HTTP(S), like curl
 * ({@link ProcessCluster.fetch} uses the harness's certificate in the TLS modes).
 *
 * @module
 */

import { generateSecret, readSecretFile, Security, type TlsFiles } from "../proto/security.ts";
import { TestPki } from "./test_pki.ts";

/** The repository root (children run there so `deno.json` and its import map apply). */
export const REPO_ROOT = new URL("..", import.meta.url).pathname;
const MAIN = new URL("../main.ts", import.meta.url).pathname;
/** How long to wait for a child's output to end once it has exited. */
const DRAIN_GRACE_MS = 2_000;
/** Lines of output kept per process for failure reports. */
const LOG_LINES = 200;
const verbose = Deno.env.get("MRKV_DEBUG") === "1";

/** Store timing flags fast enough for a test (TinyKV-like). */
export const FAST_STORE_FLAGS: readonly string[] = [
  "--raft-tick-ms",
  "50ms",
  "--heartbeat-ticks",
  "2",
  "--election-ticks",
  "10",
  "--scheduler-heartbeat-ms",
  "200ms",
  "--split-check-ms",
  "1s",
];

/**
 * `n` distinct free TCP ports on 127.0.0.1: all are bound at once (so they differ), then
 * released. Another process could take one in between; the window is short.
 */
export function freePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/** Polls `cond` every `intervalMs` until it holds or `timeoutMs` passes; throws naming `what`. */
export async function pollUntil<T>(
  what: string,
  cond: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 15_000, intervalMs = 50 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await cond();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      const why = lastError ? ` (last error: ${(lastError as Error).message})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** What a finished child reported. */
export interface ExitStatus {
  readonly code: number;
  readonly signal: Deno.Signal | null;
}

/** Runs `deno run -A --unstable-kv main.ts ...args` to completion; returns its code and output. */
export async function runMain(
  args: readonly string[],
  timeoutMs = 20_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", MAIN, ...args],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** One child process with its output captured. */
export class ChildProc {
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  readonly #drained: Promise<void>;
  /**
   * Resolves once the process has exited and its output is drained (or, if something it started
   * still holds its output open, {@link DRAIN_GRACE_MS} later).
   */
  readonly status: Promise<ExitStatus>;
  #exited: ExitStatus | undefined;
  /** Called with every line of output (e.g. to count a message over a long run). */
  onLine: ((line: string) => void) | undefined;

  readonly #group: boolean;

  /**
   * Spawns `cmd args` in the repository root. With `group`, the child leads a new process group
   * and signals go to the whole group (for launchers such as `deno task` that start children).
   */
  constructor(
    readonly name: string,
    cmd: string,
    args: readonly string[],
    { group = false, cwd = REPO_ROOT }: { group?: boolean; cwd?: string } = {},
  ) {
    this.#group = group;
    this.#child = new Deno.Command(cmd, {
      args: [...args],
      cwd,
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
      detached: group,
    }).spawn();
    this.#drained = Promise.all([this.#drain(this.#child.stdout), this.#drain(this.#child.stderr)])
      .then(() => {});
    this.status = this.#child.status.then(async (s) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#drained,
        new Promise((r) => timer = setTimeout(r, DRAIN_GRACE_MS)),
      ]);
      clearTimeout(timer);
      this.#exited = { code: s.code, signal: s.signal };
      return this.#exited;
    });
  }

  /** The pid, for messages. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Whether the process has exited. */
  get exited(): boolean {
    return this.#exited !== undefined;
  }

  /** Sends `signal`; a process that is already gone is not an error. */
  kill(signal: Deno.Signal): void {
    if (this.#exited) return;
    try {
      this.#child.kill(signal);
    } catch { /* exited meanwhile */ }
  }

  /**
   * Sends `signal` to the child's whole process group (only for `group` children): whatever
   * it started goes too, even after the child itself has exited.
   */
  killGroup(signal: Deno.Signal): void {
    if (!this.#group) throw new Error(`${this.name} was not started as a process group`);
    try {
      Deno.kill(-this.pid, signal);
    } catch { /* the group is gone */ }
  }

  /** Sends `signal` and waits for the exit; SIGKILLs and throws if it takes over `timeoutMs`. */
  async stop(signal: Deno.Signal, timeoutMs = 15_000): Promise<ExitStatus> {
    this.kill(signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((r) =>
      timer = setTimeout(() => r("timeout"), timeoutMs)
    );
    const result = await Promise.race([this.status, timedOut]);
    clearTimeout(timer);
    if (result === "timeout") {
      if (this.#group) this.killGroup("SIGKILL");
      else this.kill("SIGKILL");
      await this.status;
      throw new Error(
        `${this.name} (pid ${this.pid}) did not exit within ${timeoutMs} ms of ${signal}`,
      );
    }
    return result;
  }

  /** The last lines of output, prefixed with the name. */
  output(): string {
    return this.#lines.map((l) => `[${this.name}] ${l}`).join("\n");
  }

  async #drain(stream: ReadableStream<Uint8Array>): Promise<void> {
    let pending = "";
    try {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        const parts = (pending + chunk).split("\n");
        pending = parts.pop()!;
        for (const line of parts) this.#keep(line);
      }
    } catch { /* the stream broke with the process */ }
    if (pending) this.#keep(pending);
  }

  #keep(line: string): void {
    this.onLine?.(line);
    if (verbose) console.error(`[${this.name}] ${line}`);
    this.#lines.push(line);
    if (this.#lines.length > LOG_LINES) this.#lines.shift();
  }
}

/**
 * How the cluster's processes authenticate each other (docs/security.md): a cluster secret over
 * plain HTTP (the default, as `deno task start`), mutual TLS with a test CA, or both.
 */
export type ClusterSecurity = "secret" | "tls" | "tls+secret";

/** Options for {@link ProcessCluster.start}. */
export interface ProcessClusterOptions {
  readonly stores?: number;
  /** Extra flags for every store (after {@link FAST_STORE_FLAGS}, unless `fast` is false). */
  readonly storeFlags?: readonly string[];
  /** Extra flags for the scheduler, e.g. `["--max-store-down-time", "15s"]`. */
  readonly schedulerFlags?: readonly string[];
  /** Use {@link FAST_STORE_FLAGS} (default true); false: the stores' default timings. */
  readonly fast?: boolean;
  /**
   * Run in this directory and keep it (default: a fresh temp dir, removed by `close`). A
   * directory a cluster ran in before is reused: same secret, data dirs and store IDs.
   */
  readonly dir?: string;
  /**
   * Run the processes from this checkout (its `main.ts`, in its directory) instead of this one:
   * benchmarks compare an older commit with this one this way.
   */
  readonly code?: string;
  /** How long each store may take to answer `/status` (default 20 s; a big data dir loads slower). */
  readonly startTimeoutMs?: number;
  /** Default `secret`. */
  readonly security?: ClusterSecurity;
}

/** The common name of the certificates of the cluster's processes (TLS modes). */
export const NODE_CN = "mrkv-node";
/** The common name of the certificate the harness itself (an operator) uses. */
export const ADMIN_CN = "mrkv-admin";

/** A store slot: its address and data dir stay the same across restarts. */
interface StoreSlot {
  readonly port: number;
  readonly dataDir: string;
  proc: ChildProc | undefined;
  /** The store ID it reported on `/status` (stable across restarts). */
  id: number | undefined;
  /** Every process this slot ran, for output on failure. */
  readonly history: ChildProc[];
}

/** A scheduler and N stores as separate processes. */
export class ProcessCluster {
  readonly #slots: StoreSlot[];
  readonly #storeFlags: readonly string[];
  readonly #schedulerFlags: readonly string[];
  /** Every scheduler process this cluster ran; the last one is the current one. */
  readonly #schedulers: ChildProc[] = [];

  private constructor(
    readonly dir: string,
    /** The cluster secret every process reads (`--cluster-secret-file`), in secret modes. */
    readonly secretFile: string | undefined,
    /**
     * The test CA (TLS modes): every process gets a certificate from it, CN {@link NODE_CN};
     * tests can issue more (another CN, say).
     */
    readonly pki: TestPki | undefined,
    /**
     * The harness's own security: the secret (for tokens) and, in TLS modes, a certificate
     * with CN {@link ADMIN_CN}. {@link fetch} goes through it.
     */
    readonly security: Security,
    readonly schedulerPort: number,
    slots: StoreSlot[],
    storeFlags: readonly string[],
    schedulerFlags: readonly string[] = [],
    /** Whether `close` removes the directory. */
    readonly temporary = true,
    /** The checkout the processes run from. */
    readonly code = REPO_ROOT,
  ) {
    this.#slots = slots;
    this.#storeFlags = storeFlags;
    this.#schedulerFlags = schedulerFlags;
  }

  /**
   * `fetch` as an operator's tool on this machine would: over TLS with the harness's certificate
   * in TLS modes (no credential headers are added; see {@link adminHeaders}).
   */
  fetch(url: string, init: RequestInit = {}): Promise<Response> {
    return this.security.fetch(url, init);
  }

  /** The security flags every process of this cluster gets (`name`: its certificate's files). */
  #securityFlags(name: string): string[] {
    const flags = this.secretFile ? ["--cluster-secret-file", this.secretFile] : [];
    if (this.pki) {
      flags.push(
        "--cacert",
        this.pki.caFile,
        "--cert",
        `${this.pki.dir}/${name}.crt`,
        "--key",
        `${this.pki.dir}/${name}.key`,
        "--cert-allowed-cn",
        `${NODE_CN},${ADMIN_CN}`,
      );
    }
    return flags;
  }

  /** The current scheduler process. */
  get scheduler(): ChildProc {
    return this.#schedulers.at(-1)!;
  }

  /** Starts (or restarts, with the same address and data dir) the scheduler. */
  startScheduler(): ChildProc {
    if (this.#schedulers.length > 0 && !this.scheduler.exited) {
      throw new Error("the scheduler is already running");
    }
    const proc = new ChildProc(`scheduler#${this.#schedulers.length + 1}`, Deno.execPath(), [
      "run",
      "-A",
      "--unstable-kv",
      `${this.code}main.ts`,
      "--role",
      "scheduler",
      "--addr",
      `127.0.0.1:${this.schedulerPort}`,
      "--data-dir",
      `${this.dir}/scheduler`,
      "--schedule-interval-ms",
      "50ms",
      ...this.#securityFlags("scheduler"),
      ...this.#schedulerFlags,
    ], { cwd: this.code });
    this.#schedulers.push(proc);
    return proc;
  }

  /** Waits until the scheduler answers `/status`; returns its cluster ID. */
  async waitSchedulerUp(timeoutMs = 20_000): Promise<number> {
    return await pollUntil("the scheduler to answer /status", async () => {
      if (this.scheduler.exited) {
        throw new Error(`the scheduler exited: ${JSON.stringify(await this.scheduler.status)}`);
      }
      const res = await this.fetch(`${this.schedulerUrl}/status`, {
        signal: AbortSignal.timeout(2_000),
      });
      const body = await res.json();
      return res.status === 200 && body.role === "scheduler"
        ? body.cluster_id as number
        : undefined;
    }, { timeoutMs, intervalMs: 100 });
  }

  /**
   * Starts the scheduler and the stores and waits until each store answers `/status` with its
   * ID. Replication is not awaited here (see {@link waitRegionVoters}).
   */
  static async start(opts: ProcessClusterOptions = {}): Promise<ProcessCluster> {
    const n = opts.stores ?? 3;
    const mode = opts.security ?? "secret";
    const dir = opts.dir ?? await Deno.makeTempDir({ prefix: "mrkv-e2e-" });
    await Deno.mkdir(dir, { recursive: true });
    let secretFile: string | undefined;
    let secret: Uint8Array | undefined;
    if (mode !== "tls") {
      secretFile = `${dir}/cluster.secret`;
      // A directory a cluster ran in before keeps its secret (its stores joined with it).
      const reused = opts.dir !== undefined &&
        await Deno.stat(secretFile).then(() => true, () => false);
      if (!reused) await Deno.writeTextFile(secretFile, generateSecret(), { mode: 0o600 });
      secret = await readSecretFile(secretFile);
    }
    let pki: TestPki | undefined;
    let tls: TlsFiles | undefined;
    if (mode !== "secret") {
      pki = await TestPki.create(`${dir}/pki`);
      for (const name of ["scheduler", ...Array.from({ length: n }, (_, i) => `store${i + 1}`)]) {
        await pki.issue(name, { cn: NODE_CN });
      }
      const admin = await pki.issue("admin", { cn: ADMIN_CN });
      tls = {
        ca: await Deno.readTextFile(pki.caFile),
        cert: await Deno.readTextFile(admin.cert),
        key: await Deno.readTextFile(admin.key),
      };
    }
    const security = new Security({ secret, tls });
    const [schedulerPort, ...storePorts] = freePorts(n + 1);
    const slots: StoreSlot[] = storePorts.map((port, i) => ({
      port,
      dataDir: `${dir}/store${i + 1}`,
      proc: undefined,
      id: undefined,
      history: [],
    }));
    const cluster = new ProcessCluster(
      dir,
      secretFile,
      pki,
      security,
      schedulerPort!,
      slots,
      [...(opts.fast ?? true ? FAST_STORE_FLAGS : []), ...(opts.storeFlags ?? [])],
      opts.schedulerFlags,
      opts.dir === undefined,
      opts.code === undefined
        ? REPO_ROOT
        : new URL(`${opts.code}/`, `file://${Deno.cwd()}/`).pathname,
    );
    try {
      cluster.startScheduler();
      for (let i = 0; i < n; i++) cluster.startStore(i);
      for (let i = 0; i < n; i++) await cluster.waitStoreUp(i, opts.startTimeoutMs);
    } catch (e) {
      await cluster.close();
      throw e;
    }
    return cluster;
  }

  /** Headers for the admin API (the scheduler's `/pd/api/v1/*`, a store's `/debug/*`). */
  adminHeaders(): Record<string, string> {
    return this.security.credentialHeaders("admin");
  }

  /** Headers for the KV API (stores on loopback also accept none). */
  clientHeaders(): Record<string, string> {
    return this.security.credentialHeaders("client");
  }

  /** Number of store slots. */
  get size(): number {
    return this.#slots.length;
  }

  /** `http://127.0.0.1:PORT` of the scheduler (`https` in TLS modes). */
  get schedulerUrl(): string {
    return `${this.security.scheme}://127.0.0.1:${this.schedulerPort}`;
  }

  /** `http://127.0.0.1:PORT` of store slot `i` (`https` in TLS modes). */
  storeUrl(i: number): string {
    return `${this.security.scheme}://127.0.0.1:${this.#slot(i).port}`;
  }

  /** The store ID of slot `i` (known once it has answered `/status`). */
  storeId(i: number): number {
    const id = this.#slot(i).id;
    if (id === undefined) throw new Error(`store slot ${i} has not reported its ID yet`);
    return id;
  }

  /** The slot running store `id`. */
  slotOf(storeId: number): number {
    const i = this.#slots.findIndex((s) => s.id === storeId);
    if (i < 0) throw new Error(`no store slot has store ID ${storeId}`);
    return i;
  }

  /** The process of slot `i`, if running. */
  proc(i: number): ChildProc | undefined {
    return this.#slot(i).proc;
  }

  /** Starts (or restarts, with the same address and data dir) store slot `i`. */
  startStore(i: number): ChildProc {
    const slot = this.#slot(i);
    if (slot.proc && !slot.proc.exited) throw new Error(`store slot ${i} is already running`);
    const proc = new ChildProc(`store${i + 1}#${slot.history.length + 1}`, Deno.execPath(), [
      "run",
      "-A",
      "--unstable-kv",
      `${this.code}main.ts`,
      "--role",
      "store",
      "--addr",
      `127.0.0.1:${slot.port}`,
      "--scheduler",
      this.schedulerUrl,
      "--data-dir",
      slot.dataDir,
      ...this.#securityFlags(`store${i + 1}`),
      ...this.#storeFlags,
    ], { cwd: this.code });
    slot.proc = proc;
    slot.history.push(proc);
    return proc;
  }

  /** Waits until slot `i` answers `/status` as a healthy store; records (and returns) its ID. */
  async waitStoreUp(i: number, timeoutMs = 20_000): Promise<number> {
    const slot = this.#slot(i);
    const id = await pollUntil(`store slot ${i} to answer /status`, async () => {
      if (slot.proc?.exited) {
        throw new Error(`store slot ${i} exited: ${JSON.stringify(await slot.proc.status)}`);
      }
      const res = await this.fetch(`${this.storeUrl(i)}/status`, {
        signal: AbortSignal.timeout(2_000),
      });
      const body = await res.json();
      return res.status === 200 && body.role === "store" && body.healthy === true
        ? body.id as number
        : undefined;
    }, { timeoutMs, intervalMs: 100 });
    if (slot.id !== undefined && slot.id !== id) {
      throw new Error(`store slot ${i} came back as store ${id}, it was store ${slot.id}`);
    }
    slot.id = id;
    return id;
  }

  /** `kill -9` of slot `i`'s process; resolves once it is gone. */
  async crashStore(i: number): Promise<ExitStatus> {
    const proc = this.#slot(i).proc;
    if (!proc) throw new Error(`store slot ${i} is not running`);
    return await proc.stop("SIGKILL");
  }

  /**
   * One call to the scheduler's admin API (`path` under `/pd/api/v1`, a JSON body if any): the
   * answer's status and its JSON body (undefined if empty).
   */
  async adminApi<T>(method: string, path: string, body?: unknown): Promise<[number, T]> {
    const res = await this.fetch(`${this.schedulerUrl}/pd/api/v1${path}`, {
      method,
      headers: { ...this.adminHeaders(), "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    return [res.status, (text ? JSON.parse(text) : undefined) as T];
  }

  /** Region `id` as the scheduler sees it (from `GET /pd/api/v1/regions`), or undefined. */
  async region(id: number): Promise<SchedulerRegion | undefined> {
    const res = await this.fetch(`${this.schedulerUrl}/pd/api/v1/regions`, {
      headers: this.adminHeaders(),
      signal: AbortSignal.timeout(2_000),
    });
    const body = await res.json() as { regions: SchedulerRegion[] };
    return body.regions.find((r) => r.id === id);
  }

  /**
   * Waits until the scheduler reports region `id` with `count` voters, no pending peer and a
   * leader.
   */
  async waitRegionVoters(id: number, count: number, timeoutMs = 20_000): Promise<SchedulerRegion> {
    let last: SchedulerRegion | undefined;
    try {
      return await pollUntil(`region ${id} to have ${count} voters and a leader`, async () => {
        const r = last = await this.region(id);
        if (!r || !r.leader) return undefined;
        const voters = r.peers.filter((p) => p.role === "Voter");
        return voters.length === count && r.pending_peers.length === 0 ? r : undefined;
      }, { timeoutMs, intervalMs: 100 });
    } catch (e) {
      throw new Error(`${(e as Error).message}; last seen: ${JSON.stringify(last)}`, { cause: e });
    }
  }

  /**
   * SIGTERMs every running store, then the scheduler, and returns how each exited (by name).
   * Processes that do not exit in time are killed and reported as an error.
   */
  async shutdown(): Promise<Map<string, ExitStatus>> {
    const out = new Map<string, ExitStatus>();
    const stores = this.#slots.flatMap((s) => s.proc && !s.proc.exited ? [s.proc] : []);
    const statuses = await Promise.all(stores.map((p) => p.stop("SIGTERM")));
    stores.forEach((p, i) => out.set(p.name, statuses[i]!));
    if (!this.scheduler.exited) out.set(this.scheduler.name, await this.scheduler.stop("SIGTERM"));
    return out;
  }

  /** The captured output of every process, for a failure report. */
  output(): string {
    return this.#all().map((p) => p.output()).join("\n");
  }

  /** Kills whatever still runs (SIGKILL), waits for it, and removes a temporary dir. Never throws. */
  async close(): Promise<void> {
    const all = this.#all();
    for (const p of all) p.kill("SIGKILL");
    await Promise.all(all.map((p) => p.status.catch(() => {})));
    this.security.close();
    if (this.temporary) await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  #all(): ChildProc[] {
    return [...this.#schedulers, ...this.#slots.flatMap((s) => s.history)];
  }

  #slot(i: number): StoreSlot {
    const s = this.#slots[i];
    if (!s) throw new Error(`no store slot ${i}`);
    return s;
  }
}

/** A peer as the scheduler's admin API shows it. */
export interface SchedulerPeer {
  readonly id: number;
  readonly store_id: number;
  readonly role: string;
}

/** A region as `GET /pd/api/v1/regions` shows it. */
export interface SchedulerRegion {
  readonly id: number;
  readonly peers: readonly SchedulerPeer[];
  readonly leader: SchedulerPeer | null;
  readonly pending_peers: readonly SchedulerPeer[];
  readonly epoch: { readonly conf_ver: number; readonly version: number };
}
