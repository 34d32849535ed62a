/**
 * A store taken Offline with nowhere for its replicas to go is logged once, with the reason,
 * and again when a new store lets the drain move.
 */
import assert from "node:assert/strict";
import { parseCommandLine } from "../config/config.ts";
import { Logger } from "../telemetry/mod.ts";
import { heartbeat, region, voter } from "../scheduler/_test_cluster.ts";
import { startScheduler } from "../scheduler/server.ts";
import { waitFor } from "./cluster.ts";

Deno.test("a stuck drain is logged once with its reason, and again when it can move", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-drain-log-" });
  const lines: string[] = [];
  const parsed = parseCommandLine([
    "--role",
    "scheduler",
    "--addr",
    "127.0.0.1:0",
    "--data-dir",
    dir,
  ]);
  assert.ok(!parsed.help);
  const s = await startScheduler(parsed.config, {
    runCoordinator: false,
    drainCheckMs: 20,
    log: new Logger({ fields: { role: "scheduler" }, sink: (l) => lines.push(l) }),
  });
  try {
    const c = s.cluster;
    for (const id of [1, 2, 3]) await c.putStore({ id, address: `127.0.0.1:${20160 + id}` });
    c.handleRegionHeartbeat(
      heartbeat(
        region(7, "", "", { confVer: 3, version: 1 }, [voter(11, 1), voter(12, 2), voter(13, 3)]),
      ),
    );
    await c.setStoreState(2, "Offline");
    const stuck = (l: string) =>
      /level=WARN/.test(l) && /store 2 is offline and cannot be drained/.test(l);
    await waitFor("the stuck drain in the log", () => lines.some(stuck));
    assert.match(
      lines.find(stuck)!,
      /role=scheduler msg="store 2 is offline and cannot be drained \(1 regions left\): no Up store without a replica of region 7: add a store, or lower max-replicas below 3"/,
    );
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(lines.filter(stuck).length, 1, "logged once, not on every check");
    await c.putStore({ id: 4, address: "127.0.0.1:20164" });
    await waitFor(
      "the drain moving again",
      () => lines.some((l) => /drain is moving again/.test(l)),
    );
  } finally {
    await s.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
