/**
 * The recorded history of a chaos run: every client operation with its invoke and completion
 * times (monotonic milliseconds since the run started) and its outcome.
 *
 * Outcomes (see `outcome.ts` for how answers map to them):
 * - `ok`: the server answered and the operation took effect (a read returned `value`).
 * - `fail`: the server answered with a code that means "certainly not applied".
 * - `unknown`: no answer, a timeout or an answer that leaves the effect open. An unknown write
 *   may take effect at any time after its invoke, or never: the checker treats its completion
 *   as infinitely late. An unknown or failed read tells nothing and is not checked.
 *
 * @module
 */

/** What an operation did. */
export type OpKind = "read" | "write";

/** How an operation ended, from the client's side. */
export type Outcome = "ok" | "fail" | "unknown";

/** One client operation on one key. */
export interface Op {
  /** Position in the history, unique within a run. */
  readonly id: number;
  readonly client: number;
  /** The store slot (1-based, `s1`...) the client sent it to. */
  readonly store: number;
  readonly key: string;
  readonly kind: OpKind;
  /** Write: the value written. Read: the value returned when ok (null: absent), else null. */
  readonly value: string | null;
  /** When the client sent it (ms since the run started). */
  readonly invoke: number;
  /** When the client got its answer or gave up (ms); finite for every outcome. */
  readonly end: number;
  readonly outcome: Outcome;
  /** For fail/unknown: the error code or what went wrong (e.g. "503 Timeout", "network"). */
  readonly error?: string;
}

/**
 * The completion time the linearizability model uses: an unknown write may still take effect
 * at any later time, so its completion is infinitely late.
 */
export function completion(op: Op): number {
  return op.outcome === "unknown" ? Infinity : op.end;
}

/**
 * The operations the checker must account for: ok reads and every write that may have taken
 * effect (ok or unknown). Failed writes certainly did not happen; failed and unknown reads
 * observed nothing.
 */
export function isCheckable(op: Op): boolean {
  return op.kind === "write" ? op.outcome !== "fail" : op.outcome === "ok";
}

/** The history split by key (a register per key: keys are independent, P-compositionality). */
export function byKey(ops: readonly Op[]): Map<string, Op[]> {
  const out = new Map<string, Op[]>();
  for (const op of ops) {
    const list = out.get(op.key);
    if (list) list.push(op);
    else out.set(op.key, [op]);
  }
  return out;
}

/** Records operations as clients run them; ids follow the order of invocation. */
export class HistoryRecorder {
  readonly #ops: Op[] = [];
  #nextId = 0;

  /** Reserves an id at invoke time, so ids order operations by when they started. */
  nextId(): number {
    return this.#nextId++;
  }

  add(op: Op): void {
    this.#ops.push(op);
  }

  /** Every recorded operation, by id. */
  ops(): Op[] {
    return [...this.#ops].sort((a, b) => a.id - b.id);
  }
}

/** The JSON form of an operation: `complete` is null for an unknown outcome (infinity). */
interface OpJson extends Omit<Op, "end"> {
  readonly end: number;
  readonly complete: number | null;
}

/** The saved history file: what ran, and every operation. */
export interface HistoryFile {
  readonly format: "mrkv-chaos-history/1";
  readonly meta: Readonly<Record<string, unknown>>;
  readonly ops: readonly OpJson[];
}

/** Renders a history as JSON (one operation a line, so a large file still greps well). */
export function historyToJson(meta: Readonly<Record<string, unknown>>, ops: readonly Op[]): string {
  const lines = ops.map((op) => {
    const c = completion(op);
    const json: OpJson = { ...op, complete: Number.isFinite(c) ? c : null };
    return "  " + JSON.stringify(json);
  });
  return `{"format":"mrkv-chaos-history/1","meta":${JSON.stringify(meta)},"ops":[\n${
    lines.join(",\n")
  }\n]}\n`;
}

/** Parses a saved history, validating each operation's shape. */
export function historyFromJson(text: string): { meta: Record<string, unknown>; ops: Op[] } {
  const file = JSON.parse(text) as Partial<HistoryFile>;
  if (file.format !== "mrkv-chaos-history/1" || !Array.isArray(file.ops)) {
    throw new Error("not an mrkv chaos history (format mrkv-chaos-history/1)");
  }
  const ops = file.ops.map((raw, i): Op => {
    const o = raw as unknown as Record<string, unknown>;
    const num = (name: string) => {
      const v = o[name];
      if (typeof v !== "number" || !Number.isFinite(v)) {
        throw new Error(`op ${i}: ${name} must be a number`);
      }
      return v;
    };
    const kind = o.kind;
    const outcome = o.outcome;
    if (kind !== "read" && kind !== "write") throw new Error(`op ${i}: bad kind`);
    if (outcome !== "ok" && outcome !== "fail" && outcome !== "unknown") {
      throw new Error(`op ${i}: bad outcome`);
    }
    if (typeof o.key !== "string") throw new Error(`op ${i}: key must be a string`);
    if (o.value !== null && typeof o.value !== "string") {
      throw new Error(`op ${i}: value must be a string or null`);
    }
    return {
      id: num("id"),
      client: num("client"),
      store: num("store"),
      key: o.key,
      kind,
      value: o.value as string | null,
      invoke: num("invoke"),
      end: num("end"),
      outcome,
      ...(typeof o.error === "string" ? { error: o.error } : {}),
    };
  });
  return { meta: (file.meta ?? {}) as Record<string, unknown>, ops };
}
