/**
 * Hibernating regions with real processes: `kill -9` of the store whose leader sleeps. A client
 * write through a survivor wakes the region and succeeds within about two election timeouts; a
 * region nobody asks for gets a new leader once its followers have heard nothing from the dead
 * store for ten election timeouts; the killed store catches up when it comes back.
 */
import assert from "node:assert/strict";
import { pollUntil, ProcessCluster } from "./process_cluster.ts";

interface DebugRegion {
  region: { id: number };
  role: string;
  asleep: boolean;
}

/** FAST_STORE_FLAGS: 50 ms ticks, an election timeout of 10 ticks. */
const ELECTION_MS = 500;
/** Silence after which followers of an unused region campaign (ten election timeouts). */
const FAILOVER_MS = 10 * ELECTION_MS;

/**
 * Runs `body` on a 3-store cluster whose region 1 holds `k` = "1" and sleeps on every store,
 * with the slot of its leader; prints the processes' output if it fails.
 */
async function withSleepingRegion(
  body: (t: {
    c: ProcessCluster;
    leaderSlot: number;
    put: (i: number, key: string, value: string) => Promise<number>;
    get: (i: number, path: string) => Promise<{ status: number; text: string }>;
    region1: (i: number) => Promise<DebugRegion | undefined>;
  }) => Promise<void>,
): Promise<void> {
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
    // Regions sleep after two election timeouts idle.
    const leaderSlot = await pollUntil("region 1 to sleep on every store", async () => {
      const rs = await Promise.all([0, 1, 2].map(region1));
      if (!rs.every((r) => r?.asleep)) return undefined;
      const i = rs.findIndex((r) => r!.role === "Leader");
      return i >= 0 ? i : undefined;
    }, { timeoutMs: 20_000, intervalMs: 100 });
    await body({ c, leaderSlot, put, get, region1 });
  } catch (e) {
    console.error(c.output());
    throw e;
  } finally {
    await c.close();
  }
}

Deno.test("e2e: kill -9 of a sleeping leader's store; a survivor serves within two election timeouts", () =>
  withSleepingRegion(async ({ c, leaderSlot, put, get, region1 }) => {
    const killedId = c.storeId(leaderSlot);
    assert.equal((await c.crashStore(leaderSlot)).signal, "SIGKILL");
    const survivor = (leaderSlot + 1) % 3;
    const t0 = performance.now();
    assert.equal(await put(survivor, "k", "2"), 204);
    const ms = performance.now() - t0;
    // The write wakes the survivor's peer; it campaigns once it has been an election timeout
    // without news of the leader's store, and the election takes at most one more; the rest is
    // slack for a loaded machine.
    assert.ok(ms < 5 * ELECTION_MS, `the first write after the kill took ${ms.toFixed(0)} ms`);
    const other = [0, 1, 2].find((i) => i !== leaderSlot && i !== survivor)!;
    const roles = await Promise.all([survivor, other].map(region1));
    assert.equal(roles.filter((r) => r?.role === "Leader").length, 1, "one new leader");

    c.startStore(leaderSlot);
    assert.equal(await c.waitStoreUp(leaderSlot), killedId);
    await pollUntil("the restarted store to hold the write", async () => {
      const r = await get(leaderSlot, "/debug/kv/k");
      return r.status === 200 && r.text === "2" || undefined;
    }, { timeoutMs: 20_000 });
  }));

Deno.test("e2e: kill -9 of a sleeping leader's store; nobody asks, the region still fails over", () =>
  withSleepingRegion(async ({ c, leaderSlot, put, region1 }) => {
    assert.equal((await c.crashStore(leaderSlot)).signal, "SIGKILL");
    const t0 = performance.now();
    const survivors = [0, 1, 2].filter((i) => i !== leaderSlot);
    // Only the debug page is read: it does not wake a region.
    const leader = await pollUntil("a survivor to lead region 1", async () => {
      const rs = await Promise.all(survivors.map(region1));
      const i = rs.findIndex((r) => r?.role === "Leader");
      return i >= 0 ? survivors[i] : undefined;
    }, { timeoutMs: FAILOVER_MS + 10_000, intervalMs: 100 });
    const ms = performance.now() - t0;
    // Not before the store was silent for most of the failover delay: a stalled store must not
    // set off elections in every region it shares.
    assert.ok(ms > FAILOVER_MS / 2, `a survivor led after only ${ms.toFixed(0)} ms`);
    console.log(`unused region failed over ${ms.toFixed(0)} ms after the kill`);
    const t1 = performance.now();
    assert.equal(await put(leader, "k", "3"), 204);
    assert.ok(performance.now() - t1 < 5 * ELECTION_MS, "the new leader serves at once");
  }));
