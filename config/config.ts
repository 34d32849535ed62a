/**
 * Command-line and config-file parsing for every role.
 *
 * One table ({@link CONFIG_KEYS}) names every key, the roles that accept it, how its value is
 * parsed and its default. Flags (`--kebab-case`) and the JSON file given by `--config` use the
 * same names; flags win over the file, the file wins over defaults. Anything malformed throws a
 * {@link ConfigError} whose message names the offending flag or key, so `main.ts` can print one
 * line and exit 2.
 *
 * @module
 */

/** A role this executable can run as. */
export type Role = "scheduler" | "store";

/** Thrown for any bad flag, config key or value; `flag` is what the user must fix. */
export class ConfigError extends Error {
  constructor(readonly flag: string, message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** How a key's value is parsed. */
export type Kind =
  | "string"
  | "addr"
  | "url"
  | "size"
  | "duration"
  | "int"
  | "level"
  | "bool"
  | "kvAuth";

/** How a key is declared: its kind, roles, default and help line. */
export interface KeySpec {
  readonly kind: Kind;
  readonly roles: readonly Role[];
  readonly default?: string | number;
  /** Smallest accepted value for numeric kinds (after unit conversion). */
  readonly min?: number;
  readonly help: string;
}

const BOTH: readonly Role[] = ["scheduler", "store"];

/** Every key mrkv accepts. The order here is the order of `--help`. */
export const CONFIG_KEYS = {
  "addr": {
    kind: "addr",
    roles: BOTH,
    help: "HOST:PORT to listen on (scheduler 127.0.0.1:2379, store 127.0.0.1:20160)",
  },
  "advertise-addr": {
    kind: "addr",
    roles: BOTH,
    help: "HOST:PORT others dial (defaults to --addr)",
  },
  "data-dir": {
    kind: "string",
    roles: BOTH,
    help: "directory for this process's data (./data/scheduler or ./data/store)",
  },
  "log-level": {
    kind: "level",
    roles: BOTH,
    default: "info",
    help: "debug | info | warn | error",
  },
  "scheduler": { kind: "url", roles: ["store"], help: "scheduler URL, e.g. http://127.0.0.1:2379" },
  "cluster-secret-file": {
    kind: "string",
    roles: BOTH,
    help: "file holding the cluster secret (secret mode, docs/security.md)",
  },
  "accept-cluster-secret-file": {
    kind: "string",
    roles: BOTH,
    help: "file holding a second secret whose credentials are also accepted (secret rotation)",
  },
  "cacert": { kind: "string", roles: BOTH, help: "cluster CA certificate, PEM (TLS mode)" },
  "cert": { kind: "string", roles: BOTH, help: "this process's certificate, PEM (TLS mode)" },
  "key": { kind: "string", roles: BOTH, help: "this process's private key, PEM (TLS mode)" },
  "cert-allowed-cn": {
    kind: "string",
    roles: BOTH,
    help: "comma-separated client-certificate CNs accepted (TLS mode; default any)",
  },
  "kv-auth": {
    kind: "kvAuth",
    roles: ["store"],
    default: "auto",
    help: "KV API credential: required | open | auto (required unless --addr is loopback)",
  },
  "insecure": {
    kind: "bool",
    roles: BOTH,
    help: "allow a non-loopback --addr without a secret or TLS (no authentication at all)",
  },
  "raft-tick-ms": {
    kind: "duration",
    roles: ["store"],
    default: 100,
    min: 1,
    help: "Raft base tick",
  },
  "heartbeat-ticks": {
    kind: "int",
    roles: ["store"],
    default: 2,
    min: 1,
    help: "leader heartbeat interval, in ticks",
  },
  "election-ticks": {
    kind: "int",
    roles: ["store"],
    default: 10,
    min: 2,
    help: "election timeout, in ticks",
  },
  "region-max-size": {
    kind: "size",
    roles: ["store"],
    default: 96 * 1024 * 1024,
    min: 1,
    help: "split a region once it is larger than this",
  },
  "region-split-size": {
    kind: "size",
    roles: ["store"],
    default: 64 * 1024 * 1024,
    min: 1,
    help: "split key is chosen near this point",
  },
  "split-check-ms": {
    kind: "duration",
    roles: ["store"],
    default: 10_000,
    min: 1,
    help: "how often leaders check region size",
  },
  "load-split": {
    kind: "bool",
    roles: ["store"],
    default: "true",
    help: "split a region that stays busy at the key that halves its load, whatever its size",
  },
  "split-qps-threshold": {
    kind: "int",
    roles: ["store"],
    default: 1000,
    min: 0,
    help: "requests per second that make a region hot (0: not by requests)",
  },
  "split-byte-threshold": {
    kind: "size",
    roles: ["store"],
    default: 8 * 1024 * 1024,
    min: 0,
    help: "bytes read and written per second that make a region hot (0: not by bytes)",
  },
  "split-detect-window": {
    kind: "duration",
    roles: ["store"],
    default: 10_000,
    min: 100,
    help: "how long a region must stay hot before it splits by load",
  },
  "raft-log-gc-count-limit": {
    kind: "int",
    roles: ["store"],
    default: 10_000,
    min: 1,
    help: "compact the Raft log past this many entries",
  },
  "hibernate-regions": {
    kind: "bool",
    roles: ["store"],
    default: "true",
    help: "idle regions stop ticking and heartbeating until something needs them",
  },
  "follower-read": {
    kind: "bool",
    roles: ["store"],
    default: "true",
    help:
      "a GET or scan reaching a follower of its region is served there, with a read index from its leader",
  },
  "scheduler-heartbeat-ms": {
    kind: "duration",
    roles: ["store"],
    default: 1_000,
    min: 1,
    help: "store heartbeat interval",
  },
  "max-peer-down-duration": {
    kind: "duration",
    roles: ["store"],
    default: 10_000,
    min: 1,
    help: "a leader reports a peer down once it has not heard from it this long",
  },
  "max-replicas": {
    kind: "int",
    roles: ["scheduler"],
    default: 3,
    min: 1,
    help: "peers per region",
  },
  "max-store-down-time": {
    kind: "duration",
    roles: ["scheduler"],
    default: 30 * 60_000,
    min: 1,
    help: "a store silent this long is Down and its replicas are rebuilt",
  },
  "store-disconnect-time": {
    kind: "duration",
    roles: ["scheduler"],
    default: 3_000,
    min: 1,
    help: "a store silent this long is Disconnected: never an operator target",
  },
  "schedule-interval-ms": {
    kind: "duration",
    roles: ["scheduler"],
    default: 100,
    min: 1,
    help: "how often checkers and schedulers run",
  },
} as const satisfies Record<string, KeySpec>;

/** A config key's kebab-case name. */
export type ConfigKey = keyof typeof CONFIG_KEYS;

/** Parsed configuration: every key in camelCase, numbers already in bytes or milliseconds. */
export interface Config {
  role: Role;
  addr: string;
  advertiseAddr: string;
  dataDir: string;
  logLevel: "debug" | "info" | "warn" | "error";
  /** Store only: the scheduler's base URL (no trailing slash). */
  scheduler: string;
  /** Security (docs/security.md): a secret file and/or TLS files; absent means none. */
  clusterSecretFile?: string;
  /** A second secret whose tokens are accepted but never sent (rolling secret rotation). */
  acceptClusterSecretFile?: string;
  cacert?: string;
  cert?: string;
  key?: string;
  certAllowedCn?: string;
  /** Store only: whether the KV API needs a client credential. */
  kvAuth: "auto" | "required" | "open";
  insecure?: boolean;
  raftTickMs: number;
  heartbeatTicks: number;
  electionTicks: number;
  regionMaxSize: number;
  regionSplitSize: number;
  splitCheckMs: number;
  loadSplit: boolean;
  splitQpsThreshold: number;
  splitByteThreshold: number;
  splitDetectWindow: number;
  raftLogGcCountLimit: number;
  hibernateRegions: boolean;
  followerRead: boolean;
  schedulerHeartbeatMs: number;
  maxPeerDownDuration: number;
  maxReplicas: number;
  maxStoreDownTime: number;
  storeDisconnectTime: number;
  scheduleIntervalMs: number;
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  "b": 1,
  "kib": 1024,
  "kb": 1024,
  "mib": 1024 ** 2,
  "mb": 1024 ** 2,
  "gib": 1024 ** 3,
  "gb": 1024 ** 3,
};
const DURATION_UNITS: Record<string, number> = { "": 1, "ms": 1, "s": 1000, "m": 60_000 };

/** A byte count in the largest unit that divides it exactly: `96MiB`, `512KiB`, `1000`. */
export function formatSize(bytes: number): string {
  for (const [unit, n] of [["GiB", 1024 ** 3], ["MiB", 1024 ** 2], ["KiB", 1024]] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return String(bytes);
}

/** Milliseconds in the largest unit that divides them exactly: `30m`, `10s`, `100ms`. */
export function formatDuration(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** A key's default as `--help` and the docs show it (units for sizes and durations). */
export function formatDefault(spec: KeySpec): string | undefined {
  if (spec.default === undefined) return undefined;
  if (spec.kind === "size") return formatSize(Number(spec.default));
  if (spec.kind === "duration") return formatDuration(Number(spec.default));
  return String(spec.default);
}

/** Parses `64MiB`, `512KiB`, `1GiB` or a plain byte count. */
export function parseSize(text: string): number {
  return parseWithUnit(text, SIZE_UNITS, "a size such as 64MiB, 512KiB or 1048576");
}

/** Parses `100ms`, `10s`, `30m` or a plain number of milliseconds. */
export function parseDuration(text: string): number {
  return parseWithUnit(text, DURATION_UNITS, "a duration such as 100ms, 10s or 30m");
}

function parseWithUnit(text: string, units: Record<string, number>, expected: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? units[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new RangeError(`"${text}" is not ${expected}`);
  const value = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(value)) throw new RangeError(`"${text}" is too large`);
  return value;
}

function camel(key: string): string {
  return key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function parseValue(key: ConfigKey, raw: unknown, flag: string): string | number {
  const spec: KeySpec = CONFIG_KEYS[key];
  const bad = (why: string) => new ConfigError(flag, `invalid value for ${flag}: ${why}`);
  if (typeof raw !== "string" && typeof raw !== "number" && typeof raw !== "boolean") {
    throw bad(`expected a string or number, got ${raw === null ? "null" : typeof raw}`);
  }
  const text = String(raw);
  switch (spec.kind) {
    case "string":
      if (text === "") throw bad("must not be empty");
      return text;
    case "bool":
      if (raw === true || text === "true") return "true";
      if (raw === false || text === "false") return "false";
      throw bad(`"${text}" is not true or false`);
    case "kvAuth":
      if (!["auto", "required", "open"].includes(text)) {
        throw bad(`"${text}" is not one of auto, required, open`);
      }
      return text;
    case "level":
      if (!["debug", "info", "warn", "error"].includes(text)) {
        throw bad(`"${text}" is not one of debug, info, warn, error`);
      }
      return text;
    case "addr": {
      const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text);
      if (!m || Number(m[2]) > 65535) throw bad(`"${text}" is not HOST:PORT`);
      return text;
    }
    case "url": {
      let url: URL;
      try {
        url = new URL(text);
      } catch {
        throw bad(`"${text}" is not a URL such as http://127.0.0.1:2379`);
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        throw bad(`"${text}" must be an http:// or https:// URL`);
      }
      return text.replace(/\/+$/, "");
    }
    case "int":
    case "size":
    case "duration": {
      let n: number;
      try {
        n = spec.kind === "size"
          ? parseSize(text)
          : spec.kind === "duration"
          ? parseDuration(text)
          : /^\s*\d+\s*$/.test(text)
          ? Number(text)
          : NaN;
      } catch (e) {
        throw bad((e as Error).message);
      }
      if (!Number.isSafeInteger(n)) throw bad(`"${text}" is not a whole number`);
      if (spec.min !== undefined && n < spec.min) throw bad(`must be at least ${spec.min}`);
      return n;
    }
  }
}

/**
 * What {@link parseCommandLine} found: a request to print something and exit 0 (`--help`, or
 * `--version` with `version` set), or a full config.
 */
export type CommandLine = { help: true; version?: boolean } | { help: false; config: Config };

/**
 * Parses `args` (as in `Deno.args`) and, if `--config` names a file, that file's JSON object.
 * `readFile` is injected so tests need no disk.
 */
export function parseCommandLine(
  args: readonly string[],
  readFile: (path: string) => string = (p) => Deno.readTextFileSync(p),
): CommandLine {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--help" || arg === "-h") return { help: true };
    if (arg === "--version" || arg === "-V") return { help: true, version: true };
    if (!arg.startsWith("--") || arg === "--") {
      throw new ConfigError(arg, `unexpected argument "${arg}" (flags look like --name value)`);
    }
    const eq = arg.indexOf("=");
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    let value: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    if (name !== "role" && name !== "config" && !(name in CONFIG_KEYS)) {
      throw new ConfigError(`--${name}`, `unknown flag --${name} (see --help)`);
    }
    if (value === undefined && isBoolFlag(name)) {
      // `--flag`, `--flag=false` and `--flag false` all work: nothing else takes a bare word.
      const next = args[i + 1];
      if (next === "true" || next === "false") {
        value = next;
        i++;
      } else value = "true";
    }
    if (value === undefined) {
      value = args[i + 1];
      if (value === undefined || value.startsWith("--")) {
        throw new ConfigError(`--${name}`, `flag --${name} needs a value`);
      }
      i++;
    }
    if (flags.has(name)) throw new ConfigError(`--${name}`, `flag --${name} given twice`);
    flags.set(name, value);
  }

  const configPath = flags.get("config");
  const file = configPath === undefined ? undefined : readConfigFile(configPath, readFile);
  // The role may come from the file too; the flag wins, like every other key.
  const fileRole = file?.role;
  const role = flags.get("role") ?? fileRole;
  const roleWhere = flags.has("role") ? "--role" : `"role" in ${configPath}`;
  if (role === undefined) {
    throw new ConfigError("--role", "missing flag --role (scheduler or store)");
  }
  if (role !== "scheduler" && role !== "store") {
    throw new ConfigError(
      flags.has("role") ? "--role" : "role",
      `invalid value for ${roleWhere}: ${JSON.stringify(role)} is not scheduler or store`,
    );
  }

  const values = new Map<ConfigKey, string | number>();
  if (file !== undefined && configPath !== undefined) {
    for (const [key, raw] of Object.entries(file)) {
      if (key === "role") continue;
      if (!(key in CONFIG_KEYS)) {
        throw new ConfigError(key, `unknown key "${key}" in --config ${configPath}`);
      }
      checkRole(key as ConfigKey, role, `"${key}" in ${configPath}`);
      values.set(key as ConfigKey, parseValue(key as ConfigKey, raw, `"${key}" in ${configPath}`));
    }
  }
  for (const [name, raw] of flags) {
    if (name === "role" || name === "config") continue;
    checkRole(name as ConfigKey, role, `--${name}`);
    values.set(name as ConfigKey, parseValue(name as ConfigKey, raw, `--${name}`));
  }

  const out: Record<string, unknown> = { role };
  for (const [key, spec] of Object.entries(CONFIG_KEYS) as [ConfigKey, KeySpec][]) {
    const v = values.get(key) ?? spec.default;
    if (v !== undefined) out[camel(key)] = CONFIG_KEYS[key].kind === "bool" ? v === "true" : v;
  }
  if (out.addr === undefined) {
    out.addr = role === "scheduler" ? "127.0.0.1:2379" : "127.0.0.1:20160";
  }
  out.advertiseAddr ??= out.addr;
  out.dataDir ??= role === "scheduler" ? "./data/scheduler" : "./data/store";
  if (role === "store" && out.scheduler === undefined) {
    throw new ConfigError("--scheduler", "missing flag --scheduler (the scheduler's URL)");
  }
  out.scheduler ??= "";
  const config = out as unknown as Config;
  if (config.regionSplitSize > config.regionMaxSize) {
    throw new ConfigError(
      "--region-split-size",
      `invalid value for --region-split-size: must not exceed --region-max-size`,
    );
  }
  if (config.heartbeatTicks >= config.electionTicks) {
    throw new ConfigError(
      "--heartbeat-ticks",
      `invalid value for --heartbeat-ticks: must be less than --election-ticks`,
    );
  }
  if (config.loadSplit && config.splitQpsThreshold === 0 && config.splitByteThreshold === 0) {
    throw new ConfigError(
      "--split-qps-threshold",
      "--split-qps-threshold and --split-byte-threshold are both 0: give one, or --load-split=false",
    );
  }
  checkSecurity(config);
  return { help: false, config };
}

/** Reads and parses a `--config` file: a JSON object. */
function readConfigFile(
  path: string,
  readFile: (path: string) => string,
): Record<string, unknown> {
  let file: unknown;
  try {
    file = JSON.parse(readFile(path));
  } catch (e) {
    throw new ConfigError("--config", `cannot read --config ${path}: ${(e as Error).message}`);
  }
  if (typeof file !== "object" || file === null || Array.isArray(file)) {
    throw new ConfigError("--config", `--config ${path} must hold a JSON object`);
  }
  return file as Record<string, unknown>;
}

function isBoolFlag(name: string): boolean {
  return name in CONFIG_KEYS && CONFIG_KEYS[name as ConfigKey].kind === "bool";
}

/** True for a loopback host: 127.0.0.0/8, ::1 or localhost. */
export function isLoopbackAddr(addr: string): boolean {
  const host = addr.slice(0, addr.lastIndexOf(":")).replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127(\.\d{1,3}){3}$/.test(host);
}

/**
 * TLS needs all three files; a server on a non-loopback address needs a secret or TLS unless
 * `--insecure` says the operator accepts an unauthenticated cluster (docs/security.md).
 */
function checkSecurity(config: Config): void {
  const tls = [config.cacert, config.cert, config.key].filter((f) => f !== undefined).length;
  if (tls !== 0 && tls !== 3) {
    throw new ConfigError("--cacert", "TLS needs all of --cacert, --cert and --key");
  }
  if (config.certAllowedCn !== undefined && tls === 0) {
    throw new ConfigError(
      "--cert-allowed-cn",
      "--cert-allowed-cn needs TLS (--cacert/--cert/--key)",
    );
  }
  if (config.acceptClusterSecretFile !== undefined && config.clusterSecretFile === undefined) {
    throw new ConfigError(
      "--accept-cluster-secret-file",
      "--accept-cluster-secret-file needs --cluster-secret-file (the secret this process sends)",
    );
  }
  const secured = tls === 3 || config.clusterSecretFile !== undefined;
  if (!secured && !config.insecure && !isLoopbackAddr(config.addr)) {
    throw new ConfigError(
      "--insecure",
      `refusing to listen on ${config.addr} without authentication: give --cluster-secret-file ` +
        "or --cacert/--cert/--key, or --insecure to run an open cluster (docs/security.md)",
    );
  }
}

function checkRole(key: ConfigKey, role: Role, where: string): void {
  const roles: readonly Role[] = CONFIG_KEYS[key].roles;
  if (!roles.includes(role)) {
    throw new ConfigError(where, `${where} is not accepted by --role ${role}`);
  }
}

/** What a flag's value looks like in `--help`. */
const VALUE_NAMES: Record<Kind, string> = {
  string: "DIR",
  addr: "HOST:PORT",
  url: "URL",
  size: "SIZE",
  duration: "DURATION",
  int: "N",
  level: "LEVEL",
  bool: "",
  kvAuth: "MODE",
};

/** Keys whose value is not what their kind suggests. */
const VALUE_NAME_OF: Partial<Record<ConfigKey, string>> = {
  "cluster-secret-file": "FILE",
  "cacert": "FILE",
  "cert": "FILE",
  "key": "FILE",
  "cert-allowed-cn": "CN,...",
};

/** The text printed by `--help`. */
export function usage(): string {
  const row = (flag: string, text: string) => `  ${flag.padEnd(36)} ${text}`;
  const lines = [
    "usage: mrkv --role scheduler|store [--flag value]...",
    "       mrkv ctl COMMAND [args]      the command-line client (mrkv ctl --help)",
    "",
    row("--role scheduler|store", "which server to run"),
    row("--config FILE.json", "any key below (and role), as JSON; flags win over the file"),
  ];
  for (const [key, spec] of Object.entries(CONFIG_KEYS) as [ConfigKey, KeySpec][]) {
    const dflt = formatDefault(spec);
    const roles = spec.roles.length === 2 ? "" : ` (${spec.roles[0]})`;
    lines.push(
      row(
        `--${key} ${VALUE_NAME_OF[key] ?? VALUE_NAMES[spec.kind]}`.trimEnd(),
        `${spec.help}${roles}${dflt ? ` [${dflt}]` : ""}`,
      ),
    );
  }
  lines.push(
    row("-h, --help", "show this help"),
    row("-V, --version", "show the version"),
    "",
    "SIZE: 512KiB, 64MiB, 1GiB or a byte count. DURATION: 100ms, 10s, 30m or milliseconds.",
    "LEVEL: debug, info, warn or error. Exit codes: 0 clean shutdown, 1 fatal error, 2 bad flags.",
  );
  return lines.join("\n");
}
