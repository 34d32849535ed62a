/**
 * `mrkv ctl`: the command-line client for people and scripts, in the spirit of pd-ctl and
 * etcdctl. It speaks only the public HTTP APIs (the scheduler's admin API, a store's KV API),
 * prints aligned tables (or JSON with `--json`) and exits with a code scripts can test.
 *
 * Reached as `deno task ctl …` and as `mrkv ctl …` (`main.ts ctl …`, so the compiled binary has
 * it). May import `proto/`, `config/` and `telemetry/`; nothing imports it but `main.ts`.
 *
 * @module
 */
import { versionLine } from "../telemetry/mod.ts";
import { CtlClient, CtlError, type Fetch, NOT_FOUND_CODES } from "./client.ts";
import { type CredentialOptions, loadCredentials } from "./credentials.ts";
import { COMMANDS, type Io, type Options } from "./commands.ts";

/** Exit codes. */
export const EXIT = {
  ok: 0,
  /** The cluster refused or failed the request, or could not be reached. */
  failed: 1,
  /** Bad command line. */
  usage: 2,
  /** The key, region, store or operator asked for does not exist. */
  notFound: 3,
} as const;

/** Where the ctl writes and how it reaches the cluster (tests inject all of it). */
export interface CtlEnv {
  readonly stdout: (bytes: Uint8Array) => void;
  readonly stderr: (text: string) => void;
  readonly env: (name: string) => string | undefined;
  readonly fetch?: Fetch;
}

const DEFAULT_SCHEDULER = "http://127.0.0.1:2379";

/** The text of `mrkv ctl --help`. */
export function ctlUsage(): string {
  return [
    "usage: mrkv ctl [flags] COMMAND [args]      (also: deno task ctl …)",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.usage.padEnd(38)} ${c.help}`),
    "",
    "Operators (operator add NAME REGION_ID ...):",
    "  transfer-leader REGION_ID STORE_ID     move the region's leadership to STORE_ID",
    "  add-peer REGION_ID STORE_ID            add a replica on STORE_ID (learner, then voter)",
    "  remove-peer REGION_ID STORE_ID         remove the replica on STORE_ID",
    "  transfer-region REGION_ID S1,S2,S3     put the region's replicas on exactly these stores",
    "  split-region REGION_ID [KEY...]        split at the keys (none: at the size midpoint)",
    "  merge-region REGION_ID TARGET_ID       merge the region into the adjacent TARGET_ID",
    "",
    "Flags (anywhere on the line):",
    "  --scheduler URL, -u URL                the scheduler [$MRKV_SCHEDULER, http://127.0.0.1:2379]",
    "  --store URL                            a store for kv commands [the first Up store]",
    "  --json                                 print JSON for scripts instead of tables",
    "  --hex                                  KEY arguments are hex (binary keys)",
    "  --limit N                              rows for region list, kv scan [100]",
    "  --all                                  operator list: ended operators too",
    "  --cluster-secret-file FILE             the cluster secret: the ctl sends the admin token",
    "                                         [$MRKV_CLUSTER_SECRET_FILE, else ./data/cluster.secret if any]",
    "  --token-file FILE                      an admin token, or a header file (data/admin.header)",
    "                                         [$MRKV_TOKEN_FILE]",
    "  --cacert FILE --cert FILE --key FILE   TLS: the cluster CA and this client's certificate",
    "  -h, --help                             this help (mrkv ctl store --help: one group)",
    "  -V, --version                          the version",
    "",
    "Exit codes: 0 ok, 1 the cluster refused or could not be reached, 2 bad usage,",
    "3 not found (key, region, store or operator).",
  ].join("\n");
}

class UsageError extends Error {}

/** Splits flags from positional arguments. */
function parseArgs(args: readonly string[], env: CtlEnv["env"]): {
  words: string[];
  opts: Options;
  scheduler: string;
  store?: string;
  help: boolean;
  version: boolean;
  credentials: CredentialOptions;
} {
  const words: string[] = [];
  let scheduler = env("MRKV_SCHEDULER") ?? DEFAULT_SCHEDULER;
  let store: string | undefined;
  let json = false, hex = false, all = false, help = false, version = false;
  let limit = 100;
  const cred: Record<string, string | undefined> = {
    clusterSecretFile: env("MRKV_CLUSTER_SECRET_FILE"),
    tokenFile: env("MRKV_TOKEN_FILE"),
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (name: string) => {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${name} needs a value`);
      return v;
    };
    const [flag, inline] = a.startsWith("--") && a.includes("=")
      ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]
      : [a, undefined];
    const take = (name: string) => inline ?? value(name);
    switch (flag) {
      case "--scheduler":
      case "-u":
        scheduler = take(flag);
        break;
      case "--store":
        store = take(flag);
        break;
      case "--cluster-secret-file":
        cred.clusterSecretFile = take(flag);
        cred.tokenFile = undefined;
        break;
      case "--token-file":
        cred.tokenFile = take(flag);
        break;
      case "--cacert":
      case "--cert":
      case "--key":
        cred[flag.slice(2)] = take(flag);
        break;
      case "--json":
        json = true;
        break;
      case "--hex":
        hex = true;
        break;
      case "--all":
        all = true;
        break;
      case "--limit": {
        const v = take(flag);
        limit = Number(v);
        if (!/^\d+$/.test(v) || limit < 1 || limit > 10_000) {
          throw new UsageError(`--limit must be a whole number from 1 to 10000, got "${v}"`);
        }
        break;
      }
      case "-h":
      case "--help":
        help = true;
        break;
      case "-V":
      case "--version":
        version = true;
        break;
      default:
        if (a.startsWith("-") && a !== "-") throw new UsageError(`unknown flag ${a} (see --help)`);
        words.push(a);
    }
  }
  for (const [name, url] of [["--scheduler", scheduler], ["--store", store]] as const) {
    if (url !== undefined && !/^https?:\/\/[^/]+/.test(url)) {
      throw new UsageError(`${name} must be a URL such as http://127.0.0.1:2379, got "${url}"`);
    }
  }
  return {
    words,
    opts: { json, hex, all, limit },
    scheduler,
    store,
    help,
    version,
    credentials: cred as CredentialOptions,
  };
}

