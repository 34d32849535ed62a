import assert from "node:assert/strict";
import { Http } from "./http.ts";
import { EtcdRegister, MrkvRegister } from "./register.ts";

/** A fake server answering each request with `answer(req)`; records the requests. */
function fake(answer: (req: Request) => Response | Promise<Response>) {
  const seen: { method: string; path: string; headers: Headers; body: string }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const { pathname } = new URL(req.url);
    seen.push({ method: req.method, path: pathname, headers: req.headers, body: await req.text() });
    return answer(req);
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, seen, server };
}

const err = (status: number, code: string) =>
  new Response(JSON.stringify({ error: { code, message: "x" } }), { status });

Deno.test("mrkv answers map to outcomes through the one table", async () => {
  const answers: Response[] = [];
  const f = fake(() => answers.shift()!);
  const kv = new MrkvRegister(new Http({ "x-test": "1" }), 1_000);
  const signal = new AbortController().signal;
  try {
    answers.push(new Response(null, { status: 204 }));
    assert.deepEqual(await kv.write(f.url, "k 1", "c1-1", signal), { outcome: "ok", value: null });
    assert.equal(f.seen[0]!.method, "PUT");
    assert.equal(f.seen[0]!.path, "/kv/k%201");
    assert.equal(f.seen[0]!.headers.get("x-test"), "1");

    answers.push(new Response("c1-1", { status: 200 }));
    assert.deepEqual(await kv.read(f.url, "k", signal), { outcome: "ok", value: "c1-1" });
    answers.push(err(404, "KeyNotFound"));
    assert.deepEqual(await kv.read(f.url, "k", signal), { outcome: "ok", value: null });
    answers.push(err(503, "NoLeader"));
    assert.deepEqual(await kv.write(f.url, "k", "v", signal), {
      outcome: "fail",
      value: null,
      error: "503 NoLeader",
    });
    answers.push(err(503, "Timeout"));
    assert.equal((await kv.write(f.url, "k", "v", signal)).outcome, "unknown");
    answers.push(err(500, "Internal"));
    assert.equal((await kv.write(f.url, "k", "v", signal)).outcome, "unknown");
    answers.push(new Response("<html>bad gateway</html>", { status: 502 }));
    assert.deepEqual(await kv.read(f.url, "k", signal), {
      outcome: "unknown",
      value: null,
      error: "HTTP 502",
    });
  } finally {
    await f.server.shutdown();
  }
});

Deno.test("no answer is unknown: refused connections and client timeouts", async () => {
  const kv = new MrkvRegister(new Http(), 200);
  const signal = new AbortController().signal;
  const closed = fake(() => new Response(null, { status: 204 }));
  await closed.server.shutdown();
  assert.deepEqual(await kv.write(closed.url, "k", "v", signal), {
    outcome: "unknown",
    value: null,
    error: "network",
  });

  let release = () => {};
  const slow = fake(() =>
    new Promise((r) => release = () => r(new Response(null, { status: 204 })))
  );
  try {
    assert.deepEqual(await kv.write(slow.url, "k", "v", signal), {
      outcome: "unknown",
      value: null,
      error: "timeout",
    });
  } finally {
    release();
    await slow.server.shutdown();
  }
});

Deno.test("etcd: ok answers decode, every error is unknown", async () => {
  const answers: Response[] = [];
  const f = fake(() => answers.shift()!);
  const etcd = new EtcdRegister(new Http(), 1_000);
  const signal = new AbortController().signal;
  try {
    answers.push(Response.json({ header: {} }));
    assert.equal((await etcd.write(f.url, "k", "v1", signal)).outcome, "ok");
    assert.deepEqual(JSON.parse(f.seen[0]!.body), { key: btoa("k"), value: btoa("v1") });
    answers.push(Response.json({ kvs: [{ key: btoa("k"), value: btoa("v1") }] }));
    assert.deepEqual(await etcd.read(f.url, "k", signal), { outcome: "ok", value: "v1" });
    answers.push(Response.json({ header: {} }));
    assert.deepEqual(await etcd.read(f.url, "k", signal), { outcome: "ok", value: null });
    answers.push(Response.json({ error: "etcdserver: no leader", code: 14 }, { status: 503 }));
    assert.equal((await etcd.write(f.url, "k", "v", signal)).outcome, "unknown");
  } finally {
    await f.server.shutdown();
  }
});
