/**
 * The order of a Ready pass's writes and sends, seen from outside a store: a follower
 * acknowledges appended entries once its log write has landed, without waiting for the Deno KV
 * write of what the same pass applied (store.ts, step 3). The acknowledgement vouches for the
 * log only; `tests/crash_test.ts` checks that crashes around these writes lose nothing.
 */
import assert from "node:assert/strict";
import { waitFor, withCluster } from "./cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "a follower acknowledges appends while its Deno KV write of applied data is still in flight",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      await waitFor("a leader", () => c.leaderOf(1) !== undefined);
      const leader = c.leaderOf(1)!;
      const follower = c.running().find((n) => n.store.storeId !== leader.storeId)!;
      const followerId = follower.store.storeId;
      // Every Deno KV commit of the follower takes 150 ms, so its passes overlap with appends.
      let commitsInFlight = 0;
      follower.store.engine.beforeCommit = async () => {
        commitsInFlight++;
        await new Promise((r) => setTimeout(r, 150));
      };
      follower.store.engine.afterCommit = () => {
        commitsInFlight--;
      };
      let acks = 0;
      let acksDuringCommit = 0;
      c.network.addFilter((from, _to, env) => {
        if (from === followerId && env.message.type === "MsgAppResp" && !env.message.reject) {
          acks++;
          if (commitsInFlight > 0) acksDuringCommit++;
        }
        return undefined;
      });
      // Writers in parallel, so that appends keep arriving while the follower applies.
      let stop = false;
      const writer = async (id: number) => {
        for (let n = 0; !stop && n < 200; n++) await c.put(`k${id}-${n}`, "v");
      };
      const writers = Array.from({ length: 8 }, (_, i) => writer(i));
      await waitFor(
        "acknowledgements sent during the follower's Deno KV commits",
        () => acksDuringCommit >= 3,
      ).finally(() => {
        stop = true;
      });
      await Promise.all(writers);
      follower.store.engine.beforeCommit = undefined;
      follower.store.engine.afterCommit = undefined;
      assert.ok(acks >= acksDuringCommit);
    }),
);
