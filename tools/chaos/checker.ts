/**
 * A linearizability checker for one read/write register (one key), after Wing & Gong's search
 * as improved by Lowe and by Horn & Kroening (the approach Porcupine takes):
 *
 * - Every operation becomes a call event at its invoke time and a return event at its
 *   completion; the events sit in one doubly linked list sorted by time (calls before returns
 *   at equal times, which only widens the overlap and so can never invent an anomaly).
 * - The search walks the list from its head. At a call it tries to linearize that operation
 *   now: if the register allows it (a read must see the current value), the operation is lifted
 *   out of the list (call and return) and the walk restarts from the head. At a return event
 *   the operation it ends was not linearized in time, so the search backtracks: it puts back the
 *   last lifted operation and tries the next candidate after it.
 * - A cache of (set of linearized operations, register value) prunes every configuration
 *   already explored: reaching the same set with the same value again cannot succeed if it
 *   failed before. The set's hash is kept incrementally (one random word per operation, XORed
 *   in and out), so a step costs O(1) apart from the set copy stored in the cache.
 *
 * Unknown outcomes: a write that may or may not have taken effect has its return event at
 * infinity. It can be linearized at any point after its invoke; once every finite operation is
 * linearized the rest can be linearized at the end, after every read, which is the same as never
 * taking effect. So the search succeeds as soon as the first remaining return is infinite.
 *
 * The search is exponential in the worst case, so it runs under a step and time budget and
 * reports `unknown` when that is exceeded, never a pass.
 *
 * @module
 */

/** One operation on the register, as the checker sees it. */
export interface RegisterOp {
  /** Any id the caller uses to refer back to the operation. */
  readonly id: number;
  readonly kind: "read" | "write";
  /** Write: the value written. Read: the value returned (null: absent). */
  readonly value: string | null;
  readonly invoke: number;
  /** Infinity when the outcome is unknown (a write that may take effect any time later). */
  readonly complete: number;
}

/** Limits on one key's search. */
export interface CheckBudget {
  /** Search steps (list positions visited) before giving up. */
  readonly maxSteps: number;
  /** Wall-clock milliseconds before giving up. */
  readonly maxMs: number;
}

/** Generous enough for minute-long runs; a history that needs more is reported, not passed. */
export const DEFAULT_BUDGET: CheckBudget = { maxSteps: 20_000_000, maxMs: 20_000 };

/** Where the search got stuck deepest: the first operation it could never place. */
export interface Stuck {
  /** The operation whose return event could not be passed. */
  readonly op: RegisterOp;
  /** How many operations were linearized before it at that point. */
  readonly linearized: number;
  /** The register's value at that point (null: absent). */
  readonly state: string | null;
}

/** The verdict for one register. */
export type CheckResult =
  | { readonly result: "ok"; readonly steps: number }
  | { readonly result: "anomaly"; readonly steps: number; readonly stuck: Stuck | undefined }
  | { readonly result: "unknown"; readonly steps: number; readonly reason: string };

/** Removes writes that cannot matter (see the comment inside); returns the rest, in order. */
export function prune(ops: readonly RegisterOp[]): RegisterOp[] {
  // An unknown write whose value no read returned can always be linearized last (equivalently:
  // never), and placing it anywhere else can only constrain the search: a read between it and
  // the next write would have to return its value. Dropping such writes keeps the verdict and
  // stops them multiplying the configurations the search explores.
  const read = new Set<string | null>();
  for (const op of ops) if (op.kind === "read") read.add(op.value);
  return ops.filter((op) =>
    op.kind === "read" || Number.isFinite(op.complete) || read.has(op.value)
  );
}

/**
 * Checks that the register history `ops` is linearizable from an initial value of null
 * (absent). Values written are expected to be unique; a repeated value is still handled
 * correctly, only less efficiently pruned.
 */
export function checkRegister(
  ops: readonly RegisterOp[],
  budget: CheckBudget = DEFAULT_BUDGET,
): CheckResult {
  const list = prune(ops);
  // A read of a value no remaining write could have produced can never be linearized; say so
  // at once rather than let the search prove it the exponential way.
  const written = new Set<string | null>([null]);
  for (const op of list) if (op.kind === "write") written.add(op.value);
  const orphan = list.find((op) => op.kind === "read" && !written.has(op.value));
  if (orphan) {
    return { result: "anomaly", steps: 0, stuck: { op: orphan, linearized: 0, state: null } };
  }
  return new Search(tighten(list), budget).run();
}

