import assert from "node:assert/strict";
import type { IncomingHttpHeaders } from "node:http";
import type { DirectAnswer, DirectHead } from "../proto/http_server.ts";
import { MrkvError } from "../proto/errors.ts";
import { ROUTE_HEADER } from "../proto/route_hint.ts";
import { Security } from "../proto/security.ts";
import { Registry } from "../telemetry/metrics.ts";
import { storeRouteClass } from "./intake_guard.ts";
import { kvDirectRoute, MAX_KEY_BYTES } from "./kv_direct.ts";
import type { KvService } from "./kv_service.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A KV service over a map that leads nothing: its hints name store 2. */
function fakeKv(calls: string[]): KvService {
  const data = new Map<string, Uint8Array>();
  const fake = {
    get: (key: Uint8Array) => {
      calls.push(`get ${dec.decode(key)}`);
      return Promise.resolve(data.get(dec.decode(key)) ?? null);
    },
    put: (key: Uint8Array, value: Uint8Array) => {
      calls.push(`put ${dec.decode(key)}=${dec.decode(value)}`);
      if (dec.decode(key) === "busy") throw new MrkvError("ServerIsBusy", "too busy");
      data.set(dec.decode(key), value);
      return Promise.resolve();
    },
    delete: (key: Uint8Array) => {
      calls.push(`delete ${dec.decode(key)}`);
      data.delete(dec.decode(key));
      return Promise.resolve();
    },
    routeHint: (_key: Uint8Array, always: boolean) =>
      always ? "1 1 - - 2 http://127.0.0.1:2" : undefined,
  };
  return fake as unknown as KvService;
}

/** A request's head as the listener gives it (test headers have one value each). */
function head(method: string, url: string, headers: IncomingHttpHeaders): DirectHead {
  return {
    method,
    url,
    headers,
    webHeaders: () => new Headers(Object.entries(headers) as [string, string][]),
    peer: undefined,
  };
}

function setup(open = true, secret = new Uint8Array(32).fill(7)) {
  const calls: string[] = [];
  const logged: string[] = [];
  const timer = new Registry().histogram({
    name: "t_kv_request_duration_seconds",
    help: "test",
    labels: ["op", "code", "forwarded"],
  });
  const security = new Security({ secret });
  const route = kvDirectRoute({
    kv: fakeKv(calls),
    timer,
    guard: {
      security,
      classify: storeRouteClass,
      clusterId: () => 1,
      clientRoutesOpen: open,
      log: (m) => logged.push(m),
    },
    maxValueBytes: 100,
  });
  const ask = async (
    method: string,
    url: string,
    body = "",
    headers: IncomingHttpHeaders = {},
  ): Promise<{ status: number; headers: Record<string, string>; body: string } | undefined> => {
    const answer = route(head(method, url, headers));
    if (!answer) return undefined;
    const a: DirectAnswer = await answer(enc.encode(body));
    return {
      status: a.status,
      headers: Object.fromEntries(a.headers),
      body: typeof a.body === "string" ? a.body : dec.decode(a.body ?? new Uint8Array()),
    };
  };
  /** Whether the route takes the request (without answering it). */
  const takes = (method: string, url: string, headers: IncomingHttpHeaders = {}) =>
    route(head(method, url, headers)) !== undefined;
  return { calls, logged, timer, security, ask, takes };
}

