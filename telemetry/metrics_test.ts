/** The registry renders the Prometheus text format and refuses names that break its conventions. */
import assert from "node:assert/strict";
import { Registry } from "./metrics.ts";

Deno.test("counters, gauges and collected values render with HELP, TYPE and labels", () => {
  const r = new Registry();
  const c = r.counter({ name: "x_requests_total", help: "Requests.", labels: ["op"] });
  c.inc({ op: "get" });
  c.inc({ op: "get" }, 2);
  c.inc({ op: 'we"ird' });
  const g = r.gauge({ name: "x_queue", help: "Queue\nlength." });
  g.set(5);
  g.dec();
  r.gauge({
    name: "x_store_bytes",
    help: "Per store.",
    labels: ["store"],
    collect: () => [[{ store: 1 }, 10], [{ store: 2 }, 20]],
  });
  r.counter({ name: "x_passes_total", help: "Passes.", collect: () => 7 });
  assert.equal(
    r.render(),
    [
      "# HELP x_requests_total Requests.",
      "# TYPE x_requests_total counter",
      'x_requests_total{op="get"} 3',
      'x_requests_total{op="we\\"ird"} 1',
      "# HELP x_queue Queue\\nlength.",
      "# TYPE x_queue gauge",
      "x_queue 4",
      "# HELP x_store_bytes Per store.",
      "# TYPE x_store_bytes gauge",
      'x_store_bytes{store="1"} 10',
      'x_store_bytes{store="2"} 20',
      "# HELP x_passes_total Passes.",
      "# TYPE x_passes_total counter",
      "x_passes_total 7",
      "",
    ].join("\n"),
  );
  assert.throws(() => c.inc({ op: "get" }, -1), /cannot go down/);
  assert.throws(() => c.inc({}), /missing label "op"/);
});

Deno.test("a histogram counts cumulative buckets with +Inf, sum and count", () => {
  const r = new Registry();
  const h = r.histogram({
    name: "x_latency_seconds",
    help: "Latency.",
    labels: ["op"],
    buckets: [0.1, 1],
  });
  h.observe(0.05, { op: "put" });
  h.observe(0.5, { op: "put" });
  h.observe(3, { op: "put" });
  assert.deepEqual(h.totals({ op: "put" }), { count: 3, sum: 3.55 });
  assert.equal(
    r.render(),
    [
      "# HELP x_latency_seconds Latency.",
      "# TYPE x_latency_seconds histogram",
      'x_latency_seconds_bucket{op="put",le="0.1"} 1',
      'x_latency_seconds_bucket{op="put",le="1"} 2',
      'x_latency_seconds_bucket{op="put",le="+Inf"} 3',
      'x_latency_seconds_sum{op="put"} 3.55',
      'x_latency_seconds_count{op="put"} 3',
      "",
    ].join("\n"),
  );
  const stop = h.startTimer({ op: "get" });
  assert.ok(stop() >= 0);
  assert.equal(h.totals({ op: "get" }).count, 1);
});

Deno.test("names must follow Prometheus conventions: base units, _total on counters only", () => {
  const r = new Registry();
  assert.throws(() => r.counter({ name: "x_requests", help: "" }), /ends in _total/);
  assert.throws(() => r.gauge({ name: "x_things_total", help: "" }), /only counters/);
  assert.throws(() => r.gauge({ name: "x_region_count", help: "" }), /for histograms/);
  assert.throws(() => r.gauge({ name: "x_size_mib", help: "" }), /base units/);
  assert.throws(() => r.histogram({ name: "x_write_ms", help: "" }), /base units/);
  assert.throws(() => r.gauge({ name: "x-y", help: "" }), /valid/);
  assert.throws(() => r.gauge({ name: "x", help: "", labels: ["le"] }), /bad label/);
  r.gauge({ name: "x", help: "" });
  assert.throws(() => r.gauge({ name: "x", help: "" }), /declared twice/);
  assert.throws(
    () => r.histogram({ name: "h_seconds", help: "", buckets: [1, 1] }),
    /strictly ascending/,
  );
});

Deno.test("a collect callback that throws costs its own samples, not the scrape", () => {
  const r = new Registry();
  r.gauge({
    name: "x_broken",
    help: "Broken.",
    collect: () => {
      throw new Error("no disk");
    },
  });
  r.gauge({ name: "x_fine", help: "Fine.", collect: () => 1 });
  const text = r.render();
  assert.match(text, /^# x_broken: collecting failed: no disk$/m);
  assert.match(text, /^x_fine 1$/m);
});
