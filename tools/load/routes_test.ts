import assert from "node:assert/strict";
import { encodeRouteHint, ROUTE_HEADER, type RouteHint } from "../../proto/route_hint.ts";
import { isLoopbackUrl } from "./args.ts";
import { RouteCache } from "./routes.ts";
import { makeTarget, makeValue, type OpError } from "./targets.ts";

const enc = new TextEncoder();
const k = (s: string) => enc.encode(s);
const none = new Uint8Array(0);

function hint(start: string, end: string, version: number, url: string): RouteHint {
  return {
    regionId: 1,
    version,
    start: k(start),
    end: k(end),
    leaderStoreId: 1,
    leaderUrl: url,
  };
}

Deno.test("a route cache finds the range holding a key, ends exclusive and unbounded", () => {
  const routes = new RouteCache();
  routes.learn(hint("", "g", 2, "http://a:1"));
  routes.learn(hint("m", "", 2, "http://c:1"));
  routes.learn(hint("g", "m", 2, "http://b:1"));
  assert.equal(routes.size, 3);
  assert.equal(routes.lookup(none), "http://a:1");
  assert.equal(routes.lookup(k("f\xff")), "http://a:1");
  assert.equal(routes.lookup(k("g")), "http://b:1");
  assert.equal(routes.lookup(k("lzzz")), "http://b:1");
  assert.equal(routes.lookup(k("m")), "http://c:1");
  assert.equal(routes.lookup(k("zzzz")), "http://c:1");

  const gap = new RouteCache();
  gap.learn(hint("c", "e", 1, "http://a:1"));
  assert.equal(gap.lookup(k("b")), undefined);
  assert.equal(gap.lookup(k("e")), undefined);
  assert.equal(gap.lookup(k("d")), "http://a:1");
});

Deno.test("a newer region replaces the routes it overlaps; an older one is ignored", () => {
  const routes = new RouteCache();
  routes.learn(hint("", "", 1, "http://a:1"));
  // The region split: the right half, version 2, is led elsewhere.
  routes.learn(hint("m", "", 2, "http://b:1"));
  assert.equal(routes.size, 1);
  assert.equal(routes.lookup(k("a")), undefined, "the whole-range route was dropped");
  assert.equal(routes.lookup(k("x")), "http://b:1");
  // A late hint about the region before the split names no route back.
  routes.learn(hint("", "", 1, "http://a:1"));
  assert.equal(routes.ignored, 1);
  assert.equal(routes.lookup(k("x")), "http://b:1");
  routes.learn(hint("", "m", 2, "http://a:1"));
  assert.equal(routes.lookup(k("a")), "http://a:1");
  // A leader moved within the same version: the newer hint wins.
  routes.learn(hint("", "m", 2, "http://c:1"));
  assert.equal(routes.lookup(k("a")), "http://c:1");
  assert.equal(routes.size, 2);
});

Deno.test("a route cache forgets a store that failed, and refuses what accept refuses", () => {
  const routes = new RouteCache(isLoopbackUrl);
  routes.learn(hint("", "m", 1, "http://127.0.0.1:20161"));
  routes.learn(hint("m", "", 1, "http://10.1.2.3:20161"));
  assert.equal(routes.ignored, 1);
  assert.equal(routes.lookup(k("x")), undefined);
  routes.forget("http://127.0.0.1:20161");
  assert.equal(routes.forgotten, 1);
  assert.equal(routes.size, 0);
});

/**
 * A fake cluster: "leader" serves; the others answer too, with a hint naming the leader. Stores
 * in `down` do not answer; stores in `busy` answer 503.
 */
