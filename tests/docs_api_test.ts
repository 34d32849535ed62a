/**
 * docs/api.md documents every route both roles serve: each `METHOD /path` of the store's and
 * the scheduler's Hono apps appears in it (path parameters as `{name}`, a trailing `*` as
 * `{key}`), and every method of the internal scheduler API is named.
 */
import assert from "node:assert/strict";
import { RPC_PREFIX } from "../proto/pdpb.ts";
import type { KvService } from "../raftstore/kv_service.ts";
import { storeApp } from "../raftstore/server.ts";
import type { Store } from "../raftstore/store.ts";
import { openTestApp } from "../scheduler/_test_app.ts";

const DOC = new URL("../docs/api.md", import.meta.url);

/** `/store/:id` → `/store/{id}`, `/kv/*` → `/kv/{key}`. */
function docPath(path: string): string {
  return path.replace(/:([A-Za-z_]+)/g, "{$1}").replace(/\/\*$/, "/{key}");
}

Deno.test("docs/api.md documents every route of both roles", async () => {
  const doc = await Deno.readTextFile(DOC);
  const t = await openTestApp();
  try {
    // Building the store's routes touches neither argument; only handlers would.
    const store = storeApp({} as Store, {} as KvService);
    const routes = [...store.routes, ...t.app.routes].filter((r) => r.method !== "ALL");
    assert.ok(routes.length > 30, `found ${routes.length} routes`);
    const missing: string[] = [];
    const rpcMethods: string[] = [];
    for (const r of routes) {
      if (r.path.startsWith(`${RPC_PREFIX}/`)) {
        rpcMethods.push(r.path.slice(RPC_PREFIX.length + 1));
        continue;
      }
      const shown = `${r.method} ${docPath(r.path)}`;
      if (!doc.includes(shown)) missing.push(shown);
    }
    assert.deepEqual(missing, [], "routes missing from docs/api.md");
    assert.ok(doc.includes(`POST ${RPC_PREFIX}/{method}`));
    assert.ok(rpcMethods.length >= 10);
    for (const m of rpcMethods) assert.ok(doc.includes(`\`${m}\``), `internal method ${m}`);
  } finally {
    await t.close();
  }
});