/**
 * Ends each write no later than the first read of its value ends: every linearization must
 * place the write before that read, so the earlier end loses no valid order, and it closes the
 * open interval of an unknown write that was seen (the search no longer carries it to the end).
 * Only for values written once.
 */
function tighten(ops: readonly RegisterOp[]): RegisterOp[] {
  const writes = new Map<string | null, number>();
  const firstReadEnd = new Map<string | null, number>();
  for (const op of ops) {
    if (op.kind === "write") writes.set(op.value, (writes.get(op.value) ?? 0) + 1);
    else firstReadEnd.set(op.value, Math.min(firstReadEnd.get(op.value) ?? Infinity, op.complete));
  }
  return ops.map((op) => {
    const end = firstReadEnd.get(op.value);
    return op.kind === "write" && writes.get(op.value) === 1 && end !== undefined &&
        end < op.complete
      ? { ...op, complete: end }
      : op;
  });
}

/** Per-operation random words for the incremental set hash (fixed seed: results repeat). */
function zobrist(n: number): Uint32Array {
  const words = new Uint32Array(n);
  let s = 0x2545f491;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = s >>> 0;
  }
  return words;
}

const NIL = -1;

class Search {
  readonly #ops: readonly RegisterOp[];
  readonly #budget: CheckBudget;
  /** Event i < n is op i's call; event n + i is its return. Head sentinel: index 2n. */
  readonly #next: Int32Array;
  readonly #prev: Int32Array;
  readonly #time: Float64Array;
  /** Interned values: index 0 is null (absent). */
  readonly #valueId: Int32Array;
  readonly #values: (string | null)[] = [null];
  readonly #zob: Uint32Array;

