/**
 * Command-line flags of `deno task chaos`, validated into {@link ChaosOptions}. A bad flag
 * throws {@link ChaosArgError} naming it, so the CLI prints one line and exits 2.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseDuration } from "../../config/config.ts";
import { FAULT_GROUPS, FAULT_HELP, FAULT_KINDS, type FaultKind, parseFaults } from "./faults.ts";

/** A bad flag. */
export class ChaosArgError extends Error {
  constructor(readonly flag: string, message: string) {
    super(message);
    this.name = "ChaosArgError";
  }
}

/** Where the workload runs. */
export type ChaosTarget = "mrkv" | "etcd";

/** Everything one chaos run needs. */
export interface ChaosOptions {
  readonly target: ChaosTarget;
  readonly seed: number;
  /** Length of the workload with faults (final checks and teardown come after). */
  readonly durationMs: number;
  readonly stores: 3 | 5;
  readonly clients: number;
  readonly keys: number;
  /** Share of reads, 0..1. */
  readonly readFraction: number;
  readonly faults: readonly FaultKind[];
  /**
   * Stop after this many rounds (every fault kind once per round, shuffled) instead of at the
   * end of `durationMs`, which then only caps the run.
   */
  readonly rounds?: number;
  /** A fault holds for a time drawn from this range. */
  readonly holdMs: readonly [number, number];
  /** Clean workload after each fault. */
  readonly quietMs: number;
  /** Clean workload before the first fault. */
  readonly leadInMs: number;
  /** Keep data and logs even when the run passes. */
  readonly keep: boolean;
  /** Directory for the run's files (default: a new temp dir). */
  readonly dir?: string;
  /** Fail instead of falling back to 127.0.0.1 when namespaces are unavailable. */
  readonly requireNetns: boolean;
  /** Run on 127.0.0.1 without partitions even where namespaces are available. */
  readonly noNetns?: boolean;
  /** Extra flags for every store. */
  readonly storeFlags: readonly string[];
  /** Print the report as JSON instead of text. */
  readonly json: boolean;
}

/** Defaults, also shown by `--help`. */
export const CHAOS_DEFAULTS = {
  duration: "60s",
  stores: 3,
  clients: 16,
  keys: 20,
  readPct: 50,
  hold: "2s..5s",
  quiet: "2s",
  leadIn: "3s",
  /** Compacting the log often makes a crash during log GC likelier. */
  storeFlags: ["--raft-log-gc-count-limit", "2000"],
} as const;

/** The `--help` text. */
export function chaosUsage(): string {
  const kinds = FAULT_KINDS.map((k) => `      ${k.padEnd(22)}${FAULT_HELP[k]}`).join("\n");
  const groups = Object.entries(FAULT_GROUPS).filter(([g]) => g !== "all" && g !== "none")
    .map(([g, ks]) => `      group ${g}: ${ks.join(", ")}`).join("\n");
  return `Usage: deno task chaos [flags]

Starts a scheduler and --stores stores as real processes (each in its own network namespace
when run as root with iproute2 and iptables; otherwise on 127.0.0.1 without partitions),
runs --clients clients against them while injecting one fault at a time, then checks the
recorded history for linearizability and prints a report.

  --seed N               seed of the fault schedule and the clients' choices (default: random)
  --duration D           workload length: seconds, or 90s, 2m (default ${CHAOS_DEFAULTS.duration})
  --stores 3|5           number of stores (default ${CHAOS_DEFAULTS.stores})
  --clients N            clients, client i bound to store i mod N (default ${CHAOS_DEFAULTS.clients})
  --keys N               keys the clients share (default ${CHAOS_DEFAULTS.keys})
  --read-pct N           percentage of reads, 0..100 (default ${CHAOS_DEFAULTS.readPct})
  --faults LIST          comma-separated kinds or groups (default all):
${kinds}
${groups}
      group all: every kind; none: no faults
  --rounds N             stop after N rounds of every fault kind (once each, shuffled) instead
                         of at --duration, which then only caps the run
  --hold MIN..MAX        how long a fault holds (default ${CHAOS_DEFAULTS.hold})
  --quiet D              clean workload after each heal (default ${CHAOS_DEFAULTS.quiet})
  --lead-in D            clean workload before the first fault (default ${CHAOS_DEFAULTS.leadIn})
  --target mrkv|etcd     run against mrkv (default) or a 3-member etcd (etcd on PATH)
  --dir DIR              where to put history, report, logs and data (default: a temp dir)
  --keep                 keep data and logs when the run passes (a failing run keeps them)
  --require-netns        fail instead of falling back to 127.0.0.1 (also MRKV_CHAOS_REQUIRE_NETNS=1)
  --no-netns             run on 127.0.0.1 without partitions even as root
  --store-flag FLAG=V    extra flag for every store, repeatable (default ${
    CHAOS_DEFAULTS.storeFlags.join(" ")
  })
  --json                 print the report as JSON
  --help                 this text

Exit codes: 0 pass, 1 anomaly or the cluster did not recover, 3 inconclusive (checker budget),
2 bad flags.`;
}

