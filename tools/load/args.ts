/**
 * Command-line flags of the load tool, validated into {@link LoadOptions}. Every problem throws a
 * {@link LoadArgError} whose message names the flag and says what was expected, so the CLI can
 * print one line and exit 2 (the same contract as `main.ts`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseDuration, parseSize } from "../../config/config.ts";
import { ROUTE_MODES, type RouteMode, TARGET_KINDS, type TargetKind } from "./targets.ts";

/** A bad flag; `flag` is what the user must fix. */
export class LoadArgError extends Error {
  constructor(readonly flag: string, message: string) {
    super(message);
    this.name = "LoadArgError";
  }
}

/** Everything one load run needs. */
export interface LoadOptions {
  readonly target: TargetKind;
  /** Base URLs without a trailing slash; requests go round-robin across them. */
  readonly endpoints: readonly string[];
  /** `leader` (mrkv): requests go to their key's leader once a route hint named it. */
  readonly route?: RouteMode;
  /** Endpoints and routes may be off this machine. */
  readonly allowRemote?: boolean;
  /** Share of operations that are writes, 0..100; the rest are reads. */
  readonly writePct: number;
  /** Requests in flight at once. */
  readonly concurrency: number;
  /**
   * At most this many requests start per second, in all, at even intervals (an open-loop pace,
   * like etcd's `benchmark --rate`); undefined: as fast as the clients go.
   */
  readonly rate?: number;
  readonly valueSize: number;
  /** Keys are drawn uniformly from this many. */
  readonly keys: number;
  /** Time bound of the measured phase, always set. */
  readonly durationMs: number;
  /** Count bound of the measured phase, if any: the run stops at whichever bound comes first. */
  readonly requests?: number;
  /** Write every key once before measuring, so reads hit. */
  readonly prefill: boolean;
  /** Per-request timeout. */
  readonly timeoutMs: number;
  /** Seed of the key/operation choices, so a run's request sequence can be repeated. */
  readonly seed: number;
  readonly json: boolean;
}

/** Default endpoints: the playground's stores and the members of tools/etcd_cluster.sh. */
export const DEFAULT_ENDPOINTS: Record<TargetKind, readonly string[]> = {
  mrkv: ["http://127.0.0.1:20161", "http://127.0.0.1:20162", "http://127.0.0.1:20163"],
  etcd: ["http://127.0.0.1:23791", "http://127.0.0.1:23792", "http://127.0.0.1:23793"],
};

/** Named workloads accepted by `--workload`, as write percentages. */
export const WORKLOADS: Record<string, number> = {
  "write-only": 100,
  "read-heavy": 10,
  "read-only": 0,
};

/** When only `--requests` is given, the run is still stopped after this long. */
export const REQUESTS_TIME_CAP_MS = 5 * 60_000;

/** Flags and their meaning, for `--help`. */
export function loadUsage(): string {
  return `Usage: deno run -A tools/load.ts [flags]

  --target mrkv|etcd      server kind (default mrkv)
  --endpoints URL,...     base URLs; requests are spread round-robin across them
                          (default mrkv: the playground, ${DEFAULT_ENDPOINTS.mrkv.length} stores from ${
    DEFAULT_ENDPOINTS.mrkv[0]
  };
                          etcd: tools/etcd_cluster.sh, ${DEFAULT_ENDPOINTS.etcd.length} members from ${
    DEFAULT_ENDPOINTS.etcd[0]
  })
  --route endpoints|leader
                          endpoints (default): each request to the next endpoint in turn;
                          leader (mrkv only): to the store leading the key's region, learned
                          from the stores' route hints (x-mrkv-route), as TiKV's clients do
  --write-pct N           percentage of writes, 0..100 (default 100); the rest are reads
  --workload NAME         same as --write-pct: write-only (100), read-heavy (10), read-only (0)
  --concurrency N         requests in flight (default 1)
  --rate N                start at most N requests per second in all, evenly spaced
                          (default: as fast as the clients go)
  --value-size BYTES      value size, KiB/MiB suffixes allowed (default 128)
  --keys N                key space size (default 10000)
  --duration D            measured phase length, e.g. 10s (default 10s; 5m cap with --requests)
  --requests N            stop after N requests (whichever of --duration/--requests is first)
  --prefill               write every key once before measuring, so reads hit
  --timeout D             per-request timeout (default 5s)
  --seed N                seed for key and operation choice (default: random)
  --allow-remote          allow endpoints that are not on the loopback interface
  --json                  print one JSON object instead of the text report
  --help                  this text
  --version               the version`;
}