  constructor(ops: readonly RegisterOp[], budget: CheckBudget) {
    this.#ops = ops;
    this.#budget = budget;
    const n = ops.length;
    this.#next = new Int32Array(2 * n + 1).fill(NIL);
    this.#prev = new Int32Array(2 * n + 1).fill(NIL);
    this.#time = new Float64Array(2 * n);
    this.#valueId = new Int32Array(n);
    this.#zob = zobrist(n);
    const intern = new Map<string | null, number>([[null, 0]]);
    ops.forEach((op, i) => {
      let v = intern.get(op.value);
      if (v === undefined) {
        v = this.#values.length;
        intern.set(op.value, v);
        this.#values.push(op.value);
      }
      this.#valueId[i] = v;
      this.#time[i] = op.invoke;
      this.#time[n + i] = op.complete;
    });
    const events = Array.from({ length: 2 * n }, (_, e) => e);
    // By time; at equal times calls (e < n) first, so touching operations count as concurrent.
    events.sort((a, b) => this.#time[a]! - this.#time[b]! || (a < n ? 0 : 1) - (b < n ? 0 : 1));
    let last = 2 * n; // head
    for (const e of events) {
      this.#next[last] = e;
      this.#prev[e] = last;
      last = e;
    }
  }

  run(): CheckResult {
    const n = this.#ops.length;
    const head = 2 * n;
    const linearized = new Uint32Array((n + 31) >>> 5);
    let setHash = 0;
    let state = 0;
    const cache = new Map<number, { bits: Uint32Array; state: number }[]>();
    /** The lifted operations, innermost last, with the state before each. */
    const calls: { op: number; state: number; forced: boolean }[] = [];
    let stuck: Stuck | undefined;
    let steps = 0;
    const startedAt = performance.now();

    /** Lifts op `c` (taking the register to `after`) unless that configuration was seen. */
    const tryLift = (c: number, after: number, forced: boolean): boolean => {
      const hash = (setHash ^ this.#zob[c]!) >>> 0;
      const key = (hash ^ Math.imul(after + 1, 0x9e3779b1)) >>> 0;
      const w = c >>> 5;
      const bit = 1 << (c & 31);
      linearized[w]! |= bit;
      if (seen(cache, key, linearized, after)) {
        linearized[w]! &= ~bit;
        return false;
      }
      const entry = { bits: linearized.slice(), state: after };
      const bucket = cache.get(key);
      if (bucket) bucket.push(entry);
      else cache.set(key, [entry]);
      calls.push({ op: c, state, forced });
      state = after;
      setHash = hash;
      this.#lift(c);
      return true;
    };

    /**
     * Undoes lifted operations until one that had alternatives; returns the event to resume the
     * walk from, or NIL when nothing is left to try. A forced read has no alternatives: if no
     * order works after it, none works without it either (see {@link #forcedRead}).
     */
    const backtrack = (): number => {
      for (;;) {
        const top = calls.pop();
        if (!top) return NIL;
        state = top.state;
        setHash = (setHash ^ this.#zob[top.op]!) >>> 0;
        linearized[top.op >>> 5]! &= ~(1 << (top.op & 31));
        this.#unlift(top.op);
        if (!top.forced) return this.#next[top.op]!;
      }
    };

    let e = this.#next[head]!;
    let fresh = true; // a new configuration: look for a forced read first
    while (e !== NIL) {
      if (++steps > this.#budget.maxSteps) {
        return { result: "unknown", steps, reason: `budget exceeded (${steps - 1} steps)` };
      }
      if ((steps & 0xffff) === 0 && performance.now() - startedAt > this.#budget.maxMs) {
        return { result: "unknown", steps, reason: `budget exceeded (${this.#budget.maxMs} ms)` };
      }
      if (fresh) {
        fresh = false;
        const r = this.#forcedRead(state);
        if (r !== NIL) {
          if (tryLift(r, state, true)) {
            e = this.#next[head]!;
            fresh = true;
          } else {
            e = backtrack(); // this configuration was explored before and failed
            if (e === NIL) return { result: "anomaly", steps, stuck };
          }
          continue;
        }
      }
      if (e < n) {
        // A call: try to linearize op e now (reads here do not match, or they would be forced).
        const op = this.#ops[e]!;
        if (op.kind === "write" && tryLift(e, this.#valueId[e]!, false)) {
          e = this.#next[head]!;
          fresh = true;
        } else {
          e = this.#next[e]!;
        }
      } else {
        // A return: its operation was not linearized before it ended.
        if (!Number.isFinite(this.#time[e]!)) {
          // Every finite operation is placed; the open writes go last (or never).
          return { result: "ok", steps };
        }
        if (!stuck || calls.length > stuck.linearized) {
          stuck = { op: this.#ops[e - n]!, linearized: calls.length, state: this.#values[state]! };
        }
        e = backtrack();
        if (e === NIL) return { result: "anomaly", steps, stuck };
      }
    }
    return { result: "ok", steps };
  }

  /**
   * A read that may be linearized now (its call comes before the first remaining return) and
   * returned the current value, or NIL. Placing such a read next never loses a solution: it
   * changes nothing, and no remaining operation must precede it in real time, so any valid
   * order of the rest can be rewritten to start with it.
   */
  #forcedRead(state: number): number {
    const n = this.#ops.length;
    for (let e = this.#next[2 * n]!; e !== NIL && e < n; e = this.#next[e]!) {
      if (this.#ops[e]!.kind === "read" && this.#valueId[e] === state) return e;
    }
    return NIL;
  }

  /** Takes op `c`'s call and return events out of the list (their own links are kept). */
  #lift(c: number): void {
    const r = c + this.#ops.length;
    for (const e of [c, r]) {
      const p = this.#prev[e]!;
      const nx = this.#next[e]!;
      this.#next[p] = nx;
      if (nx !== NIL) this.#prev[nx] = p;
    }
  }

  /** Puts op `c`'s events back where {@link #lift} took them from (in reverse order). */
  #unlift(c: number): void {
    const r = c + this.#ops.length;
    for (const e of [r, c]) {
      const p = this.#prev[e]!;
      const nx = this.#next[e]!;
      this.#next[p] = e;
      if (nx !== NIL) this.#prev[nx] = e;
    }
  }
}

function seen(
  cache: Map<number, { bits: Uint32Array; state: number }[]>,
  key: number,
  bits: Uint32Array,
  state: number,
): boolean {
  const bucket = cache.get(key);
  if (!bucket) return false;
  outer: for (const entry of bucket) {
    if (entry.state !== state) continue;
    for (let i = 0; i < bits.length; i++) if (entry.bits[i] !== bits[i]) continue outer;
    return true;
  }
  return false;
}
