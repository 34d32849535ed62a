/**
 * Server CPU per request of the HTTP listener (`proto/http_server.ts`), through its fetch
 * handler (`adapter`) and its direct route (`direct`, as a store's client KV requests go), beside
 * two references: `Deno.serve` and bare `node:http` (no web `Request`/`Response`). Each listener
 * runs in its own subprocess with the same trivial handler (read the request body as the routes
 * do, answer a few bytes); this process drives them with Deno's `fetch` and reads each server's CPU time (all
 * threads, nanoseconds, from `/proc/<pid>/task/<tid>/schedstat`) around every block of requests.
 *
 * The speed of this shared machine drifts by a factor of two within seconds, so runs far apart
 * cannot be compared: all servers run at once and take blocks of requests in turn (one block
 * sequential, then one from several clients at once), round after round, so that every listener
 * sees the same conditions. The table gives the median per-request CPU over rounds and the
 * range of the middle half.
 *
 * Three kinds of request, as the servers see them most: `post` (a 300-byte POST answered with 2
 * bytes, the case of docs/benchmarks.md), `write` (a 128-byte PUT answered 204, as a KV write
 * or a Raft batch is) and `read` (a GET answered with 128 bytes, as a KV read is).
 *
 *   deno run -A tools/listener_bench.ts [--request post|write|read] [--requests 400]
 *       [--rounds 20] [--concurrency 16] [--body-bytes N] [--response-bytes N] [--also DIR]...
 *
 * @module
 */
import http from "node:http";
import https from "node:https";
import { Hono } from "hono";
import { readBodyLimited } from "../proto/http_body.ts";
import type { TlsFiles } from "../proto/security.ts";
import { TestPki } from "../tests/test_pki.ts";
import { intFlag, parseToolArgs, usageExit } from "./_cli.ts";

const NAME = "listener_bench";
const { values } = parseToolArgs({
  name: NAME,
  usage: `usage: deno run -A tools/listener_bench.ts [flags]

Server CPU per request (µs, all threads of the server process) of proto/http_server.ts (its
fetch handler and its direct route), Deno.serve and bare node:http, each in a subprocess with a
trivial handler, driven by fetch from this process. Every round gives each server in turn a
block of --requests one at a time, then a block of --requests from --concurrency clients.

  --request KIND      post: POST of --body-bytes [300] answered 200 with --response-bytes [2];
                      write: PUT of --body-bytes [128] answered 204 without a body;
                      read: GET answered 200 with --response-bytes [128]   [post]
  --requests N        requests per block, 50 to 1000000 [400]
  --concurrency N     clients in the concurrent blocks, 1 to 1024 [16]
  --rounds N          rounds, 1 to 1000 [20]
  --body-bytes N      request body, 0 to 1048576 (see --request)
  --response-bytes N  response body, 0 to 16777216 (see --request)
  --tls               over TLS with client certificates (a throw-away CA; Deno.serve asks for
                      none, as it cannot)
  --also DIR          also measure DIR/proto/http_server.ts (another checkout), repeatable
  --only NAME         measure only the listener NAME, repeatable, in this order (the ratios
                      are to the first): deno-serve, node-http, adapter, direct (the
                      adapter's direct route, as a store's client KV requests take), or
                      a DIR of --also
  -h, --help          this help
  -V, --version       the version`,
  options: {
    requests: { type: "string", default: "400" },
    concurrency: { type: "string", default: "16" },
    rounds: { type: "string", default: "20" },
    request: { type: "string", default: "post" },
    "body-bytes": { type: "string" },
    "response-bytes": { type: "string" },
    also: { type: "string", multiple: true, default: [] },
    only: { type: "string", multiple: true, default: [] },
    tls: { type: "boolean", default: false },
    // Internal: run as the server subprocess for one listener (with certificates from a dir).
    serve: { type: "string" },
    "tls-dir": { type: "string" },
  },
});
const KINDS = {
  post: { method: "POST", status: 200, body: 300, response: 2 },
  write: { method: "PUT", status: 204, body: 128, response: 0 },
  read: { method: "GET", status: 200, body: 0, response: 128 },
} as const;
if (!Object.hasOwn(KINDS, values.request)) usageExit(NAME, `unknown --request "${values.request}"`);
const KIND = KINDS[values.request as keyof typeof KINDS];
const BODY_BYTES = values["body-bytes"] === undefined || KIND.method === "GET"
  ? KIND.body
  : intFlag(NAME, "--body-bytes", values["body-bytes"], 0, 1 << 20);
const RESPONSE_BYTES = values["response-bytes"] === undefined || KIND.status === 204
  ? KIND.response
  : intFlag(NAME, "--response-bytes", values["response-bytes"], 0, 1 << 24);

if (values.serve !== undefined) {
  await serve(values.serve);
} else {
  await drive();
}

