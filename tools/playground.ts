/**
 * `deno task start`: a local playground cluster — one scheduler and N stores on 127.0.0.1, data
 * under `--data` — in the spirit of `tiup playground`. Each process's output is prefixed with
 * its name (`scheduler`, `store 4`: the store ID the scheduler gave it, once known). When every
 * store answers and region 1 has a leader it prints "cluster ready" with the URLs, the
 * dashboard, a curl example and the command that adds one more store. Ctrl-C stops them all.
 *
 * Secure like any cluster (docs/security.md): on first start it writes a cluster secret to
 * DIR/cluster.secret (mode 0600) and passes it to every process, and writes DIR/admin.header and
 * DIR/client.header for `curl -H @data/admin.header ...`. `mrkv ctl` finds ./data/cluster.secret
 * by itself; the dashboard's address carries the admin token in its fragment (never sent).
 *
 * @module
 */
import { generateSecret, readSecretFile, tokenFromSecret } from "../proto/security.ts";
import { versionLine } from "../telemetry/mod.ts";
import { intFlag, parseToolArgs } from "./_cli.ts";

const USAGE = `usage: deno task start [flags]      (deno run -A tools/playground.ts)

A scheduler on 127.0.0.1:2379 and N stores on 127.0.0.1:20161, 20162, ...

  --stores N          how many stores, 1 to 9 [3]
  --data DIR          where their data goes: DIR/scheduler, DIR/store-20161, ... [./data]
  --clean             delete DIR first (a fresh cluster)
  --log-level LEVEL   debug, info, warn or error [info]
  -h, --help          this help
  -V, --version       the version

The same data dir brings the same cluster back (with its secret, DIR/cluster.secret; the admin
and client credentials are in DIR/admin.header and DIR/client.header for curl -H @FILE).
Ctrl-C stops every process (exit 0).`;

const { values } = parseToolArgs({
  name: "playground",
  usage: USAGE,
  options: {
    stores: { type: "string", default: "3" },
    data: { type: "string", default: "./data" },
    clean: { type: "boolean", default: false },
    "log-level": { type: "string", default: "info" },
  },
});
const storeCount = intFlag("playground", "--stores", values.stores, 1, 9);
const dataDir = values.data;
const logLevel = values["log-level"];
if (values.clean) await Deno.remove(dataDir, { recursive: true }).catch(() => {});

await Deno.mkdir(dataDir, { recursive: true });
const secretFile = `${dataDir}/cluster.secret`;
try {
  await Deno.writeTextFile(secretFile, generateSecret() + "\n", { createNew: true, mode: 0o600 });
  console.log(`playground: wrote a new cluster secret to ${secretFile}`);
} catch (e) {
  if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
}
const secret = await readSecretFile(secretFile);
const adminToken = tokenFromSecret(secret, "admin");
for (const kind of ["admin", "client"] as const) {
  await Deno.writeTextFile(
    `${dataDir}/${kind}.header`,
    `Authorization: Bearer ${tokenFromSecret(secret, kind)}\n`,
    { mode: 0o600 },
  );
}

const main = new URL("../main.ts", import.meta.url).pathname;
const SCHEDULER_ADDR = "127.0.0.1:2379";
const SCHEDULER_URL = `http://${SCHEDULER_ADDR}`;
const FIRST_STORE_PORT = 20161;
/** How long to wait for the cluster before saying it is not ready yet. */
const READY_TIMEOUT_MS = 60_000;

interface Proc {
  /** What its output lines are prefixed with; a store's changes once its ID is known. */
  name: string;
  readonly child: Deno.ChildProcess;
}
const procs: Proc[] = [];

function start(name: string, args: string[]): Proc {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-kv",
      main,
      ...args,
      "--cluster-secret-file",
      secretFile,
      "--log-level",
      logLevel,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const proc: Proc = { name, child };
  procs.push(proc);
  for (const stream of [child.stdout, child.stderr]) {
    let pending = "";
    stream.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({
        write(chunk) {
          const lines = (pending + chunk).split("\n");
          pending = lines.pop()!;
          for (const line of lines) if (line) console.log(`[${proc.name}] ${line}`);
        },
      }),
    ).catch(() => {});
  }
  return proc;
}

