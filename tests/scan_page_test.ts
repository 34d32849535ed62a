import assert from "node:assert/strict";
import { b, str, withCluster } from "./cluster.ts";
import { MAX_SCAN_PAGE_BYTES } from "../raftstore/kv_service.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "a scan page ends at about MAX_SCAN_PAGE_BYTES of data, locally and forwarded; `next` continues it with nothing lost",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      const size = 300 * 1024;
      const keys = Array.from({ length: 10 }, (_, i) => `big${i}`);
      for (const [i, k] of keys.entries()) {
        await c.node(0).kv.put(b(k), new Uint8Array(size).fill(i));
      }
      const leader = c.nodes.findIndex((n) => n?.store.peers.get(1)?.isLeader());
      const follower = (leader + 1) % 3;
      for (const via of [leader, follower]) {
        const seen: string[] = [];
        let start: Uint8Array | null = b("big");
        let pages = 0;
        while (start !== null) {
          const page = await c.node(via).kv.scan(start, b("bih"), 10_000);
          const bytes = page.kvs.reduce((n, p) => n + p.key.length + p.value.length, 0);
          // A page stops at the first pair that reaches the budget.
          assert.ok(bytes < MAX_SCAN_PAGE_BYTES + size + 10, `page of ${bytes} bytes`);
          for (const p of page.kvs) {
            assert.equal(p.value.length, size);
            assert.equal(p.value[0], keys.indexOf(str(p.key)!));
          }
          seen.push(...page.kvs.map((p) => str(p.key)!));
          start = page.next;
          pages++;
        }
        assert.deepEqual(seen, keys, `every key once, in order (via store slot ${via})`);
        assert.ok(pages >= Math.ceil((size * keys.length) / MAX_SCAN_PAGE_BYTES), `${pages} pages`);
      }
    }),
);
