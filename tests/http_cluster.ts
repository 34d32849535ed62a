/**
 * A cluster in this process that talks real HTTP on 127.0.0.1 everywhere: a scheduler and N
 * stores on free ports, each store with its own listener, HTTP transport and Deno KV in a temp
 * dir — what curl, the ctl and a browser see of a real cluster, at the cost of one process.
 * Secure like the playground: a cluster secret in `DIR/cluster.secret` and the admin and client
 * credentials as curl header files beside it. Used by the tests that run the documentation's
 * examples and drive the dashboard.
 *
 * @module
 */
import { parseCommandLine } from "../config/config.ts";
import { startStoreNode, type StoreNode } from "../raftstore/node.ts";
import { type SchedulerServer, startScheduler } from "../scheduler/mod.ts";
import { generateSecret, readSecretFile, tokenFromSecret } from "../proto/security.ts";
import { FAST_STORE_FLAGS, freePorts, pollUntil } from "./process_cluster.ts";

const quiet = { info: () => {}, warn: () => {}, error: (m: string) => console.error(m) };

/** A running HTTP cluster. */
export interface HttpCluster {
  readonly scheduler: SchedulerServer;
  readonly schedulerUrl: string;
  readonly storeUrls: readonly string[];
  readonly nodes: readonly StoreNode[];
  /** Holds `cluster.secret`, `admin.header` and `client.header`. */
  readonly dir: string;
  readonly secretFile: string;
  /** The admin credential as request headers. */
  readonly adminHeaders: Record<string, string>;
  close(): Promise<void>;
}

/**
 * Starts a scheduler and `stores` stores one after another (so store IDs come out in port
 * order), then waits until region 1 has `stores` voters and a leader.
 */
export async function startHttpCluster(stores = 3): Promise<HttpCluster> {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-http-cluster-" });
  const [schedulerPort, ...storePorts] = freePorts(stores + 1);
  const secretFile = `${dir}/cluster.secret`;
  await Deno.writeTextFile(secretFile, generateSecret() + "\n", { mode: 0o600 });
  const secret = await readSecretFile(secretFile);
  for (const kind of ["admin", "client"] as const) {
    await Deno.writeTextFile(
      `${dir}/${kind}.header`,
      `Authorization: Bearer ${tokenFromSecret(secret, kind)}\n`,
      { mode: 0o600 },
    );
  }
  const adminHeaders = { authorization: `Bearer ${tokenFromSecret(secret, "admin")}` };
  const parse = (args: string[]) => {
    const r = parseCommandLine(args);
    if (r.help) throw new Error("unreachable");
    return r.config;
  };
  const scheduler = await startScheduler(parse([
    "--role",
    "scheduler",
    "--addr",
    `127.0.0.1:${schedulerPort}`,
    "--data-dir",
    `${dir}/scheduler`,
    "--schedule-interval-ms",
    "50ms",
    "--log-level",
    "error",
    "--cluster-secret-file",
    secretFile,
  ]));
  const schedulerUrl = `http://127.0.0.1:${schedulerPort}`;
  const nodes: StoreNode[] = [];
  const close = async () => {
    for (const n of nodes) await n.stop().catch(() => {});
    await scheduler.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    for (const [i, port] of storePorts.entries()) {
      nodes.push(
        await startStoreNode({
          config: parse([
            "--role",
            "store",
            "--addr",
            `127.0.0.1:${port}`,
            "--scheduler",
            schedulerUrl,
            "--data-dir",
            `${dir}/store${i + 1}`,
            ...FAST_STORE_FLAGS,
            "--cluster-secret-file",
            secretFile,
          ]),
          log: quiet,
        }),
      );
    }
    await pollUntil("region 1 to have a leader and a voter on every store", async () => {
      const res = await fetch(`${schedulerUrl}/pd/api/v1/region/id/1`, { headers: adminHeaders });
      const r = await res.json();
      return r.leader && r.peers.filter((p: { role: string }) => p.role === "Voter").length ===
          stores;
    }, { timeoutMs: 30_000, intervalMs: 100 });
  } catch (e) {
    await close();
    throw e;
  }
  return {
    scheduler,
    schedulerUrl,
    storeUrls: storePorts.map((p) => `http://127.0.0.1:${p}`),
    nodes,
    dir,
    secretFile,
    adminHeaders,
    close,
  };
}

/**
 * Waits until a store leads region 1, every store holds its data and knows its leader; returns
 * the leading store's index.
 */
export async function settledLeader(c: HttpCluster): Promise<number> {
  let leader = -1;
  await pollUntil("a store to lead region 1, and every store to hold its data", () => {
    leader = c.nodes.findIndex((n) => n.store.peers.get(1)?.isLeader());
    return leader >= 0 && c.nodes.every((n) => {
      const p = n.store.peers.get(1);
      return p?.storage.isInitialized() === true && p.leaderId() !== 0;
    });
  }, { timeoutMs: 10_000, intervalMs: 50 });
  return leader;
}
