/**
 * Turns a key the checker rejected into a short proof: the two to five operations that cannot
 * be ordered, in words a person can check against the history file.
 *
 * Patterns, tried for each ok read in the order reads began:
 * - `phantom-read`: the read returned a value no client wrote.
 * - `read-of-failed-write`: its only write was answered with a "certainly not applied" code.
 * - `read-before-write`: the read ended before the write of its value began.
 * - `stale-read` / `lost-write`: a newer value `u` was already acknowledged (or read) when the
 *   read began, and the read's value `v` was in effect before `u`'s write began; since every
 *   value is written once, `v` cannot come back. A read of nothing after a write is a lost write.
 *
 * Each candidate is confirmed by running the checker on just its operations (a set closed under
 * "a read brings the write of its value", so if it cannot be ordered, neither can the whole key).
 * When no pattern fits, the checker's deepest stuck point is reported with the operations that
 * overlap it.
 *
 * @module
 */
import { checkRegister, type Stuck } from "./checker.ts";
import { completion, isCheckable, type Op } from "./history.ts";

/** The kind of anomaly an explanation shows. */
export type AnomalyKind =
  | "phantom-read"
  | "read-of-failed-write"
  | "read-before-write"
  | "stale-read"
  | "lost-write"
  | "unexplained";

/** A minimal account of why one key's history is not linearizable. */
export interface Explanation {
  readonly key: string;
  readonly kind: AnomalyKind;
  readonly text: string;
  /** The operations the text cites (ids into the history file). */
  readonly opIds: readonly number[];
  /** True when the cited operations alone are rejected by the checker. */
  readonly confirmed: boolean;
}

/** How much `explainKey` reports at most. */
const MAX_EXPLANATIONS = 3;

/** Explains why `ops` (every operation on `key`, failed ones too) cannot be linearized. */
export function explainKey(key: string, ops: readonly Op[], stuck?: Stuck): Explanation[] {
  const out: Explanation[] = [];
  const writesOf = new Map<string, Op[]>();
  for (const op of ops) {
    if (op.kind === "write" && op.value !== null) {
      const list = writesOf.get(op.value);
      if (list) list.push(op);
      else writesOf.set(op.value, [op]);
    }
  }
  const okReads = ops.filter((o) => o.kind === "read" && o.outcome === "ok")
    .sort((a, b) => a.invoke - b.invoke);
  /** The earliest op proving `x` had taken effect, and when (null: the initial value). */
  const inEffect = (x: string | null): { at: number; op?: Op } | undefined => {
    if (x === null) return { at: -Infinity };
    let best: { at: number; op?: Op } | undefined;
    for (const w of writesOf.get(x) ?? []) {
      if (w.outcome === "ok" && (!best || w.end < best.at)) best = { at: w.end, op: w };
    }
    for (const r of okReads) {
      if (r.value === x && (!best || r.end < best.at)) best = { at: r.end, op: r };
    }
    return best;
  };
  /**
   * A value u != v that provably came after v (its write began, or a read returned it, after
   * v was in effect at `vAt`) and was in effect before `r` began: then r cannot return v. The
   * latest such u is the clearest witness.
   */
  const newerValue = (v: string | null, vAt: number, r: Op) => {
    let best: { u: string; write: Op; order: Op; effect: Op } | undefined;
    for (const [u, uWrites] of writesOf) {
      const uLive = uWrites.filter(isCheckable);
      if (u === v || uLive.length !== 1) continue;
      const write = uLive[0]!;
      const order = write.invoke > vAt
        ? write
        : okReads.find((x) => x.value === u && x.invoke > vAt && x.end < r.invoke);
      const effect = inEffect(u);
      if (!order || !effect?.op || effect.at >= r.invoke) continue;
      if (!best || effect.at > best.effect.end) best = { u, write, order, effect: effect.op };
    }
    return best;
  };
  const seen = new Set<string>();
  /** Records an explanation unless one with the same `sig` (default: same ops) exists. */
  const add = (kind: AnomalyKind, text: string, cited: Op[], sig?: string) => {
    const id = sig ?? `${kind}:${cited.map((o) => o.id).join(",")}`;
    if (seen.has(id) || out.length >= MAX_EXPLANATIONS) return;
    seen.add(id);
    out.push({ key, kind, text, opIds: cited.map((o) => o.id), confirmed: rejected(cited) });
  };

  for (const r of okReads) {
    if (out.length >= MAX_EXPLANATIONS) break;
    const v = r.value;
    const writes = v === null ? [] : writesOf.get(v) ?? [];
    if (v !== null && writes.length === 0) {
      add("phantom-read", `${key}: ${describe(r)}, a value no client wrote`, [r]);
      continue;
    }
    const live = writes.filter(isCheckable);
    if (v !== null && live.length === 0) {
      const w = writes[0]!;
      add(
        "read-of-failed-write",
        `${key}: ${describe(r)}; that value's only write was answered as not applied: ${
          describe(w)
        }`,
        [r, w],
      );
      continue;
    }
    if (live.length === 1 && live[0]!.invoke > r.end) {
      const w = live[0]!;
      add("read-before-write", `${key}: ${describe(r)} before its write began: ${describe(w)}`, [
        r,
        w,
      ]);
      continue;
    }
    if (live.length > 1) continue; // a value written twice: the patterns below assume once
    const vWrite = live[0];
    const vEffect = inEffect(v);
    if (!vEffect) continue;
    const stale = newerValue(v, vEffect.at, r);
    if (!stale) continue;
    const cited = uniqueOps([
      stale.write,
      stale.order,
      stale.effect,
      r,
      ...(vWrite ? [vWrite] : []),
      ...(vEffect.op ? [vEffect.op] : []),
    ]);
    // Later reads of the same old value prove nothing new.
    const sig = `old:${v}:${stale.u}`;
    const newer = stale.effect === stale.write
      ? describe(stale.write)
      : `${describe(stale.effect)} (${describe(stale.write)})`;
    if (v === null) {
      add("lost-write", `${key}: ${newer}, then ${describe(r)}: the write was lost`, cited, sig);
    } else if (vEffect.op === vWrite && stale.order === stale.write) {
      // The common shape: v's write was acknowledged before u's began; u was acknowledged (or
      // read) before r began; r still returned v.
      add(
        "stale-read",
        `${key}: ${newer}, then ${describe(r)}, written (ok) at ${span(vWrite!)} before ${
          quote(stale.u)
        }'s write began`,
        cited,
        sig,
      );
    } else {
      const vProof = vEffect.op === vWrite ? describe(vWrite!) : describe(vEffect.op!);
      const order = stale.order === stale.write
        ? `whose write began at ${ms(stale.write.invoke)}`
        : `which ${describe(stale.order)}`;
      add(
        "stale-read",
        `${key}: ${describe(r)}, an older value: ${quote(v)} was in effect by ${
          ms(vEffect.at)
        } (${vProof}); ${
          quote(stale.u)
        } came after it (${order}) and was in effect before the read began (${newer})`,
        cited,
        sig,
      );
    }
  }
  if (out.length === 0) out.push(unexplained(key, ops, stuck));
  return out;
}