/** Parses and validates the load tool's flags; `{ help: true }` for `--help`. */
export function parseLoadArgs(args: readonly string[]): LoadOptions | { help: true } {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        target: { type: "string" },
        endpoints: { type: "string" },
        route: { type: "string" },
        "write-pct": { type: "string" },
        workload: { type: "string" },
        concurrency: { type: "string" },
        rate: { type: "string" },
        "value-size": { type: "string" },
        keys: { type: "string" },
        duration: { type: "string" },
        requests: { type: "string" },
        prefill: { type: "boolean" },
        timeout: { type: "string" },
        seed: { type: "string" },
        "allow-remote": { type: "boolean" },
        json: { type: "boolean" },
        help: { type: "boolean" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    // node:util names the flag in its message, e.g. "Unknown option '--foo'".
    const m = /'(--?[\w-]+)/.exec((e as Error).message);
    const firstLine = (e as Error).message.split("\n")[0]!;
    throw new LoadArgError(m?.[1] ?? "arguments", firstLine);
  }
  if (values.help) return { help: true };

  const target = (values.target ?? "mrkv") as TargetKind;
  if (!TARGET_KINDS.includes(target)) {
    throw new LoadArgError(
      "--target",
      `invalid value for --target: "${values.target}" is not one of ${TARGET_KINDS.join(", ")}`,
    );
  }

  const endpoints = values.endpoints === undefined
    ? DEFAULT_ENDPOINTS[target]
    : parseEndpoints(values.endpoints, values["allow-remote"] ?? false);

  const route = (values.route ?? "endpoints") as RouteMode;
  if (!ROUTE_MODES.includes(route)) {
    throw new LoadArgError(
      "--route",
      `invalid value for --route: "${values.route}" is not one of ${ROUTE_MODES.join(", ")}`,
    );
  }
  if (route === "leader" && target !== "mrkv") {
    throw new LoadArgError(
      "--route",
      `--route leader is for --target mrkv (${target} has no route hints to follow)`,
    );
  }

  if (values["write-pct"] !== undefined && values.workload !== undefined) {
    throw new LoadArgError("--workload", "give either --write-pct or --workload, not both");
  }
  let writePct = 100;
  if (values.workload !== undefined) {
    const pct = WORKLOADS[values.workload];
    if (pct === undefined) {
      throw new LoadArgError(
        "--workload",
        `invalid value for --workload: "${values.workload}" is not one of ${
          Object.keys(WORKLOADS).join(", ")
        }`,
      );
    }
    writePct = pct;
  } else if (values["write-pct"] !== undefined) {
    writePct = number("--write-pct", values["write-pct"], { min: 0, max: 100 });
  }

  const requests = values.requests === undefined
    ? undefined
    : number("--requests", values.requests, { min: 1, max: 1e9, integer: true });
  const durationMs = values.duration === undefined
    ? (requests === undefined ? 10_000 : REQUESTS_TIME_CAP_MS)
    : withUnit("--duration", values.duration, parseDuration, { min: 1, max: 3_600_000 });

  return {
    target,
    endpoints,
    route,
    allowRemote: values["allow-remote"] ?? false,
    writePct,
    concurrency: number("--concurrency", values.concurrency ?? "1", {
      min: 1,
      max: 4096,
      integer: true,
    }),
    rate: values.rate === undefined
      ? undefined
      : number("--rate", values.rate, { min: 0.001, max: 1_000_000 }),
    valueSize: withUnit("--value-size", values["value-size"] ?? "128", parseSize, {
      min: 0,
      max: 1024 * 1024,
    }),
    keys: number("--keys", values.keys ?? "10000", { min: 1, max: 1e9, integer: true }),
    durationMs,
    requests,
    prefill: values.prefill ?? false,
    timeoutMs: withUnit("--timeout", values.timeout ?? "5s", parseDuration, {
      min: 1,
      max: 600_000,
    }),
    seed: values.seed === undefined
      ? Math.floor(Math.random() * 2 ** 32)
      : number("--seed", values.seed, { min: 0, max: 2 ** 32 - 1, integer: true }),
    json: values.json ?? false,
  };
}

interface Bounds {
  readonly min: number;
  readonly max: number;
  readonly integer?: boolean;
}

function number(flag: string, text: string, bounds: Bounds): number {
  const value = /^\s*-?\d+(\.\d+)?\s*$/.test(text) ? Number(text) : NaN;
  const kind = bounds.integer ? "a whole number" : "a number";
  if (Number.isNaN(value) || (bounds.integer && !Number.isSafeInteger(value))) {
    throw new LoadArgError(flag, `invalid value for ${flag}: "${text}" is not ${kind}`);
  }
  checkBounds(flag, text, value, bounds);
  return value;
}

function withUnit(
  flag: string,
  text: string,
  parse: (text: string) => number,
  bounds: Bounds,
): number {
  let value: number;
  try {
    value = parse(text);
  } catch (e) {
    throw new LoadArgError(flag, `invalid value for ${flag}: ${(e as Error).message}`);
  }
  checkBounds(flag, text, value, bounds);
  return value;
}

function checkBounds(flag: string, text: string, value: number, bounds: Bounds): void {
  if (value < bounds.min || value > bounds.max) {
    throw new LoadArgError(
      flag,
      `invalid value for ${flag}: "${text}" is outside ${bounds.min}..${bounds.max}`,
    );
  }
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;

/** Whether `url` names this machine (what endpoints and routes must, without --allow-remote). */
export function isLoopbackUrl(url: string): boolean {
  try {
    return LOOPBACK.test(new URL(url).hostname);
  } catch {
    return false;
  }
}

function parseEndpoints(text: string, allowRemote: boolean): string[] {
  const list = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (list.length === 0) {
    throw new LoadArgError("--endpoints", "invalid value for --endpoints: no URL given");
  }
  return list.map((raw) => {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new LoadArgError(
        "--endpoints",
        `invalid value for --endpoints: "${raw}" is not a URL such as http://127.0.0.1:20161`,
      );
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new LoadArgError(
        "--endpoints",
        `invalid value for --endpoints: "${raw}" is not http(s)`,
      );
    }
    if (url.search !== "" || url.hash !== "") {
      throw new LoadArgError(
        "--endpoints",
        `invalid value for --endpoints: "${raw}" must not have a query or fragment`,
      );
    }
    if (!allowRemote && !LOOPBACK.test(url.hostname)) {
      throw new LoadArgError(
        "--endpoints",
        `invalid value for --endpoints: "${raw}" is not on this machine (pass --allow-remote)`,
      );
    }
    return url.href.replace(/\/+$/, "");
  });
}
