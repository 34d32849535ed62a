/** A known path under the wrong method is 405 with Allow; an unknown path is 404. */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { jsonNewline, notFoundHandler } from "./routes.ts";

Deno.test("405 names the allowed methods; 404 otherwise", async () => {
  const app = new Hono();
  app.get("/kv", (c) => c.text("scan"));
  app.get("/kv/*", (c) => c.text("get"));
  app.put("/kv/*", (c) => c.text("put"));
  app.get("/store/:id", (c) => c.text("store"));
  app.use("/metrics", async (_c, next) => await next());
  app.notFound(notFoundHandler(app));

  const post = await app.request("/kv/a", { method: "POST" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, PUT");
  assert.equal((await post.json()).error.code, "MethodNotAllowed");
  const del = await app.request("/store/7", { method: "DELETE" });
  assert.equal(del.status, 405);
  assert.equal(del.headers.get("allow"), "GET");
  const scan = await app.request("/kv", { method: "DELETE" });
  assert.equal(scan.status, 405);
  assert.equal(scan.headers.get("allow"), "GET, PUT", "Hono's /kv/* also covers /kv");
  const none = await app.request("/nothing");
  assert.equal(none.status, 404);
  assert.equal((await none.json()).error.code, "NotFound");
  assert.equal((await app.request("/metrics")).status, 404, "middleware is not a route");
});

Deno.test("JSON responses end with a newline; other bodies are left alone", async () => {
  const app = new Hono();
  app.use("*", jsonNewline);
  app.get("/j", (c) => c.json({ a: 1 }));
  app.get("/t", (c) => c.text("raw"));
  app.notFound(notFoundHandler(app));
  const j = await app.request("/j");
  assert.equal(await j.text(), '{"a":1}\n');
  assert.equal(await (await app.request("/t")).text(), "raw");
  const nf = await app.request("/nothing");
  assert.match(await nf.text(), /\}\n$/);
});