/** The handler every listener runs: reads a body as the servers' routes do, answers KIND. */
function app(): Hono {
  const answer = new Uint8Array(RESPONSE_BYTES).fill(1);
  const hono = new Hono();
  hono.post("/x", async (c) => {
    await readBodyLimited(c.req.raw, 1 << 20);
    return c.body(answer, 200, { "content-type": "application/cbor" });
  });
  hono.put("/x", async (c) => {
    await readBodyLimited(c.req.raw, 1 << 20);
    return c.body(null, 204);
  });
  hono.get("/x", (c) => c.body(answer, 200, { "content-type": "application/octet-stream" }));
  return hono;
}

/** The CA and the server's certificate in `dir` (made by {@link makeCertificates}). */
async function certificates(dir: string): Promise<TlsFiles> {
  const read = (f: string) => Deno.readTextFile(`${dir}/${f}`);
  return {
    ca: await read("ca.crt"),
    cert: await read("server.crt"),
    key: await read("server.key"),
  };
}

/** A throw-away CA in `dir` with a server and a client certificate. */
async function makeCertificates(dir: string): Promise<{ server: TlsFiles; client: TlsFiles }> {
  const pki = await TestPki.create(dir);
  await pki.issue("server", { cn: "bench-server" });
  const files = await pki.issue("client", { cn: "bench-client" });
  const server = await certificates(dir);
  const client = {
    ca: server.ca,
    cert: await Deno.readTextFile(files.cert),
    key: await Deno.readTextFile(files.key),
  };
  return { server, client };
}

/** Starts one listener on a free port, prints the port, and runs until stdin closes. */
async function serve(which: string): Promise<void> {
  let port: number;
  const tls = values["tls-dir"] ? await certificates(values["tls-dir"]) : undefined;
  if (which === "deno-serve") {
    const hono = app();
    const s = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen() {},
      ...(tls ? { cert: tls.cert, key: tls.key } : {}),
    }, hono.fetch);
    port = s.addr.port;
  } else if (which === "node-http") {
    const answer = new Uint8Array(RESPONSE_BYTES).fill(1);
    const handle = (req: http.IncomingMessage, res: http.ServerResponse) => {
      req.on("data", () => {});
      req.on("end", () => {
        if (KIND.status === 204) {
          res.writeHead(204);
          res.end();
          return;
        }
        res.writeHead(200, {
          "content-type": "application/cbor",
          "content-length": String(answer.length),
        });
        res.end(answer);
      });
    };
    const s = tls
      ? https.createServer({ ...tls, requestCert: true, rejectUnauthorized: true }, handle)
      : http.createServer(handle);
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    port = (s.address() as { port: number }).port;
  } else if (which === "direct") {
    // The listener's direct route (raftstore/kv_direct.ts uses it): no Request, Hono or Response.
    const { serveHttp } = await import("../proto/http_server.ts");
    const answer = new Uint8Array(RESPONSE_BYTES).fill(1);
    const type = KIND.method === "GET" ? "application/octet-stream" : "application/cbor";
    const s = await serveHttp(() => new Response(null, { status: 404 }), {
      hostname: "127.0.0.1",
      port: 0,
      tls,
      direct: (head) =>
        head.url === "/x" && head.method === KIND.method
          ? () =>
            Promise.resolve(
              KIND.status === 204
                ? { status: 204, headers: [] }
                : { status: 200, headers: [["content-type", type]], body: answer },
            )
          : undefined,
    });
    port = s.port;
  } else {
    const dir = which === "adapter" ? new URL("..", import.meta.url).href : `file://${which}/`;
    const { serveHttp } = await import(new URL("proto/http_server.ts", dir).href);
    const hono = app();
    const s = await serveHttp(
      (req: Request, env: unknown) => hono.fetch(req, env),
      { hostname: "127.0.0.1", port: 0, tls },
    );
    port = s.port;
  }
  console.log(port);
  // Until the parent closes stdin.
  for await (const _ of Deno.stdin.readable) { /* nothing */ }
  Deno.exit(0);
}

/** CPU time of process `pid` so far, all its threads, in ns (the scheduler's own accounting). */
function cpuNanos(pid: number): number {
  let sum = 0;
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      sum += Number(
        Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/schedstat`).split(" ")[0],
      );
    } catch {
      // The thread ended between listing and reading.
    }
  }
  return sum;
}

/** One listener's server subprocess and a request sender for it. */
interface Server {
  readonly listener: string;
  readonly pid: number;
  one(): Promise<void>;
  stop(): Promise<void>;
}

async function start(
  listener: string,
  body: Uint8Array<ArrayBuffer> | null,
  tls: { dir: string; client: TlsFiles } | undefined,
): Promise<Server> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--serve",
      listener,
      "--request",
      values.request,
      "--response-bytes",
      String(RESPONSE_BYTES),
      ...(tls ? ["--tls-dir", tls.dir] : []),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the ${listener} server exited before listening`);
    text += value;
  }
  reader.releaseLock();
  const url = `${tls ? "https" : "http"}://127.0.0.1:${Number(text.trim())}/x`;
  // A pool of its own per server, so that no server's connections wait behind another's.
  const client = Deno.createHttpClient(
    tls ? { caCerts: [tls.client.ca], cert: tls.client.cert, key: tls.client.key } : {},
  );
  return {
    listener,
    pid: child.pid,
    one: async () => {
      const res = await fetch(url, { method: KIND.method, body, client });
      const got = await res.bytes();
      if (res.status !== KIND.status || got.length !== RESPONSE_BYTES) {
        throw new Error(`${listener} answered ${res.status} with ${got.length} bytes`);
      }
    },
    stop: async () => {
      client.close();
      await writer.close().catch(() => {});
      await child.status;
    },
  };
}