function positiveInt(flag: string, text: string, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) {
    throw new ChaosArgError(
      flag,
      `--${flag} must be a whole number from 1 to ${max}, got "${text}"`,
    );
  }
  return n;
}

/** A duration flag; a bare number is seconds (`--duration 60`). */
function duration(flag: string, text: string): number {
  try {
    return parseDuration(/^\s*\d+(\.\d+)?\s*$/.test(text) ? `${text.trim()}s` : text);
  } catch {
    throw new ChaosArgError(
      flag,
      `--${flag} must be a duration such as 500ms, 5s or 2m, got "${text}"`,
    );
  }
}

/** Parses the flags; returns `{ help: true }` for `--help`. */
export function parseChaosArgs(
  args: readonly string[],
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): ChaosOptions | { help: true } {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        seed: { type: "string" },
        duration: { type: "string", default: CHAOS_DEFAULTS.duration },
        stores: { type: "string", default: String(CHAOS_DEFAULTS.stores) },
        clients: { type: "string", default: String(CHAOS_DEFAULTS.clients) },
        keys: { type: "string", default: String(CHAOS_DEFAULTS.keys) },
        "read-pct": { type: "string", default: String(CHAOS_DEFAULTS.readPct) },
        faults: { type: "string", default: "all" },
        rounds: { type: "string" },
        hold: { type: "string", default: CHAOS_DEFAULTS.hold },
        quiet: { type: "string", default: CHAOS_DEFAULTS.quiet },
        "lead-in": { type: "string", default: CHAOS_DEFAULTS.leadIn },
        target: { type: "string", default: "mrkv" },
        dir: { type: "string" },
        keep: { type: "boolean", default: false },
        "require-netns": { type: "boolean", default: false },
        "no-netns": { type: "boolean", default: false },
        "store-flag": { type: "string", multiple: true },
        json: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new ChaosArgError("?", (e as Error).message);
  }
  if (values.help) return { help: true };

  const seed = values.seed === undefined
    ? Math.floor(Math.random() * 1_000_000)
    : /^\d{1,9}$/.test(values.seed)
    ? Number(values.seed)
    : NaN;
  if (!Number.isSafeInteger(seed)) {
    throw new ChaosArgError("seed", `--seed must be a whole number, got "${values.seed}"`);
  }
  const stores = Number(values.stores);
  if (stores !== 3 && stores !== 5) {
    throw new ChaosArgError("stores", `--stores must be 3 or 5, got "${values.stores}"`);
  }
  const target = values.target;
  if (target !== "mrkv" && target !== "etcd") {
    throw new ChaosArgError("target", `--target must be mrkv or etcd, got "${target}"`);
  }
  const readPct = /^\d+$/.test(values["read-pct"]) ? Number(values["read-pct"]) : NaN;
  if (!(readPct >= 0 && readPct <= 100)) {
    throw new ChaosArgError("read-pct", `--read-pct must be 0..100, got "${values["read-pct"]}"`);
  }
  let faults: FaultKind[];
  try {
    faults = parseFaults(values.faults);
  } catch (e) {
    throw new ChaosArgError("faults", `--faults: ${(e as Error).message}`);
  }
  const hold = /^(.+)\.\.(.+)$/.exec(values.hold);
  const holdMs = hold
    ? [duration("hold", hold[1]!), duration("hold", hold[2]!)] as const
    : [duration("hold", values.hold), duration("hold", values.hold)] as const;
  if (holdMs[0] > holdMs[1] || holdMs[0] < 100) {
    throw new ChaosArgError("hold", `--hold must be MIN..MAX with 100ms <= MIN <= MAX`);
  }
  const storeFlags = (values["store-flag"] ?? []).flatMap((f) => {
    const m = /^(--)?([a-z0-9-]+)=(.*)$/.exec(f);
    if (!m) throw new ChaosArgError("store-flag", `--store-flag must be NAME=VALUE, got "${f}"`);
    return [`--${m[2]}`, m[3]!];
  });
  return {
    target,
    seed,
    durationMs: duration("duration", values.duration),
    stores,
    clients: positiveInt("clients", values.clients, 256),
    keys: positiveInt("keys", values.keys, 1000),
    readFraction: readPct / 100,
    faults,
    ...(values.rounds !== undefined ? { rounds: positiveInt("rounds", values.rounds, 1000) } : {}),
    holdMs,
    quietMs: duration("quiet", values.quiet),
    leadInMs: duration("lead-in", values["lead-in"]),
    keep: values.keep,
    ...(values.dir !== undefined ? { dir: values.dir } : {}),
    requireNetns: values["require-netns"] || env("MRKV_CHAOS_REQUIRE_NETNS") === "1",
    ...(values["no-netns"] ? { noNetns: true } : {}),
    storeFlags: storeFlags.length > 0 ? storeFlags : [...CHAOS_DEFAULTS.storeFlags],
    json: values.json,
  };
}
