/**
 * `deno task start`: a local playground cluster — one scheduler and three stores on 127.0.0.1,
 * data under ./data, every process's output prefixed with its name. Ctrl-C stops them all.
 *
 * Secure like any cluster (docs/security.md): on first start it writes a cluster secret to
 * DIR/cluster.secret (mode 0600) and passes it to every process, and writes DIR/admin.header and
 * DIR/client.header for `curl -H @data/admin.header ...`.
 *
 * Flags: --stores N (default 3), --data DIR (default ./data), --clean (wipe DIR first).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { generateSecret, readSecretFile, tokenFromSecret } from "../proto/security.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    stores: { type: "string", default: "3" },
    data: { type: "string", default: "./data" },
    clean: { type: "boolean", default: false },
  },
  strict: true,
});
const storeCount = Number(values.stores);
if (!Number.isSafeInteger(storeCount) || storeCount < 1 || storeCount > 9) {
  console.error("playground: --stores must be a whole number from 1 to 9");
  Deno.exit(2);
}
const dataDir = values.data;
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
for (const kind of ["admin", "client"] as const) {
  await Deno.writeTextFile(
    `${dataDir}/${kind}.header`,
    `Authorization: Bearer ${tokenFromSecret(secret, kind)}\n`,
    { mode: 0o600 },
  );
}

const main = new URL("../main.ts", import.meta.url).pathname;
const schedulerAddr = "127.0.0.1:2379";
const procs: { name: string; child: Deno.ChildProcess }[] = [];

function start(name: string, args: string[]): void {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", main, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  procs.push({ name, child });
  for (const stream of [child.stdout, child.stderr]) {
    stream.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({
        write(chunk) {
          for (const line of chunk.split("\n")) if (line) console.log(`[${name}] ${line}`);
        },
      }),
    ).catch(() => {});
  }
}

start("scheduler", [
  "--role",
  "scheduler",
  "--addr",
  schedulerAddr,
  "--data-dir",
  `${dataDir}/scheduler`,
  "--cluster-secret-file",
  secretFile,
]);
for (let i = 1; i <= storeCount; i++) {
  start(`store${i}`, [
    "--role",
    "store",
    "--addr",
    `127.0.0.1:${20160 + i}`,
    "--scheduler",
    `http://${schedulerAddr}`,
    "--data-dir",
    `${dataDir}/store${i}`,
    "--cluster-secret-file",
    secretFile,
  ]);
}
console.log(
  `playground: scheduler on http://${schedulerAddr}, stores on ` +
    Array.from({ length: storeCount }, (_, i) => `http://127.0.0.1:${20161 + i}`).join(", ") +
    `; admin API: curl -H @${dataDir}/admin.header http://${schedulerAddr}/pd/api/v1/regions` +
    "; Ctrl-C stops all",
);

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

// If any process exits on its own, report it and bring the rest down.
const results = await Promise.all(procs.map(async ({ name, child }) => {
  const status = await child.status;
  if (!stopping) {
    console.error(`playground: ${name} exited with code ${status.code}; stopping the others`);
    stopAll();
  }
  return status.code;
}));
Deno.exit(results.every((c) => c === 0) ? 0 : 1);
