/**
 * The mrkv cluster under test, as real processes: one `main.ts --role scheduler` ("sched") and
 * N `--role store` ("s1".."sN"), each placed by the {@link Net} (its own network namespace, or
 * 127.0.0.1), with the end-to-end tests' fast timing flags. Data lives under `data/<name>` in
 * the run directory, so a killed store restarts with the same data and address.
 *
 * @module
 */
import { generateSecret, readSecretFile, tokenFromSecret } from "../../proto/security.ts";
import { FAST_STORE_FLAGS, pollUntil } from "../../tests/process_cluster.ts";
import type { Http } from "./http.ts";
import type { Net } from "./netns.ts";
import { ServerSet } from "./procs.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/**
 * Writes a fresh cluster secret to `dir/cluster.secret` (every server reads it) and returns the
 * file and the headers the tool's own requests carry: the admin credential, which the KV API,
 * the admin API and `/debug/*` all accept.
 */
export async function makeClusterSecret(
  dir: string,
): Promise<{ file: string; headers: Record<string, string> }> {
  const file = `${dir}/cluster.secret`;
  await Deno.writeTextFile(file, generateSecret(), { mode: 0o600 });
  const token = tokenFromSecret(await readSecretFile(file), "admin");
  return { file, headers: { authorization: `Bearer ${token}` } };
}

/** What {@link ChaosCluster.start} needs. */
export interface ClusterOptions {
  readonly net: Net;
  readonly http: Http;
  readonly stores: number;
  /** The run directory: data under `data/`, process output under `logs/`. */
  readonly dir: string;
  /** Flags for every store after the fast timing flags. */
  readonly storeFlags?: readonly string[];
  /** The cluster secret file every server reads ({@link makeClusterSecret}). */
  readonly secretFile: string;
  /** Milliseconds since the run started (for log markers and exit times). */
  readonly now: () => number;
}

/** A scheduler and N stores as processes placed by a {@link Net}. */
export class ChaosCluster extends ServerSet {
  readonly names: readonly string[];
  readonly stores: readonly string[];
  readonly #ids = new Map<string, number>();

  private constructor(readonly opts: ClusterOptions) {
    super(opts.dir, opts.now);
    this.names = ChaosCluster.serverNames(opts.stores);
    this.stores = this.names.filter((n) => n !== "sched");
  }

  /** Server names for a cluster of `stores` stores (what the {@link Net} must place). */
  static serverNames(stores: number): string[] {
    return ["sched", ...Array.from({ length: stores }, (_, i) => `s${i + 1}`)];
  }

  /** Starts every process and waits until each store answers `/status` with its ID. */
  static async start(opts: ClusterOptions): Promise<ChaosCluster> {
    const c = new ChaosCluster(opts);
    await Deno.mkdir(`${opts.dir}/data`, { recursive: true });
    try {
      c.spawn("sched");
      await c.waitUp("sched");
      for (const s of c.stores) c.spawn(s);
      for (const s of c.stores) await c.waitUp(s);
    } catch (e) {
      await c.close();
      throw e;
    }
    return c;
  }

  url(name: string): string {
    return `http://${this.opts.net.addr(name)}`;
  }

  storeId(name: string): number {
    const id = this.#ids.get(name);
    if (id === undefined) throw new Error(`${name} has not reported its store ID`);
    return id;
  }

  nameOf(storeId: number): string | undefined {
    for (const [name, id] of this.#ids) if (id === storeId) return name;
    return undefined;
  }

  /**
   * Waits until `name` answers `/status` (a store: as healthy, recording its ID). Fails at
   * once if the process exits meanwhile.
   */
  async waitUp(name: string, timeoutMs = 30_000): Promise<void> {
    const got = await pollUntil(`${name} to answer /status`, async () => {
      try {
        this.checkAlive(name);
      } catch (e) {
        return { exited: e as Error }; // stop polling: it will not come up
      }
      const s = await this.opts.http.json<{ role?: string; healthy?: boolean; id?: number }>(
        "GET",
        `${this.url(name)}/status`,
        { timeoutMs: 1_000 },
      );
      if (name === "sched") return s.role === "scheduler" ? { id: 0 } : undefined;
      return s.role === "store" && s.healthy === true && typeof s.id === "number"
        ? { id: s.id }
        : undefined;
    }, { timeoutMs, intervalMs: 100 }).catch((e: Error) => ({ exited: e }));
    if ("exited" in got && got.exited) {
      throw new Error(`${got.exited.message}\n--- last output of ${name} ---\n${this.tail(name)}`);
    }
    if (name === "sched") return;
    const known = this.#ids.get(name);
    const id = (got as { id: number }).id;
    if (known !== undefined && known !== id) {
      throw new Error(`${name} came back as store ${id}; it was store ${known}`);
    }
    this.#ids.set(name, id);
  }

  protected argv(name: string): string[] {
    const { net, dir } = this.opts;
    const role = name === "sched" ? "scheduler" : "store";
    return net.wrap(name, [
      Deno.execPath(),
      "run",
      "-A",
      "--unstable-kv",
      MAIN,
      "--role",
      role,
      "--addr",
      net.addr(name),
      "--data-dir",
      `${dir}/data/${name}`,
      "--cluster-secret-file",
      this.opts.secretFile,
      ...(role === "scheduler" ? ["--schedule-interval-ms", "50ms"] : [
        "--scheduler",
        this.url("sched"),
        ...FAST_STORE_FLAGS,
        ...(this.opts.storeFlags ?? []),
      ]),
    ]);
  }
}
