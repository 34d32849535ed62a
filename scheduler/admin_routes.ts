/**
 * The admin API (docs/api.md, shaped after PD's `/pd/api/v1`): JSON in and out, snake_case.
 * Beyond the listed routes, PD's conventions add `DELETE /store/{id}` (take a store Offline),
 * `POST /store/{id}/state?state=Up|Offline`, `GET /operators/records` (ended operators) and
 * `GET /regions/check/{miss-peer|down-peer|pending-peer|no-leader}` (`region_health.ts`).
 *
 * @module
 */
import { type Context, Hono } from "hono";
import {
  expectArray,
  expectId,
  expectObject,
  expectString,
  field,
  type Fields,
  percentDecodeBytes,
} from "../proto/codec.ts";
import { MrkvError } from "../proto/errors.ts";
import { FEATURE_MERGE, MAX_KEY_BYTES } from "../proto/metapb.ts";
import { hexToBytes, operatorJson, regionJson, storeJson } from "./admin_json.ts";
import type { Cluster } from "./cluster.ts";
import { applyConfigJson, configToJson } from "./config.ts";
import { buildContext, type Coordinator } from "./coordinator.ts";
import { drainReport } from "./diagnose.ts";
import { createMergeRegionOperators } from "./operator/merge_builder.ts";
import { readJson } from "./http.ts";
import {
  type BuildContext,
  createAddPeerOperator,
  createRemovePeerOperator,
  createSplitOperator,
  createTransferLeaderOperator,
  createTransferRegionOperator,
} from "./operator/builder.ts";
import type { Operator } from "./operator/operator.ts";
import { HEALTH_PROBLEMS, parseHealthProblem, regionHealth } from "./region_health.ts";
import type { StoreInfo } from "./store_info.ts";

const API = "/pd/api/v1";

function pathId(c: Context, name: string): number {
  const raw = c.req.param(name) ?? "";
  if (!/^\d{1,15}$/.test(raw) || Number(raw) < 1) {
    throw new MrkvError(
      "BadRequest",
      `${name} must be a positive integer, got "${raw.slice(0, 40)}"`,
    );
  }
  return Number(raw);
}

/** Routes of the admin API. */
export function adminRoutes(cluster: Cluster, coordinator: Coordinator): Hono {
  const app = new Hono();
  const storeOut = (s: StoreInfo) => {
    const out = storeJson(s, cluster.stateName(s), cluster.regions.storeStats(s.meta.id));
    if (s.state !== "Offline") return out;
    // A drain that cannot finish says why, instead of leaving the store Offline silently.
    const d = drainReport(cluster, s.meta.id);
    return { ...out, drain: { regions_left: d.regionsLeft, blocked: d.blocked } };
  };

  app.get(`${API}/stores`, (c) => {
    const stores = cluster.stores().map(storeOut);
    return c.json({ count: stores.length, stores });
  });
  app.get(`${API}/store/:id`, (c) => c.json(storeOut(cluster.getStore(pathId(c, "id")))));
  app.delete(`${API}/store/:id`, async (c) => {
    return c.json(storeOut(await cluster.setStoreState(pathId(c, "id"), "Offline")));
  });
  app.post(`${API}/store/:id/state`, async (c) => {
    const state = c.req.query("state");
    if (state !== "Up" && state !== "Offline") {
      throw new MrkvError("BadRequest", `state must be Up or Offline, got "${state ?? ""}"`);
    }
    return c.json(storeOut(await cluster.setStoreState(pathId(c, "id"), state)));
  });

  app.get(`${API}/regions`, (c) => {
    const regions = cluster.regions.regions().map(regionJson);
    return c.json({ count: regions.length, regions });
  });
  app.get(`${API}/regions/check/:problem`, (c) => {
    const raw = c.req.param("problem");
    const problem = parseHealthProblem(raw);
    if (!problem) {
      throw new MrkvError(
        "NotFound",
        `no region check "${raw.slice(0, 40)}" (known: ${HEALTH_PROBLEMS.join(", ")})`,
      );
    }
    const ctx = cluster.healthContext();
    const regions = cluster.regions.regions().filter((r) => regionHealth(r, ctx).has(problem))
      .map(regionJson);
    return c.json({ count: regions.length, regions });
  });
  app.get(`${API}/region/id/:id`, (c) => c.json(regionJson(cluster.getRegion(pathId(c, "id")))));
  app.get(`${API}/region/key/*`, (c) => {
    // The raw (still percent-encoded) segment: keys are bytes, not necessarily UTF-8.
    const raw = new URL(c.req.url).pathname.slice(`${API}/region/key/`.length);
    const key = percentDecodeBytes(raw);
    if (key.length > MAX_KEY_BYTES) throw new MrkvError("BadRequest", "key is too long");
    return c.json(regionJson(cluster.getRegionByKey(key)));
  });

  app.post(`${API}/operators`, async (c) => {
    const body = expectObject(await readJson(c), "body");
    await cluster.ids.reserve(16);
    if (field(body, "name") === "merge-region") {
      const ops = buildMergeOperators(cluster, body);
      if (!cluster.operators.addMergeOperators(ops, cluster.now())) {
        throw new MrkvError(
          "BadRequest",
          `region ${ops[0].regionId} or ${ops[1].regionId} already has an admin operator running`,
        );
      }
      return c.json(operatorJson(ops[0]), 201);
    }
    const op = buildAdminOperator(cluster, body);
    if (!cluster.operators.addOperator(op, cluster.now())) {
      throw new MrkvError(
        "BadRequest",
        `region ${op.regionId} already has an admin operator running`,
      );
    }
    return c.json(operatorJson(op), 201);
  });
  app.get(`${API}/operators`, (c) => {
    const ops = cluster.operators.running().map(operatorJson);
    return c.json({ count: ops.length, operators: ops });
  });
  app.get(`${API}/operators/records`, (c) => {
    const ops = cluster.operators.history().map(operatorJson);
    return c.json({ count: ops.length, operators: ops });
  });
  app.get(`${API}/operators/:region_id`, (c) => {
    const id = pathId(c, "region_id");
    const op = cluster.operators.get(id) ?? cluster.operators.lastEnded(id);
    if (!op) throw new MrkvError("NotFound", `region ${id} has no operator`);
    return c.json(operatorJson(op));
  });
  app.delete(`${API}/operators/:region_id`, (c) => {
    const id = pathId(c, "region_id");
    const op = cluster.operators.cancel(id, cluster.now(), "cancelled by the admin API");
    if (!op) throw new MrkvError("NotFound", `region ${id} has no running operator`);
    return c.json(operatorJson(op));
  });

  app.get(`${API}/schedulers`, (c) => c.json(coordinator.schedulerNames()));
  app.post(`${API}/schedulers`, async (c) => {
    const body = expectObject(await readJson(c), "body");
    const name = expectString(field(body, "name"), "name", 100);
    await coordinator.addScheduler(name);
    return c.json({ name }, 201);
  });
  app.delete(`${API}/schedulers/:name`, async (c) => {
    const name = c.req.param("name");
    await coordinator.removeScheduler(name);
    return c.json({ name });
  });

  app.get(`${API}/config`, (c) => c.json(configToJson(cluster.config)));
  app.post(`${API}/config`, async (c) => {
    const next = applyConfigJson(cluster.config, await readJson(c));
    await cluster.storage.saveConfig(configToJson(next));
    cluster.config = next;
    return c.json(configToJson(next));
  });
  return app;
}

