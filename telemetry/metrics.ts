/**
 * A small Prometheus registry: the one way both roles declare metrics, rendered in the text
 * exposition format (version 0.0.4) on `GET /metrics`.
 *
 * Declare each metric once on a {@link Registry}: `counter`, `gauge` or `histogram`, with a name,
 * a help line and its label names. A metric either is updated where things happen (`inc`, `set`,
 * `observe`) or reads its value at scrape time through `collect`, for figures the code already
 * keeps (a map's size, a stats field). Names follow Prometheus conventions and are checked when
 * declared: base units in the name (`_bytes`, `_seconds`), `_total` on counters and only there,
 * no `_count`/`_sum`/`_bucket` suffixes (histograms add those).
 *
 * @module
 */

/** Label values by label name. */
export type Labels = Readonly<Record<string, string | number>>;

/** What `collect` may return: one value, or one value per label set. */
export type Collected = number | readonly (readonly [Labels, number])[];

/** What every metric is declared with. */
export interface MetricOptions {
  readonly name: string;
  readonly help: string;
  /** Label names every sample must carry (in this order in the output). */
  readonly labels?: readonly string[];
}

/** A counter or gauge declaration. */
export interface ValueOptions extends MetricOptions {
  /** Read the value(s) at scrape time instead of keeping them here. */
  readonly collect?: () => Collected;
}

/** A histogram declaration. */
export interface HistogramOptions extends MetricOptions {
  /** Upper bounds, ascending; `+Inf` is added. Default {@link LATENCY_BUCKETS}. */
  readonly buckets?: readonly number[];
}

/** Latency buckets in seconds, from half a millisecond to ten seconds. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

type Kind = "counter" | "gauge" | "histogram";

interface Family {
  readonly name: string;
  readonly kind: Kind;
  readonly help: string;
  render(out: string[]): void;
}

/** The metrics of one process. */
export class Registry {
  readonly #families = new Map<string, Family>();

  /** A monotonically increasing count; the name must end in `_total`. */
  counter(opts: ValueOptions): Counter {
    this.#check(opts, "counter");
    return this.#add(new Counter(opts));
  }

  /** A value that goes up and down. */
  gauge(opts: ValueOptions): Gauge {
    this.#check(opts, "gauge");
    return this.#add(new Gauge(opts));
  }

  /** A distribution in buckets (latencies in seconds, sizes in bytes). */
  histogram(opts: HistogramOptions): Histogram {
    this.#check(opts, "histogram");
    return this.#add(new Histogram(opts));
  }

  /** Names of every declared metric, in declaration order. */
  names(): string[] {
    return [...this.#families.keys()];
  }

  /** The text exposition of every metric. */
  render(): string {
    const out: string[] = [];
    for (const f of this.#families.values()) {
      out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.kind}`);
      f.render(out);
    }
    return out.join("\n") + "\n";
  }

  #add<T extends Family>(f: T): T {
    this.#families.set(f.name, f);
    return f;
  }

  #check(opts: MetricOptions, kind: Kind): void {
    const { name } = opts;
    const fail = (why: string) => {
      throw new Error(`metric ${name}: ${why}`);
    };
    if (!NAME.test(name)) fail("not a valid Prometheus metric name");
    if (this.#families.has(name)) fail("declared twice");
    if (kind === "counter" && !name.endsWith("_total")) fail("a counter's name ends in _total");
    if (kind !== "counter" && name.endsWith("_total")) fail("only counters end in _total");
    if (/_(count|sum|bucket)$/.test(name)) fail("_count, _sum and _bucket are for histograms");
    if (/_(ms|milliseconds|mib|kib|kb|mb)(_|$)/i.test(name)) {
      fail("use base units: _seconds, _bytes");
    }
    for (const l of opts.labels ?? []) {
      if (!LABEL.test(l) || l.startsWith("__") || l === "le") fail(`bad label name "${l}"`);
    }
  }
}

/** The `{a="1",b="x"}` part of a sample, in the declared label order. */
function labelText(names: readonly string[], labels: Labels, extra = ""): string {
  const parts = names.map((n) => {
    const v = labels[n];
    if (v === undefined) throw new Error(`missing label "${n}"`);
    return `${n}="${escapeLabel(String(v))}"`;
  });
  if (extra) parts.push(extra);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** A number as the text format writes it. */
function num(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

function key(names: readonly string[], labels: Labels): string {
  return names.map((n) => String(labels[n] ?? "")).join("\u0000");
}

/** Shared by counters and gauges: values by label set, or a `collect` callback. */
abstract class ValueFamily implements Family {
  abstract readonly kind: Kind;
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly #collect?: () => Collected;
  protected readonly values = new Map<string, [Labels, number]>();

  constructor(opts: ValueOptions) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labels ?? [];
    this.#collect = opts.collect;
  }

  /** The current value for `labels` (0 if never set). */
  get(labels: Labels = {}): number {
    return this.values.get(key(this.labelNames, labels))?.[1] ?? 0;
  }

  protected update(labels: Labels, f: (old: number) => number): void {
    const k = key(this.labelNames, labels);
    const old = this.values.get(k);
    labelText(this.labelNames, labels); // throws on a missing label, here rather than at scrape
    this.values.set(k, [labels, f(old?.[1] ?? 0)]);
  }

  render(out: string[]): void {
    let samples: readonly (readonly [Labels, number])[];
    if (this.#collect) {
      // A failing figure costs its own samples, not the whole scrape.
      let v: Collected | undefined;
      try {
        v = this.#collect();
      } catch (e) {
        out.push(`# ${this.name}: collecting failed: ${escapeHelp((e as Error).message)}`);
        return;
      }
      if (typeof v !== "number" && !Array.isArray(v)) {
        out.push(`# ${this.name}: collected ${typeof v}, not a number`);
        return;
      }
      samples = typeof v === "number" ? [[{}, v]] : v;
    } else if (this.values.size === 0 && this.labelNames.length === 0) {
      samples = [[{}, 0]];
    } else {
      samples = [...this.values.values()];
    }
    for (const [labels, v] of samples) {
      out.push(`${this.name}${labelText(this.labelNames, labels)} ${num(v)}`);
    }
  }
}

