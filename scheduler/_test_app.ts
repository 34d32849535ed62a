/**
 * Test helpers for the HTTP layer: an app over an in-memory cluster, and calls to the internal
 * CBOR API and the admin JSON API through `app.request()`.
 *
 * @module
 */
import type { Hono } from "hono";
import { CBOR_CONTENT_TYPE, decodeCbor, encodeCbor } from "../proto/codec.ts";
import { RPC_PREFIX } from "../proto/pdpb.ts";
import { openTestCluster, type TestCluster } from "./_test_cluster.ts";
import type { ScheduleConfig } from "./config.ts";
import { Coordinator } from "./coordinator.ts";
import { schedulerApp } from "./server.ts";

/** A test cluster with its HTTP app. */
export interface TestApp extends TestCluster {
  readonly app: Hono;
  readonly coordinator: Coordinator;
}

/** Opens a cluster in memory and builds the app over it. */
export async function openTestApp(config: Partial<ScheduleConfig> = {}): Promise<TestApp> {
  const t = await openTestCluster(config);
  const coordinator = new Coordinator(t.cluster);
  return { ...t, coordinator, app: schedulerApp(t.cluster, coordinator) };
}

/** A raw internal call. */
export function rpcRaw(app: Hono, method: string, body: BodyInit | null, type = CBOR_CONTENT_TYPE) {
  return app.request(`${RPC_PREFIX}/${method}`, {
    method: "POST",
    body,
    headers: { "content-type": type },
  });
}

/** An internal call that must succeed; returns the decoded CBOR answer. */
export async function rpc(app: Hono, method: string, body: unknown = {}): Promise<unknown> {
  const res = await rpcRaw(app, method, encodeCbor(body));
  if (res.status !== 200) throw new Error(`${method}: ${res.status} ${await res.text()}`);
  return decodeCbor(new Uint8Array(await res.arrayBuffer()));
}

/** An admin call: returns status and parsed JSON. */
export async function admin(
  app: Hono,
  method: string,
  path: string,
  body?: unknown,
  // deno-lint-ignore no-explicit-any
): Promise<{ status: number; json: any }> {
  const res = await app.request(`/pd/api/v1${path}`, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });
  return { status: res.status, json: await res.json() };
}
