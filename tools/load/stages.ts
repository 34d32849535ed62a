/**
 * Where one write's time goes, from the stores' `/metrics` before and after a load run: the
 * means of the latency histograms and counters along a write's path, per store, and the stores'
 * CPU per write. Used by tools/write_stages.ts; pure, so it is tested on fixed texts.
 *
 * @module
 */

/** One Prometheus text exposition, as sample name (with labels) → value. */
export type Samples = ReadonlyMap<string, number>;

/** Parses the sample lines of a Prometheus text exposition (comments and bad lines skipped). */
export function parseSamples(text: string): Samples {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line.trim());
    if (!m) continue;
    const v = Number(m[2]);
    if (Number.isFinite(v)) out.set(m[1]!, v);
  }
  return out;
}

/** One store's stages over the run: means in milliseconds (undefined: nothing observed). */
export interface StoreStages {
  readonly leader: boolean;
  /** Client writes this store answered itself or forwarded (`forwarded="false"`). */
  readonly clientWriteMs?: number;
  /** Writes another store forwarded to this one, the leader (`forwarded="true"`). */
  readonly forwardedWriteMs?: number;
  readonly proposeApplyMs?: number;
  /** A Ready pass's writes: the log and Deno KV together. */
  readonly passWriteMs?: number;
  /** A Raft log write, with its `fdatasync` when it had one. */
  readonly logWriteMs?: number;
  /** One Raft batch, sent until acknowledged (or answered, when POSTed). */
  readonly raftSendMs?: number;
  readonly writes: number;
  readonly entriesApplied: number;
  readonly logFsyncs: number;
  readonly raftSends: number;
  readonly readyPasses: number;
  readonly cpuSeconds: number;
}

const CLIENT_PUT = 'mrkv_kv_request_duration_seconds{op="put",code="204",forwarded="false"}';
const FORWARDED_PUT = 'mrkv_kv_request_duration_seconds{op="put",code="204",forwarded="true"}';
const RAFT_SEND_OK = 'mrkv_raft_send_duration_seconds{result="ok"}';

/** One store's stages between two expositions of its `/metrics`. */
export function storeStages(before: Samples, after: Samples): StoreStages {
  const delta = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
  /** Mean of a histogram in ms; `series` is the name with its labels, if any. */
  const mean = (series: string): number | undefined => {
    const brace = series.indexOf("{");
    const [base, labels] = brace < 0 ? [series, ""] : [series.slice(0, brace), series.slice(brace)];
    const n = delta(`${base}_count${labels}`);
    return n > 0 ? (1000 * delta(`${base}_sum${labels}`)) / n : undefined;
  };
  const logWrites = delta("mrkv_raft_log_writes_total");
  const proposeApplyCount = delta("mrkv_propose_apply_duration_seconds_count");
  return {
    leader: proposeApplyCount > 0,
    clientWriteMs: mean(CLIENT_PUT),
    forwardedWriteMs: mean(FORWARDED_PUT),
    proposeApplyMs: mean("mrkv_propose_apply_duration_seconds"),
    passWriteMs: mean("mrkv_engine_write_duration_seconds"),
    logWriteMs: logWrites > 0
      ? (1000 * delta("mrkv_raft_log_write_seconds_total")) / logWrites
      : undefined,
    raftSendMs: mean(RAFT_SEND_OK),
    writes: delta(
      `mrkv_kv_request_duration_seconds_count${CLIENT_PUT.slice(CLIENT_PUT.indexOf("{"))}`,
    ),
    entriesApplied: delta("mrkv_entries_applied_total"),
    logFsyncs: delta("mrkv_raft_log_fsyncs_total"),
    raftSends: delta(
      `mrkv_raft_send_duration_seconds_count${RAFT_SEND_OK.slice(RAFT_SEND_OK.indexOf("{"))}`,
    ),
    readyPasses: delta("mrkv_ready_passes_total"),
    cpuSeconds: delta("process_cpu_seconds_total"),
  };
}

/** A Markdown table of every store's stages, and the cluster's CPU per write. */
export function stagesTable(stores: readonly { name: string; stages: StoreStages }[]): string {
  const ms = (v: number | undefined) => (v === undefined ? "–" : v.toFixed(2));
  const writes = stores.reduce((n, s) => n + s.stages.writes, 0);
  const per = (v: number) => (writes > 0 ? (v / writes).toFixed(2) : "–");
  const rows = [
    "| store | role | client write | forwarded write | propose → apply | pass write (log ∥ KV) | log write | Raft batch | per write: log fsyncs, Raft batches, passes, CPU ms |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const { name, stages: s } of stores) {
    rows.push(
      `| ${name} | ${s.leader ? "leader" : "follower"} | ${ms(s.clientWriteMs)} | ` +
        `${ms(s.forwardedWriteMs)} | ${ms(s.proposeApplyMs)} | ${ms(s.passWriteMs)} | ` +
        `${ms(s.logWriteMs)} | ${ms(s.raftSendMs)} | ${per(s.logFsyncs)}, ${per(s.raftSends)}, ` +
        `${per(s.readyPasses)}, ${per(1000 * s.cpuSeconds)} |`,
    );
  }
  const cpu = stores.reduce((n, s) => n + s.stages.cpuSeconds, 0);
  return `${rows.join("\n")}\n\nTimes are means in ms. ${writes} client writes; all stores' CPU: ` +
    `${per(1000 * cpu)} ms per write.`;
}