/** Polls `url` until it answers 200 JSON; returns the body, or undefined at the deadline. */
async function waitJson(
  url: string,
  deadline: number,
  headers: Record<string, string> = {},
): Promise<Record<string, unknown> | undefined> {
  while (Date.now() < deadline && !stopping) {
    try {
      const res = await fetch(url, { headers, signal: AbortSignal.timeout(2_000) });
      const body = await res.json();
      if (res.ok) return body;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  return undefined;
}

let stopping = false;
function stopAll(): void {
  if (stopping) return;
  stopping = true;
  for (const { child } of procs) {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
  }
}
Deno.addSignalListener("SIGINT", stopAll);
Deno.addSignalListener("SIGTERM", stopAll);

console.log(`playground: ${versionLine("mrkv")}; data under ${dataDir}`);
start("scheduler", [
  "--role",
  "scheduler",
  "--addr",
  SCHEDULER_ADDR,
  "--data-dir",
  `${dataDir}/scheduler`,
]);
// Stores start once the scheduler answers, so they need not retry their way in.
await waitJson(`${SCHEDULER_URL}/status`, Date.now() + READY_TIMEOUT_MS);
const stores = Array.from({ length: storeCount }, (_, i) => {
  const port = FIRST_STORE_PORT + i;
  const dir = `${dataDir}/store-${port}`;
  const proc = start(`store :${port}`, [
    "--role",
    "store",
    "--addr",
    `127.0.0.1:${port}`,
    "--scheduler",
    SCHEDULER_URL,
    "--data-dir",
    dir,
  ]);
  return { port, dir, proc, id: undefined as number | undefined };
});

/** Waits for every store's ID and a leader for the first region, then prints the banner. */
async function announce(): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (const s of stores) {
    const status = await waitJson(`http://127.0.0.1:${s.port}/status`, deadline);
    if (typeof status?.id === "number") {
      s.id = status.id;
      s.proc.name = `store ${s.id}`;
    }
  }
  const led = async () => {
    const body = await waitJson(`${SCHEDULER_URL}/pd/api/v1/regions`, deadline, {
      authorization: `Bearer ${adminToken}`,
    });
    const regions = (body?.regions ?? []) as { leader: unknown }[];
    return regions.length > 0 && regions.every((r) => r.leader);
  };
  while (!stopping && Date.now() < deadline && !(await led())) {
    await new Promise((r) => setTimeout(r, 200));
  }
  if (stopping) return;
  const ready = stores.every((s) => s.id !== undefined) && Date.now() < deadline;
  const next = FIRST_STORE_PORT + storeCount;
  const lines = [
    "",
    ready
      ? `cluster ready: a scheduler and ${storeCount} store(s)`
      : `cluster not ready after ${READY_TIMEOUT_MS / 1000} s: see the output above`,
    `  scheduler   ${SCHEDULER_URL}    dashboard ${SCHEDULER_URL}/#token=${adminToken}`,
    ...stores.map((s) =>
      `  ${
        (s.id === undefined ? "store ?" : `store ${s.id}`).padEnd(10)
      }  http://127.0.0.1:${s.port}   data ${s.dir}`
    ),
    "try:",
    `  curl -X PUT --data-binary world http://127.0.0.1:${FIRST_STORE_PORT}/kv/hello`,
    `  curl http://127.0.0.1:${FIRST_STORE_PORT + storeCount - 1}/kv/hello`,
    `  curl -H @${dataDir}/admin.header ${SCHEDULER_URL}/pd/api/v1/stores`,
    "  deno task ctl cluster",
    "add a store:",
    `  deno run -A main.ts --role store --addr 127.0.0.1:${next} --scheduler ${SCHEDULER_URL} --data-dir ${dataDir}/store-${next} --cluster-secret-file ${secretFile}`,
    "Ctrl-C stops all.",
    "",
  ];
  console.log(lines.join("\n"));
}
void announce();

// If any process exits on its own, report it and bring the rest down.
const results = await Promise.all(procs.map(async (p) => {
  const status = await p.child.status;
  if (!stopping) {
    console.error(`playground: ${p.name} exited with code ${status.code}; stopping the others`);
    stopAll();
  }
  return status.code;
}));
Deno.exit(results.every((c) => c === 0) ? 0 : 1);
