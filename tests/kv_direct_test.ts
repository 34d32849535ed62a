/**
 * A store's client requests on one key are answered straight from the listener
 * (`raftstore/kv_direct.ts`) rather than through the Hono app: over real HTTP, every answer
 * must be the one the app gives for the same request, on the leader's store and a follower's.
 */
import assert from "node:assert/strict";
import { ROUTE_HEADER } from "../proto/route_hint.ts";
import { settledLeader, startHttpCluster } from "./http_cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

interface Case {
  readonly method: string;
  readonly path: string;
  readonly body?: Uint8Array;
  readonly headers?: Record<string, string>;
  /** Answered by the direct route when sent to the listener. */
  readonly direct: boolean;
}

const enc = new TextEncoder();

const CASES: readonly Case[] = [
  { method: "PUT", path: "/kv/same%2F1", body: enc.encode("v1"), direct: true },
  { method: "GET", path: "/kv/same%2F1", direct: true },
  { method: "GET", path: "/kv/same%2F1", headers: { [ROUTE_HEADER]: "1" }, direct: true },
  { method: "GET", path: "/kv/absent", direct: true },
  { method: "GET", path: "/kv/absent", headers: { [ROUTE_HEADER]: "1" }, direct: true },
  { method: "DELETE", path: "/kv/gone", direct: true },
  { method: "PUT", path: `/kv/${"k".repeat(1025)}`, body: enc.encode("v"), direct: true },
  { method: "GET", path: "/kv/%zz", direct: true },
  { method: "PUT", path: "/kv/empty", body: new Uint8Array(), direct: true },
  { method: "GET", path: "/kv/empty", direct: true },
  // Left to the app: a body over 64 KiB, and a value over the limit. (Paths URL parsing would
  // change, left to the app too, cannot be sent with fetch: raftstore/kv_direct_test.ts.)
  { method: "PUT", path: "/kv/large", body: new Uint8Array(70_000).fill(1), direct: false },
  { method: "PUT", path: "/kv/huge", body: new Uint8Array((1 << 20) + 1), direct: false },
];

/** What a client can see of an answer. */
async function seen(res: Response) {
  return {
    status: res.status,
    contentType: res.headers.get("content-type"),
    route: res.headers.get(ROUTE_HEADER),
    retryAfter: res.headers.get("retry-after"),
    body: new Uint8Array(await res.arrayBuffer()),
  };
}

Deno.test(
  "direct KV answers are the app's answers, on the leader's store and a follower's",
  opts,
  async () => {
    const c = await startHttpCluster(3);
    try {
      const leader = await settledLeader(c);
      for (const i of [leader, (leader + 1) % 3]) {
        const node = c.nodes[i]!;
        const url = c.storeUrls[i]!;
        for (const k of CASES) {
          const init = (): RequestInit => ({
            method: k.method,
            headers: k.headers,
            body: k.body as Uint8Array<ArrayBuffer> | undefined,
          });
          const before = node.directAnswers;
          const viaListener = await seen(await fetch(`${url}${k.path}`, init()));
          assert.equal(node.directAnswers - before, k.direct ? 1 : 0, `${k.method} ${k.path}`);
          const viaApp = await seen(await node.app.fetch(new Request(`${url}${k.path}`, init())));
          assert.deepEqual(viaListener, viaApp, `${k.method} ${k.path} on store slot ${i}`);
        }
      }
      // The hint names the leader on the follower's answers, as the app's does.
      const follower = c.storeUrls[(leader + 1) % 3]!;
      const res = await fetch(`${follower}/kv/same%2F1`);
      assert.equal(await res.text(), "v1");
      assert.match(res.headers.get(ROUTE_HEADER) ?? "", new RegExp(`${c.storeUrls[leader]}$`));
    } finally {
      await c.close();
    }
  },
);