/** The checker's deepest stuck point and the operations overlapping it. */
function unexplained(key: string, ops: readonly Op[], stuck?: Stuck): Explanation {
  if (!stuck) {
    return {
      key,
      kind: "unexplained",
      text: `${key}: not linearizable`,
      opIds: [],
      confirmed: false,
    };
  }
  const op = ops.find((o) => o.id === stuck.op.id);
  const around = op
    ? ops.filter((o) =>
      o !== op && isCheckable(o) && o.invoke <= op.end && completion(o) >= op.invoke
    ).slice(0, 8)
    : [];
  const lines = [
    `${key}: no order of its operations works; after placing ${stuck.linearized} (value then ${
      quote(stuck.state)
    }) none could place ${op ? describe(op) : `op ${stuck.op.id}`}`,
    ...around.map((o) => `    overlapping: ${describe(o)}`),
  ];
  return {
    key,
    kind: "unexplained",
    text: lines.join("\n"),
    opIds: [stuck.op.id, ...around.map((o) => o.id)],
    confirmed: false,
  };
}

/** True if the checker rejects `ops` on their own. */
function rejected(ops: readonly Op[]): boolean {
  const checkable = ops.filter(isCheckable).map((o) => ({
    id: o.id,
    kind: o.kind,
    value: o.value,
    invoke: o.invoke,
    complete: completion(o),
  }));
  return checkRegister(checkable).result === "anomaly";
}

function uniqueOps(ops: Op[]): Op[] {
  return [...new Map(ops.map((o) => [o.id, o])).values()].sort((a, b) => a.invoke - b.invoke);
}

function quote(v: string | null): string {
  return v === null ? "nothing" : `"${v}"`;
}

function ms(t: number): string {
  return String(Math.round(t));
}

function span(op: Op): string {
  return `${ms(op.invoke)}..${ms(op.end)}`;
}

/** One operation in words, e.g. `write "c10-200" ok at 34476..34520 (c10@s3)`. */
export function describe(op: Op): string {
  const who = `(c${op.client}@s${op.store}, op ${op.id})`;
  if (op.kind === "read") {
    return op.outcome === "ok"
      ? `read at ${span(op)} ${who} returned ${quote(op.value)}`
      : `read ${op.outcome} (${op.error ?? "?"}) at ${span(op)} ${who}`;
  }
  const how = op.outcome === "ok"
    ? "ok"
    : op.outcome === "fail"
    ? `failed (${op.error ?? "?"})`
    : `unknown (${op.error ?? "?"}; client gave up)`;
  return `write ${quote(op.value)} ${how} at ${span(op)} ${who}`;
}
