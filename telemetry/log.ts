/**
 * Structured one-line logs for both roles, in the `key=value` text form of Go's `log/slog` and
 * logfmt (readable by people, parsed by Loki, Vector and `grep`):
 *
 *     time=2025-05-01T10:00:00.000Z level=INFO role=store store=4 region=7 msg="installed snapshot"
 *
 * Every line carries the time, level and the logger's bound fields (role, store ID); a call may
 * add fields of its own. Callers that only pass a message (the store's `StoreLogger` calls, the
 * scheduler's) keep working: a message that starts with `region N: ` or `store N: ` has that
 * prefix turned into a field, and a peer the message opens with (`peer 5 was removed`, `created
 * peer 5 …`) is added as `peer`, so IDs are searchable without rewriting every call.
 * Values that are not plain words are quoted, and newlines escaped, so one event is one line.
 *
 * @module
 */

/** Severity, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Field values a line can carry. `undefined` fields are left out. */
export type LogFields = Readonly<Record<string, string | number | boolean | undefined | null>>;

/** Where finished lines go (stderr by default; tests collect them). */
export type LogSink = (line: string, level: LogLevel) => void;

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** True if `s` names a level. */
export function isLogLevel(s: string): s is LogLevel {
  return Object.hasOwn(RANK, s);
}

/** Options for {@link Logger}. */
export interface LoggerOptions {
  /** Lines below this level are dropped. Default `info`. */
  readonly level?: LogLevel;
  /** Fields on every line, e.g. `{ role: "store" }`. */
  readonly fields?: LogFields;
  readonly sink?: LogSink;
  /** The clock, in ms since the epoch (tests fix it). */
  readonly now?: () => number;
}

/** Writes to stderr, so a process's stdout stays for its real output (the ctl, tools). */
export const stderrSink: LogSink = (line) => console.error(line);

/** A leading `region 7: ` or `store 4: ` in a message, turned into a field. */
const PREFIX = /^(region|store) (\d{1,16}): /;

/** A logger with bound fields; {@link child} adds more. */
export class Logger {
  readonly level: LogLevel;
  readonly fields: LogFields;
  readonly #sink: LogSink;
  readonly #now: () => number;

  constructor(opts: LoggerOptions = {}) {
    this.level = opts.level ?? "info";
    this.fields = opts.fields ?? {};
    this.#sink = opts.sink ?? stderrSink;
    this.#now = opts.now ?? Date.now;
  }

  /** A logger with the same sink and level and `fields` added (later ones win). */
  child(fields: LogFields): Logger {
    return new Logger({
      level: this.level,
      fields: { ...this.fields, ...fields },
      sink: this.#sink,
      now: this.#now,
    });
  }

  /** Whether a line at `level` would be written. */
  enabled(level: LogLevel): boolean {
    return RANK[level] >= RANK[this.level];
  }

  debug(msg: string, fields?: LogFields): void {
    this.log("debug", msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log("info", msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.log("warn", msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.log("error", msg, fields);
  }

  /** Writes one line if `level` is enabled. */
  log(level: LogLevel, msg: string, fields: LogFields = {}): void {
    if (!this.enabled(level)) return;
    const all: Record<string, LogFields[string]> = { ...this.fields };
    const m = PREFIX.exec(msg);
    if (m && (all[m[1]!] === undefined || String(all[m[1]!]) === m[2])) {
      all[m[1]!] = Number(m[2]);
      msg = msg.slice(m[0].length);
    }
    // "peer 5 was removed", "created peer 5 on demand": the peer the line is about.
    const peer = /^(?:[a-z]+ )?peer (\d{1,16})\b/.exec(msg);
    if (peer && all.peer === undefined) all.peer = Number(peer[1]);
    Object.assign(all, fields);
    this.#sink(formatLine(new Date(this.#now()), level, msg, all), level);
  }
}

/** One logfmt line: time, level, the fields in order, then `msg`. */
export function formatLine(
  time: Date,
  level: LogLevel,
  msg: string,
  fields: Readonly<Record<string, LogFields[string]>>,
): string {
  const parts = [`time=${time.toISOString()}`, `level=${level.toUpperCase()}`];
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || v === null || k === "msg") continue;
    parts.push(`${k}=${quote(String(v))}`);
  }
  parts.push(`msg=${quote(msg)}`);
  return parts.join(" ");
}

/** A value as logfmt writes it: bare if it is one plain word, else quoted and escaped. */
function quote(v: string): string {
  if (v !== "" && /^[A-Za-z0-9_.:/@+-]+$/.test(v)) return v;
  return `"${
    v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n").replace(/\r/g, "\\r")
      .replace(/\t/g, "\\t")
  }"`;
}