/** Runs the ctl; returns the exit code. */
export async function runCtl(args: readonly string[], env: CtlEnv): Promise<number> {
  const enc = new TextEncoder();
  const io: Io = {
    out: (text) => env.stdout(enc.encode(text.endsWith("\n") ? text : text + "\n")),
    raw: (bytes) => env.stdout(bytes),
  };
  let parsed;
  try {
    parsed = parseArgs(args, env.env);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    env.stderr(`mrkv ctl: ${e.message}\n`);
    return EXIT.usage;
  }
  if (parsed.version) {
    io.out(versionLine("mrkv ctl"));
    return EXIT.ok;
  }
  const words = parsed.words;
  const command = COMMANDS.find((c) => c.words.every((w, i) => words[i] === w));
  if (parsed.help || words.length === 0) {
    const help = words.length === 0 ? ctlUsage() : commandHelp(words[0]!);
    if (words.length === 0 && !parsed.help) {
      env.stderr(`${help}\n`);
      return EXIT.usage;
    }
    io.out(help);
    return EXIT.ok;
  }
  if (!command) {
    const near = COMMANDS.filter((c) => c.words[0] === words[0]);
    env.stderr(
      near.length > 0
        ? `mrkv ctl: unknown command "${words.join(" ")}"; try:\n${
          near.map((c) => `  mrkv ctl ${c.usage}`).join("\n")
        }\n`
        : `mrkv ctl: unknown command "${words[0]}" (see mrkv ctl --help)\n`,
    );
    return EXIT.usage;
  }
  const rest = words.slice(command.words.length);
  let httpClient: Deno.HttpClient | undefined;
  try {
    const credentials = await loadCredentials(parsed.credentials);
    httpClient = credentials.httpClient;
    const client = new CtlClient({
      scheduler: parsed.scheduler,
      store: parsed.store,
      fetch: env.fetch,
      headers: credentials.headers,
      httpClient,
    });
    await command.run({ client, args: rest, opts: parsed.opts, io });
    return EXIT.ok;
  } catch (e) {
    if (e instanceof UsageError || (e instanceof CtlError && e.code === "Usage")) {
      env.stderr(`mrkv ctl: ${e.message}\nusage: mrkv ctl ${command.usage}\n`);
      return EXIT.usage;
    }
    if (e instanceof CtlError) {
      const code = e.code === "Unreachable" ? "" : `${e.code}: `;
      env.stderr(`mrkv ctl: ${code}${e.message}${e.hint ? `\n  hint: ${e.hint}` : ""}\n`);
      return NOT_FOUND_CODES.has(e.code) ? EXIT.notFound : EXIT.failed;
    }
    throw e;
  } finally {
    httpClient?.close();
  }
}

/** Help for every command starting with `word`. */
function commandHelp(word: string): string {
  const list = COMMANDS.filter((c) => c.words[0] === word);
  if (list.length === 0) return ctlUsage();
  return list.map((c) => `usage: mrkv ctl ${c.usage}\n  ${c.help}`).join("\n");
}

/** The real process's environment. */
export function processEnv(): CtlEnv {
  return {
    stdout: (b) => {
      let off = 0;
      while (off < b.length) off += Deno.stdout.writeSync(b.subarray(off));
    },
    stderr: (t) => {
      const b = new TextEncoder().encode(t);
      let off = 0;
      while (off < b.length) off += Deno.stderr.writeSync(b.subarray(off));
    },
    env: (n) => Deno.env.get(n),
  };
}

if (import.meta.main) {
  Deno.exit(await runCtl(Deno.args, processEnv()));
}