/** A count that only goes up (resets only when the process restarts). */
export class Counter extends ValueFamily {
  readonly kind = "counter";

  /** Adds `by` (default 1, never negative). */
  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new Error(`counter ${this.name} cannot go down (inc by ${by})`);
    this.update(labels, (old) => old + by);
  }
}

/** A value that can go up and down. */
export class Gauge extends ValueFamily {
  readonly kind = "gauge";

  set(value: number, labels: Labels = {}): void {
    this.update(labels, () => value);
  }

  inc(labels: Labels = {}, by = 1): void {
    this.update(labels, (old) => old + by);
  }

  dec(labels: Labels = {}, by = 1): void {
    this.update(labels, (old) => old - by);
  }
}

interface HistogramSeries {
  readonly labels: Labels;
  readonly counts: number[];
  sum: number;
  count: number;
}

/** Observations counted into cumulative buckets, with their sum and count. */
export class Histogram implements Family {
  readonly kind = "histogram";
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly buckets: readonly number[];
  readonly #series = new Map<string, HistogramSeries>();

  constructor(opts: HistogramOptions) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labels ?? [];
    this.buckets = opts.buckets ?? LATENCY_BUCKETS;
    for (let i = 1; i < this.buckets.length; i++) {
      if (!(this.buckets[i]! > this.buckets[i - 1]!)) {
        throw new Error(`metric ${this.name}: buckets must be strictly ascending`);
      }
    }
  }

  /** Records one observation. */
  observe(value: number, labels: Labels = {}): void {
    const k = key(this.labelNames, labels);
    let s = this.#series.get(k);
    if (!s) {
      labelText(this.labelNames, labels);
      s = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.#series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= this.buckets[i]!) s.counts[i]!++;
    }
    s.sum += value;
    s.count++;
  }

  /** Starts timing; the returned function observes the seconds elapsed and returns them. */
  startTimer(labels: Labels = {}): (more?: Labels) => number {
    const started = performance.now();
    return (more = {}) => {
      const seconds = (performance.now() - started) / 1000;
      this.observe(seconds, { ...labels, ...more });
      return seconds;
    };
  }

  /** Count and sum observed for `labels`, for tests and summaries. */
  totals(labels: Labels = {}): { count: number; sum: number } {
    const s = this.#series.get(key(this.labelNames, labels));
    return { count: s?.count ?? 0, sum: s?.sum ?? 0 };
  }

  render(out: string[]): void {
    for (const s of this.#series.values()) {
      for (let i = 0; i < this.buckets.length; i++) {
        const le = `le="${num(this.buckets[i]!)}"`;
        out.push(`${this.name}_bucket${labelText(this.labelNames, s.labels, le)} ${s.counts[i]}`);
      }
      out.push(
        `${this.name}_bucket${labelText(this.labelNames, s.labels, 'le="+Inf"')} ${s.count}`,
      );
      out.push(`${this.name}_sum${labelText(this.labelNames, s.labels)} ${num(s.sum)}`);
      out.push(`${this.name}_count${labelText(this.labelNames, s.labels)} ${s.count}`);
    }
  }
}