function fakeStores(
  leader: string,
  calls: { url: string; asked: boolean }[],
  down = new Set<string>(),
  busy = new Set<string>(),
) {
  const routeTo = encodeRouteHint({
    regionId: 1,
    version: 1,
    start: none,
    end: none,
    leaderStoreId: 9,
    leaderUrl: leader,
  })!;
  return (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = String(input);
    const headers = new Headers(init?.headers);
    calls.push({ url, asked: headers.has(ROUTE_HEADER) });
    if ([...down].some((d) => url.startsWith(d))) {
      return Promise.reject(new TypeError("fetch failed"));
    }
    if ([...busy].some((d) => url.startsWith(d))) {
      return Promise.resolve(
        new Response('{"error":{"code":"NoLeader","message":"cut off"}}', { status: 503 }),
      );
    }
    const isLeader = url.startsWith(leader);
    const hintHeader: Record<string, string> = !isLeader || headers.has(ROUTE_HEADER)
      ? { [ROUTE_HEADER]: routeTo }
      : {};
    return Promise.resolve(
      init?.method === "PUT"
        ? new Response(null, { status: 204, headers: hintHeader })
        : new Response("v", { status: 200, headers: hintHeader }),
    );
  };
}

Deno.test("with route leader, requests go to the store a hint named, and back when it fails or is busy", async () => {
  const calls: { url: string; asked: boolean }[] = [];
  const down = new Set<string>();
  const busy = new Set<string>();
  const target = makeTarget({
    kind: "mrkv",
    value: makeValue(8),
    route: "leader",
    fetch: fakeStores("http://127.0.0.1:3", calls, down, busy),
  });
  const s = AbortSignal.timeout(5_000);
  await target.put("http://127.0.0.1:1", "k1", s);
  assert.deepEqual(calls[0], { url: "http://127.0.0.1:1/kv/k1", asked: true });
  // Learned: every key now goes to the leader, whatever endpoint the runner picks, unasked.
  await target.put("http://127.0.0.1:2", "k2", s);
  assert.ok(await target.get("http://127.0.0.1:1", "k3", s));
  assert.deepEqual(calls.slice(1), [
    { url: "http://127.0.0.1:3/kv/k2", asked: false },
    { url: "http://127.0.0.1:3/kv/k3", asked: false },
  ]);
  // The leader's store stops answering: that request fails, the route is forgotten, and the
  // next request goes to the runner's endpoint again, asking.
  down.add("http://127.0.0.1:3");
  await assert.rejects(target.put("http://127.0.0.1:2", "k4", s), /fetch failed/);
  down.clear();
  await target.put("http://127.0.0.1:2", "k5", s);
  assert.deepEqual(calls.at(-1), { url: "http://127.0.0.1:2/kv/k5", asked: true });
  // Relearned; then the leader's store answers 503 (cut off from its region, say): forgotten too.
  await target.put("http://127.0.0.1:1", "k6", s);
  assert.deepEqual(calls.at(-1), { url: "http://127.0.0.1:3/kv/k6", asked: false });
  busy.add("http://127.0.0.1:3");
  await assert.rejects(
    target.put("http://127.0.0.1:1", "k7", s),
    (e: OpError) => e.kind === "503 NoLeader",
  );
  busy.clear();
  await target.put("http://127.0.0.1:1", "k8", s);
  assert.deepEqual(calls.at(-1), { url: "http://127.0.0.1:1/kv/k8", asked: true });
  assert.deepEqual(target.routeStats!(), {
    routed: 5, // k2, k3, k4, k6, k7
    unrouted: 3, // k1, k5, k8
    ranges: 1,
    learned: 3,
    ignored: 0,
    forgotten: 2,
  });
});

Deno.test("without routing, requests go where the runner says and ask for nothing", async () => {
  const calls: { url: string; asked: boolean }[] = [];
  const target = makeTarget({
    kind: "mrkv",
    value: makeValue(8),
    fetch: fakeStores("http://127.0.0.1:3", calls),
  });
  const s = AbortSignal.timeout(5_000);
  await target.put("http://127.0.0.1:1", "k1", s);
  await target.put("http://127.0.0.1:2", "k2", s);
  assert.deepEqual(calls, [
    { url: "http://127.0.0.1:1/kv/k1", asked: false },
    { url: "http://127.0.0.1:2/kv/k2", asked: false },
  ]);
  assert.throws(
    () => makeTarget({ kind: "etcd", value: makeValue(8), route: "leader" }),
    /routing to leaders is for mrkv/,
  );
});