Deno.test("the direct route takes plain one-key paths and leaves the rest to the app", () => {
  const { takes: taken, calls } = setup();
  for (const url of ["/kv/a", "/kv/a%2Fb", "/kv/a/b", "/kv/key0001?x=1", "/kv/%zz", "/kv/a.b"]) {
    assert.ok(taken("GET", url), url);
  }
  assert.ok(taken("PUT", "/kv/a") && taken("DELETE", "/kv/a"));
  // Other methods, the scan, an empty key, a forwarded request (a store's, with its own checks).
  assert.ok(!taken("HEAD", "/kv/a") && !taken("POST", "/kv/a") && !taken("PATCH", "/kv/a"));
  assert.ok(!taken("GET", "/kv") && !taken("GET", "/kv/") && !taken("GET", "/kv?start=a"));
  assert.ok(!taken("PUT", "/kv/a", { "x-mrkv-forwarded": "1" }));
  // Paths URL parsing would change: dot segments (escaped or not), characters it escapes.
  for (
    const url of [
      "/kv/../a",
      "/kv/a/./b",
      "/kv/a/..",
      "/kv/%2e%2E/a",
      "/kv/.%2e",
      "/kv/a b",
      "/kv/ä",
      "/kv/a\\b",
      '/kv/a"b',
      "/kv/a#b",
      "/debug/kv/a",
      "http://host/kv/a",
    ]
  ) {
    assert.ok(!taken("GET", url), url);
  }
  assert.deepEqual(calls, [], "deciding reads nothing");
});

Deno.test("direct answers: writes 204, reads 200 or 404, hints when asked, errors as the API's", async () => {
  const { ask, calls, timer } = setup();
  assert.deepEqual(await ask("PUT", "/kv/a%2Fb", "v1"), { status: 204, headers: {}, body: "" });
  assert.deepEqual(await ask("GET", "/kv/a%2Fb?ignored"), {
    status: 200,
    headers: { "content-type": "application/octet-stream" },
    body: "v1",
  });
  const miss = await ask("GET", "/kv/none", "", { [ROUTE_HEADER]: "1" });
  assert.equal(miss?.status, 404);
  assert.equal(miss?.headers[ROUTE_HEADER], "1 1 - - 2 http://127.0.0.1:2");
  assert.equal(miss?.body, '{"error":{"code":"KeyNotFound","message":"key not found"}}\n');
  assert.deepEqual(await ask("DELETE", "/kv/a%2Fb"), { status: 204, headers: {}, body: "" });
  assert.deepEqual(calls, ["put a/b=v1", "get a/b", "get none", "delete a/b"]);

  const errors = [
    await ask("PUT", "/kv/big", "x".repeat(101)),
    await ask("GET", `/kv/${"k".repeat(MAX_KEY_BYTES + 1)}`),
    await ask("GET", "/kv/%zz"),
    await ask("PUT", "/kv/busy", "v"),
  ];
  assert.deepEqual(
    errors.map((e) => [e?.status, JSON.parse(e?.body ?? "").error.code, e?.body.endsWith("}\n")]),
    [[413, "TooLarge", true], [400, "BadRequest", true], [400, "BadRequest", true], [
      503,
      "ServerIsBusy",
      true,
    ]],
  );
  assert.equal(errors[3]?.headers["retry-after"] !== undefined, true);
  assert.equal(calls.length, 5, "nothing reached the service for the refused requests");
  // Every answer is timed, by operation and status.
  assert.equal(timer.totals({ op: "put", code: "204", forwarded: "false" }).count, 1);
  assert.equal(timer.totals({ op: "get", code: "404", forwarded: "false" }).count, 1);
  assert.equal(timer.totals({ op: "put", code: "413", forwarded: "false" }).count, 1);
});

Deno.test("with credentials required, the direct route asks the guard as the app does", async () => {
  const { ask, calls, security, logged } = setup(false);
  const none = await ask("PUT", "/kv/a", "v");
  assert.equal(none?.status, 401);
  assert.equal(JSON.parse(none?.body ?? "").error.code, "Unauthenticated");
  const admin = await ask("PUT", "/kv/a", "v", security.credentialHeaders("admin"));
  assert.equal(admin?.status, 204, "an admin credential includes the client's");
  const client = await ask("GET", "/kv/a", "", security.credentialHeaders("client"));
  assert.equal(client?.status, 200);
  const other = new Security({ secret: new Uint8Array(32).fill(9) });
  const forged = await ask("GET", "/kv/a", "", other.credentialHeaders("client"));
  assert.equal(forged?.status, 401);
  assert.deepEqual(calls, ["put a=v", "get a"]);
  assert.ok(logged.some((m) => m.startsWith("refused PUT /kv/a")), logged.join("; "));
});
