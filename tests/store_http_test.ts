/**
 * A store's HTTP surface as an operator sees it, on an in-process cluster: `/status`, `/metrics`
 * (latency histograms, base units, real disk figures, process metrics) and `405` for a known
 * path under the wrong method.
 */
import assert from "node:assert/strict";
import { waitFor, withCluster } from "./cluster.ts";
import { VERSION } from "../telemetry/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** The value of one sample line (`name{labels} value`) in a metrics text. */
function sample(text: string, line: string): number {
  const esc = line.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = new RegExp(`^${esc} (\\S+)$`, "m").exec(text);
  assert.ok(m, `no sample ${line} in:\n${text}`);
  return Number(m[1]);
}

/**
 * Writes through `app` and polls a hot-region route until a store reports flow as leader;
 * returns that store's entry. (Rates cover one heartbeat interval, so writes keep coming.)
 */
async function pollHot(
  app: { request(path: string, init: RequestInit): Response | Promise<Response> },
  url: string,
): Promise<{ regions_count: number; total_flow_bytes: number }> {
  let last = "";
  await waitFor("a hot region with write flow at the scheduler", async () => {
    await app.request("/kv/hot", { method: "PUT", body: "x".repeat(1000) });
    const body = await (await fetch(url)).json();
    last = JSON.stringify(body);
    return Object.keys(body.as_leader).length > 0;
  });
  return Object.values(JSON.parse(last).as_leader)[0] as {
    regions_count: number;
    total_flow_bytes: number;
  };
}

Deno.test(
  "a store's /metrics has KV, proposal, engine and send histograms and real capacity",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      const app = c.node(0).app;
      for (let i = 0; i < 5; i++) {
        const put = await app.request(`/kv/m${i}`, { method: "PUT", body: `v${i}` });
        assert.equal(put.status, 204);
      }
      assert.equal((await app.request("/kv/m0")).status, 200);
      assert.equal((await app.request("/kv/absent")).status, 404);
      await (await app.request("/kv?start=m&end=n")).json();

      const text = await (await app.request("/metrics")).text();
      assert.equal(
        sample(
          text,
          'mrkv_kv_request_duration_seconds_count{op="put",code="204",forwarded="false"}',
        ),
        5,
      );
      assert.equal(
        sample(
          text,
          'mrkv_kv_request_duration_seconds_count{op="get",code="404",forwarded="false"}',
        ),
        1,
      );
      assert.equal(
        sample(
          text,
          'mrkv_kv_request_duration_seconds_count{op="scan",code="200",forwarded="false"}',
        ),
        1,
      );
      assert.ok(sample(text, "mrkv_engine_write_duration_seconds_count") > 0);
      assert.ok(sample(text, "mrkv_store_capacity_bytes") > 0);
      assert.ok(sample(text, "mrkv_store_available_bytes") > 0);
      assert.ok(sample(text, "process_resident_memory_bytes") > 0);
      assert.match(text, /^mrkv_build_info\{version="[^"]+",role="store",/m);
      // Writes proposed on a leader are timed from proposal to apply, wherever they arrived.
      const leaderApp = c.running().find((n) => n.store.peers.get(1)?.isLeader())!;
      const leaderText = await (await leaderApp.app.request("/metrics")).text();
      assert.ok(sample(leaderText, "mrkv_propose_apply_duration_seconds_count") >= 5);
      assert.doesNotMatch(text, /_mib\b|_ms\b/, "base units only");

      // Leaders report read and write bytes; the scheduler ranks hot regions by them.
      const hot = await pollHot(app, `http://${c.scheduler.addr}/pd/api/v1/hotspot/regions/write`);
      assert.ok(hot.regions_count >= 1 && hot.total_flow_bytes > 0, JSON.stringify(hot));

      const status = await (await app.request("/status")).json();
      assert.equal(status.role, "store");
      assert.equal(status.version, VERSION);
      assert.equal(status.id, c.storeId(0));
    }),
);

Deno.test(
  "a known path under the wrong method is 405 with Allow; an unknown one is 404",
  opts,
  () =>
    withCluster({ stores: 1, maxReplicas: 1 }, async (c) => {
      const app = c.node(0).app;
      const post = await app.request("/kv/a", { method: "POST", body: "x" });
      assert.equal(post.status, 405);
      assert.equal(post.headers.get("allow"), "GET, PUT, DELETE");
      assert.equal((await post.json()).error.code, "MethodNotAllowed");
      const metrics = await app.request("/metrics", { method: "DELETE" });
      assert.equal(metrics.status, 405);
      assert.equal((await metrics.json()).error.code, "MethodNotAllowed");
      const none = await app.request("/nope");
      assert.equal(none.status, 404);
      assert.equal((await none.json()).error.code, "NotFound");
    }),
);
