/**
 * Hibernating regions with real processes: `kill -9` of the store whose leader sleeps. The
 * other stores stop hearing from it, wake the region and elect a new leader; a client write
 * through a survivor succeeds within about two election timeouts, and the killed store catches up
 * when it comes back.
 */
import assert from "node:assert/strict";
import { pollUntil, ProcessCluster } from "./process_cluster.ts";

interface DebugRegion {
  region: { id: number };
  role: string;
  asleep: boolean;
}

Deno.test("e2e: kill -9 of a sleeping leader's store; a survivor serves within two election timeouts", async () => {
  const c = await ProcessCluster.start({ stores: 3 });
  try {
    const get = async (i: number, path: string) => {
      const res = await fetch(`${c.storeUrl(i)}${path}`, {
        headers: c.adminHeaders(),
        signal: AbortSignal.timeout(5_000),
      });
      return { status: res.status, text: await res.text() };
    };
    const put = async (i: number, key: string, value: string) => {
      const res = await fetch(`${c.storeUrl(i)}/kv/${key}`, {
        method: "PUT",
        body: value,
        headers: c.clientHeaders(),
        signal: AbortSignal.timeout(15_000),
      });
      await res.body?.cancel();
      return res.status;
    };
    const region1 = async (i: number): Promise<DebugRegion | undefined> => {
      const body = JSON.parse((await get(i, "/debug/regions")).text) as { regions: DebugRegion[] };
      return body.regions.find((r) => r.region.id === 1);
    };
    await c.waitRegionVoters(1, 3);
    assert.equal(await put(0, "k", "1"), 204);
    // FAST_STORE_FLAGS: 50 ms ticks, election timeout 10 ticks: regions sleep after 1 s idle.
    const leaderSlot = await pollUntil("region 1 to sleep on every store", async () => {
      const rs = await Promise.all([0, 1, 2].map(region1));
      if (!rs.every((r) => r?.asleep)) return undefined;
      const i = rs.findIndex((r) => r!.role === "Leader");
      return i >= 0 ? i : undefined;
    }, { timeoutMs: 20_000, intervalMs: 100 });
    const killedId = c.storeId(leaderSlot);
    assert.equal((await c.crashStore(leaderSlot)).signal, "SIGKILL");
    const survivor = (leaderSlot + 1) % 3;
    const t0 = performance.now();
    assert.equal(await put(survivor, "k", "2"), 204);
    const ms = performance.now() - t0;
    // A silent store is down after one election timeout (500 ms); the election takes at most
    // one more; the rest is slack for a loaded machine.
    assert.ok(ms < 2_500, `the first write after the kill took ${ms.toFixed(0)} ms`);
    const other = [0, 1, 2].find((i) => i !== leaderSlot && i !== survivor)!;
    const roles = await Promise.all([survivor, other].map(region1));
    assert.equal(roles.filter((r) => r?.role === "Leader").length, 1, "one new leader");

    c.startStore(leaderSlot);
    assert.equal(await c.waitStoreUp(leaderSlot), killedId);
    await pollUntil("the restarted store to hold the write", async () => {
      const r = await get(leaderSlot, "/debug/kv/k");
      return r.status === 200 && r.text === "2" || undefined;
    }, { timeoutMs: 20_000 });
  } catch (e) {
    console.error(c.output());
    throw e;
  } finally {
    await c.close();
  }
});
