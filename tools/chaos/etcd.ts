/**
 * `--target etcd`: a 3-member etcd cluster ("s1".."s3") placed by the same {@link Net}, so the
 * same workload, partitions and process faults run against a system known to be linearizable.
 * A run that finds an anomaly here points at the suite, not at mrkv.
 *
 * etcd (3.4 from Debian's `etcd-server`) must be on PATH, or named by `ETCD_BIN`. Flags are
 * etcd's defaults apart from the URLs (heartbeat 100 ms, election timeout 1 s).
 *
 * @module
 */
import { freePorts, pollUntil } from "../../tests/process_cluster.ts";
import type { Net } from "./netns.ts";
import { ServerSet } from "./procs.ts";

/** What {@link startEtcd} needs. */
export interface EtcdOptions {
  readonly net: Net;
  readonly dir: string;
  /** Member names, "s1".."s3". */
  readonly names: readonly string[];
  readonly now: () => number;
}

class EtcdCluster extends ServerSet {
  readonly names: readonly string[];
  readonly stores: readonly string[];
  readonly #peer: Map<string, string>;

  constructor(readonly opts: EtcdOptions, readonly bin: string) {
    super(opts.dir, opts.now);
    this.names = [...opts.names];
    this.stores = [...opts.names];
    // Peer URLs: the client port + 1 in a namespace (a port space of its own), else free ports.
    const ports = opts.net.kind === "loopback" ? freePorts(opts.names.length) : [];
    this.#peer = new Map(opts.names.map((n, i) => {
      const [host, port] = opts.net.addr(n).split(":");
      return [n, `http://${host}:${ports[i] ?? Number(port) + 1}`];
    }));
  }

  start(): void {
    for (const n of this.names) this.spawn(n);
  }

  url(name: string): string {
    return `http://${this.opts.net.addr(name)}`;
  }

  storeId(name: string): number {
    return Number(name.slice(1));
  }

  nameOf(id: number): string | undefined {
    return this.names.includes(`s${id}`) ? `s${id}` : undefined;
  }

  async waitUp(name: string, timeoutMs = 30_000): Promise<void> {
    await pollUntil(`etcd member ${name} to be healthy`, async () => {
      this.checkAlive(name);
      const res = await fetch(`${this.url(name)}/health`, { signal: AbortSignal.timeout(1_000) });
      const body = await res.json() as { health?: string };
      return body.health === "true";
    }, { timeoutMs, intervalMs: 200 }).catch((e: Error) => {
      throw new Error(`${e.message}\n--- last output of ${name} ---\n${this.tail(name)}`);
    });
  }

  protected argv(name: string): string[] {
    const initial = this.names.map((n) => `${n}=${this.#peer.get(n)}`).join(",");
    return this.opts.net.wrap(name, [
      this.bin,
      "--name",
      name,
      "--data-dir",
      `${this.dir}/data/${name}`,
      "--listen-client-urls",
      this.url(name),
      "--advertise-client-urls",
      this.url(name),
      "--listen-peer-urls",
      this.#peer.get(name)!,
      "--initial-advertise-peer-urls",
      this.#peer.get(name)!,
      "--initial-cluster",
      initial,
      "--initial-cluster-token",
      "mrkv-chaos",
      "--initial-cluster-state",
      "new",
      "--log-level",
      "warn",
    ]);
  }
}

/** Starts the members and waits until each reports healthy. */
export async function startEtcd(opts: EtcdOptions): Promise<ServerSet> {
  const bin = Deno.env.get("ETCD_BIN") ?? "etcd";
  const found = await new Deno.Command(bin, { args: ["--version"], stdout: "null", stderr: "null" })
    .output().then((o) => o.success, () => false);
  if (!found) throw new Error(`${bin} not found: apt-get install -y etcd-server (or set ETCD_BIN)`);
  await Deno.mkdir(`${opts.dir}/data`, { recursive: true });
  const c = new EtcdCluster(opts, bin);
  try {
    c.start();
    await Promise.all(c.names.map((n) => c.waitUp(n)));
  } catch (e) {
    await c.close();
    throw e;
  }
  return c;
}