/** Split keys from `keys` (UTF-8 strings) and/or `keys_hex` (the builder checks them). */
function adminKeys(body: Fields): Uint8Array[] {
  const text = field(body, "keys");
  const hex = field(body, "keys_hex");
  const keys: Uint8Array[] = [];
  if (text !== undefined && text !== null) {
    const enc = new TextEncoder();
    keys.push(
      ...expectArray(text, "keys", (v, n) => enc.encode(expectString(v, n, MAX_KEY_BYTES)), 100),
    );
  }
  if (hex !== undefined && hex !== null) {
    keys.push(...expectArray(hex, "keys_hex", (v, n) => {
      const b = hexToBytes(expectString(v, n, 2 * MAX_KEY_BYTES));
      if (!b) throw new MrkvError("BadRequest", `${n} is not hex`);
      return b;
    }, 100));
  }
  return keys;
}

/**
 * The operators of a `merge-region` body (PD's shape: `source_region_id`, `target_region_id`):
 * the source's and the target's.
 */
function buildMergeOperators(cluster: Cluster, body: Fields): [Operator, Operator] {
  if (!cluster.supports(FEATURE_MERGE)) {
    throw new MrkvError("BadRequest", "not every store supports region merge yet");
  }
  const source = cluster.getRegion(expectId(field(body, "source_region_id"), "source_region_id"));
  const target = cluster.getRegion(expectId(field(body, "target_region_id"), "target_region_id"));
  return createMergeRegionOperators(
    "admin-merge-region",
    "admin",
    source,
    target,
    buildContext(cluster),
  );
}

/** Builds the operator a `POST /operators` body asks for, or throws why it cannot be done. */
function buildAdminOperator(cluster: Cluster, body: Fields): Operator {
  const name = expectString(field(body, "name"), "name", 64);
  const region = cluster.getRegion(expectId(field(body, "region_id"), "region_id"));
  const ctx: BuildContext = buildContext(cluster);
  const targetStore = (k: string) => registered(cluster, expectId(field(body, k), k));
  const desc = `admin-${name}`;
  switch (name) {
    case "transfer-leader":
      return createTransferLeaderOperator(
        desc,
        "admin",
        region,
        targetStore("to_store_id"),
        ctx,
      );
    case "add-peer":
      return createAddPeerOperator(desc, "admin", region, targetStore("store_id"), ctx);
    case "remove-peer":
      return createRemovePeerOperator(
        desc,
        "admin",
        region,
        expectId(field(body, "store_id"), "store_id"),
        ctx,
      );
    case "transfer-region": {
      const ids = expectArray(field(body, "to_store_ids"), "to_store_ids", expectId, 15);
      for (const id of ids) registered(cluster, id);
      return createTransferRegionOperator(desc, "admin", region, ids, ctx);
    }
    case "split-region":
      return createSplitOperator(desc, "admin", region, adminKeys(body), ctx);
    default:
      throw new MrkvError(
        "BadRequest",
        `unknown operator "${name}" (transfer-leader, add-peer, remove-peer, transfer-region, ` +
          `split-region, merge-region)`,
      );
  }
}

/**
 * `id` if it is a registered store, else `StoreNotFound`. (The builders refuse stores that may
 * not receive work now, e.g. Disconnected ones, with the reason.)
 */
function registered(cluster: Cluster, id: number): number {
  cluster.getStore(id);
  return id;
}