/** Server CPU per request, in µs, over `requests` requests from `clients` clients at once. */
async function block(server: Server, requests: number, clients: number): Promise<number> {
  let left = requests;
  const before = cpuNanos(server.pid);
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (left-- > 0) await server.one();
    }),
  );
  return (cpuNanos(server.pid) - before) / requests / 1000;
}

async function drive(): Promise<void> {
  if (Deno.build.os !== "linux") usageExit(NAME, "reads /proc, so it runs on Linux only");
  const requests = intFlag(NAME, "--requests", values.requests, 50, 1_000_000);
  const concurrency = intFlag(NAME, "--concurrency", values.concurrency, 1, 1024);
  const rounds = intFlag(NAME, "--rounds", values.rounds, 1, 1000);
  let listeners = ["deno-serve", "node-http", "adapter", "direct", ...values.also];
  // In the order given: ratios are to the first.
  if (values.only.length > 0) listeners = values.only.filter((l) => listeners.includes(l));
  if (listeners.length === 0) usageExit(NAME, "--only matched no listener");
  const body = KIND.method === "GET" ? null : new Uint8Array(BODY_BYTES).fill(7);
  console.log(
    `${rounds} rounds of ${requests} requests per block${values.tls ? " over TLS" : ""}: ` +
      `${KIND.method} of ${BODY_BYTES} bytes, ` +
      `${KIND.status} with ${RESPONSE_BYTES} bytes; concurrency 1 and ${concurrency}; ` +
      `load average ${loadAverage()}`,
  );
  const servers: Server[] = [];
  const dir = values.tls ? await Deno.makeTempDir({ prefix: "mrkv-listener-bench-" }) : "";
  try {
    const tls = values.tls ? { dir, client: (await makeCertificates(dir)).client } : undefined;
    for (const listener of listeners) servers.push(await start(listener, body, tls));
    // Warm up the JIT and the connection pools first.
    for (const server of servers) {
      await block(server, 1000, 1);
      await block(server, 1000, concurrency);
    }
    const sequential = new Map<string, number[]>(listeners.map((l) => [l, []]));
    const concurrent = new Map<string, number[]>(listeners.map((l) => [l, []]));
    for (let round = 0; round < rounds; round++) {
      // Rotate the order, so that no listener always follows the same one.
      for (let i = 0; i < servers.length; i++) {
        const server = servers[(round + i) % servers.length]!;
        sequential.get(server.listener)!.push(await block(server, requests, 1));
        concurrent.get(server.listener)!.push(await block(server, requests, concurrency));
      }
    }
    console.log(
      `\nServer CPU per request, µs, and its ratio to ${listeners[0]} in the same round: ` +
        `median (middle half of ${rounds} rounds)\n`,
    );
    // Per-round ratios to the first listener cancel most of the machine's drift.
    const base = listeners[0]!;
    const ratio = (m: Map<string, number[]>, l: string) =>
      m.get(l)!.map((v, i) => v / m.get(base)![i]!);
    const rows = [
      ["listener", "sequential", `÷ ${base}`, `concurrency ${concurrency}`, `÷ ${base}`],
      ...listeners.map((l) => [
        l,
        spread(sequential.get(l)!, 0),
        spread(ratio(sequential, l), 2),
        spread(concurrent.get(l)!, 0),
        spread(ratio(concurrent, l), 2),
      ]),
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    const line = (r: string[]) =>
      `| ${r.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join(" | ")} |`;
    console.log(line(rows[0]!));
    console.log(
      `| ${widths.map((w, i) => "-".repeat(w - (i ? 1 : 0)) + (i ? ":" : "")).join(" | ")} |`,
    );
    for (const r of rows.slice(1)) console.log(line(r));
    console.log(`\nload average after: ${loadAverage()}`);
  } finally {
    for (const server of servers) await server.stop();
    if (dir) await Deno.remove(dir, { recursive: true });
  }
}

/** "median (p25–p75)" of `values`, with `digits` decimals. */
function spread(values: number[], digits: number): string {
  const v = [...values].sort((a, b) => a - b);
  const at = (q: number) => v[Math.min(v.length - 1, Math.floor(q * v.length))]!.toFixed(digits);
  return `${at(0.5)} (${at(0.25)}–${at(0.75)})`;
}

function loadAverage(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}
