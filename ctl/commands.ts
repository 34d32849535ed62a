/**
 * Every ctl command: its words, usage line, one-line help and what it does. Each one calls the
 * public API through {@link CtlClient} and prints either an aligned table for people or the
 * API's JSON for scripts (`--json`).
 *
 * @module
 */
import { percentEncodeBytes } from "../proto/codec.ts";
import { utf8OrNull } from "../proto/json.ts";
import { type CtlClient, CtlError } from "./client.ts";
import { type Cell, formatBytes, formatFields, formatTable } from "./table.ts";

/** Output: text lines, or raw bytes (a value from `kv get`). */
export interface Io {
  out(text: string): void;
  raw(bytes: Uint8Array): void;
}

/** Flags every command may read. */
export interface Options {
  readonly json: boolean;
  readonly hex: boolean;
  readonly all: boolean;
  readonly limit: number;
}

/** What a command runs with. */
export interface Context {
  readonly client: CtlClient;
  readonly args: readonly string[];
  readonly opts: Options;
  readonly io: Io;
}

/** One command. */
export interface Command {
  readonly words: readonly string[];
  readonly usage: string;
  readonly help: string;
  run(ctx: Context): Promise<void>;
}

// ---- shapes of the admin API's JSON (only what is read here) ----

interface PeerJson {
  id: number;
  store_id: number;
  role: string;
}
interface StoreJson {
  store: { id: number; address: string; state_name: string };
  status: {
    region_count: number;
    leader_count: number;
    region_size: number;
    capacity: number;
    available: number;
    last_heartbeat_ts: string | null;
  };
  drain?: { regions_left: number; blocked: string | null };
}
interface RegionJson {
  id: number;
  start_key?: string;
  start_key_hex?: string;
  end_key?: string;
  end_key_hex?: string;
  epoch: { conf_ver: number; version: number };
  peers: PeerJson[];
  leader: PeerJson | null;
  approximate_size_bytes: number;
  approximate_keys: number;
}
interface OperatorJson {
  region_id: number;
  desc: string;
  kind: string;
  status: string;
  steps: { type: string; desc: string }[];
  current_step: number;
  created_at: string;
  ended_at: string | null;
  reason: string;
}

// ---- helpers ----

function usageError(message: string): CtlError {
  return new CtlError("Usage", message);
}

/** Exactly `n` arguments (named for the message). */
function expectArgs(ctx: Context, names: readonly string[], optional = 0): string[] {
  const { args } = ctx;
  if (args.length < names.length - optional || args.length > names.length) {
    throw usageError(
      args.length < names.length - optional
        ? `missing ${names.slice(args.length).join(" ")}`
        : `unexpected argument "${args[names.length]}"`,
    );
  }
  return [...args];
}

/** A positive integer argument. */
function id(text: string | undefined, what: string): number {
  if (text === undefined || !/^\d{1,15}$/.test(text) || Number(text) < 1) {
    throw usageError(`${what} must be a positive integer, got "${text ?? ""}"`);
  }
  return Number(text);
}

/** A KEY argument as bytes (`--hex` for binary keys). */
function keyBytes(ctx: Context, text: string): Uint8Array {
  if (!ctx.opts.hex) return new TextEncoder().encode(text);
  try {
    return Uint8Array.fromHex(text);
  } catch {
    throw usageError(`"${text}" is not hex (--hex is set)`);
  }
}

function printJson(ctx: Context, value: unknown): void {
  ctx.io.out(JSON.stringify(value, null, 2));
}

/** A key as the admin API gave it: text, `0x…` for hex, −∞/+∞ for the open ends. */
function keyOf(r: RegionJson, field: "start_key" | "end_key"): string {
  const hex = r[`${field}_hex`];
  if (hex !== undefined) return `0x${hex}`;
  const k = r[field] ?? "";
  if (k === "") return field === "start_key" ? "-inf" : "+inf";
  return JSON.stringify(k);
}

/** A region's start key as bytes. */
function startKeyOf(r: RegionJson): Uint8Array {
  return r.start_key_hex !== undefined
    ? Uint8Array.fromHex(r.start_key_hex)
    : new TextEncoder().encode(r.start_key ?? "");
}

function peersText(r: RegionJson): string {
  return r.peers.map((p) => `${p.store_id}${p.role === "Learner" ? "(learner)" : ""}`).join(",");
}

function ago(iso: string | null): string {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 120
    ? `${s}s ago`
    : s < 7200
    ? `${Math.round(s / 60)}m ago`
    : `${Math.round(s / 3600)}h ago`;
}

function regionFields(r: RegionJson): [string, Cell][] {
  return [
    ["id", r.id],
    ["range", `[${keyOf(r, "start_key")}, ${keyOf(r, "end_key")})`],
    ["epoch", `conf_ver ${r.epoch.conf_ver}, version ${r.epoch.version}`],
    ["leader", r.leader ? `peer ${r.leader.id} on store ${r.leader.store_id}` : "none"],
    ["peers", r.peers.map((p) => `${p.id} on store ${p.store_id} (${p.role})`).join(", ")],
    ["size", formatBytes(r.approximate_size_bytes)],
    ["keys", r.approximate_keys],
  ];
}

function storeRows(stores: StoreJson[]): Cell[][] {
  return stores.map((s) => [
    s.store.id,
    s.store.address,
    s.store.state_name,
    s.status.region_count,
    s.status.leader_count,
    `${s.status.region_size} MiB`,
    s.status.capacity ? formatBytes(s.status.available) : "-",
    s.status.capacity ? formatBytes(s.status.capacity) : "-",
    ago(s.status.last_heartbeat_ts),
  ]);
}

const STORE_HEADERS = [
  "id",
  "address",
  "state",
  "regions",
  "leaders",
  "size",
  "available",
  "capacity",
  "heartbeat",
];

function printStore(ctx: Context, s: StoreJson): void {
  if (ctx.opts.json) return printJson(ctx, s);
  const fields: [string, Cell][] = [
    ["id", s.store.id],
    ["address", s.store.address],
    ["state", s.store.state_name],
    ["regions", s.status.region_count],
    ["leaders", s.status.leader_count],
    ["region size", `${s.status.region_size} MiB`],
    ["available", formatBytes(s.status.available)],
    ["capacity", formatBytes(s.status.capacity)],
    ["last heartbeat", ago(s.status.last_heartbeat_ts)],
  ];
  if (s.drain) {
    fields.push(["drain", `${s.drain.regions_left} regions left`]);
    if (s.drain.blocked) fields.push(["blocked", s.drain.blocked]);
  }
  ctx.io.out(formatFields(fields));
}

function operatorRows(ops: OperatorJson[]): Cell[][] {
  return ops.map((op) => {
    const step = op.steps[op.current_step];
    const done = op.status === "Finished" || op.status === "Cancelled" || op.status === "TimedOut";
    return [
      op.region_id,
      op.desc,
      op.kind,
      op.status,
      done
        ? `${op.steps.length} steps`
        : `${op.current_step + 1}/${op.steps.length} ${step?.desc ?? ""}`,
      ago(op.created_at),
      op.reason || "",
    ];
  });
}

function printOperator(ctx: Context, op: OperatorJson, verb = ""): void {
  if (ctx.opts.json) return printJson(ctx, op);
  const steps = op.steps.map((s, i) => {
    const mark = op.status === "Running" || op.status === "Created"
      ? i < op.current_step ? "done" : i === op.current_step ? "now " : "    "
      : "    ";
    return `  ${mark} ${i + 1}. ${s.desc}`;
  });
  ctx.io.out(
    [
      `${verb}${op.desc} on region ${op.region_id}: ${op.status}${
        op.reason ? ` (${op.reason})` : ""
      }`,
      ...steps,
    ].join("\n"),
  );
}

// ---- the commands ----

const cluster: Command = {
  words: ["cluster"],
  usage: "cluster",
  help: "ID, version, stores, regions, what the scheduler is doing",
  async run(ctx) {
    expectArgs(ctx, []);
    const c = ctx.client;
    const [info, version, stores, regions, operators, diagnose] = await Promise.all([
      c.admin<{ id: number; max_peer_count: number }>("GET", "/cluster"),
      c.admin<{ version: string }>("GET", "/version"),
      c.admin<{ stores: StoreJson[] }>("GET", "/stores"),
      c.admin<{ count: number; regions: RegionJson[] }>("GET", "/regions"),
      c.admin<{ count: number }>("GET", "/operators"),
      c.admin<{ idle: boolean; checks: { name: string; state: string; reasons: string[] }[] }>(
        "GET",
        "/diagnose",
      ),
    ]);
    if (ctx.opts.json) {
      return printJson(ctx, {
        cluster_id: info.id,
        version: version.version,
        max_replicas: info.max_peer_count,
        stores: stores.stores,
        region_count: regions.count,
        running_operators: operators.count,
        diagnose,
      });
    }
    const up = stores.stores.filter((s) => s.store.state_name === "Up").length;
    const led = regions.regions.filter((r) => r.leader).length;
    ctx.io.out(formatFields([
      ["cluster", info.id],
      ["version", version.version],
      ["scheduler", c.scheduler],
      ["max replicas", info.max_peer_count],
      ["stores", `${stores.stores.length} (${up} Up)`],
      ["regions", `${regions.count} (${led} with a leader)`],
      ["operators", `${operators.count} running`],
    ]));
    ctx.io.out("");
    ctx.io.out(formatTable(STORE_HEADERS, storeRows(stores.stores)));
    ctx.io.out("");
    ctx.io.out(formatTable(
      ["check", "state", "why"],
      diagnose.checks.map((k) => [k.name, k.state, k.reasons[0] ?? ""]),
    ));
  },
};

const storeList: Command = {
  words: ["store", "list"],
  usage: "store list",
  help: "stores: state, address, regions, leaders, size, disk",
  async run(ctx) {
    expectArgs(ctx, []);
    const r = await ctx.client.admin<{ count: number; stores: StoreJson[] }>("GET", "/stores");
    if (ctx.opts.json) return printJson(ctx, r);
    ctx.io.out(formatTable(STORE_HEADERS, storeRows(r.stores)));
  },
};

const storeShow: Command = {
  words: ["store", "show"],
  usage: "store show STORE_ID",
  help: "one store (and its drain, if Offline)",
  async run(ctx) {
    const [s] = expectArgs(ctx, ["STORE_ID"]);
    printStore(ctx, await ctx.client.admin<StoreJson>("GET", `/store/${id(s, "STORE_ID")}`));
  },
};

const storeOffline: Command = {
  words: ["store", "offline"],
  usage: "store offline STORE_ID",
  help: "drain a store; it becomes Tombstone once empty",
  async run(ctx) {
    const [s] = expectArgs(ctx, ["STORE_ID"]);
    const r = await ctx.client.admin<StoreJson>("DELETE", `/store/${id(s, "STORE_ID")}`);
    if (ctx.opts.json) return printJson(ctx, r);
    ctx.io.out(
      `store ${r.store.id} is ${r.store.state_name}: its ${r.status.region_count} replicas move to other stores; it becomes Tombstone once empty`,
    );
    if (r.drain?.blocked) ctx.io.out(`warning: the drain cannot finish now: ${r.drain.blocked}`);
  },
};

const storeOnline: Command = {
  words: ["store", "online"],
  usage: "store online STORE_ID",
  help: "cancel taking a store out (Offline → Up)",
  async run(ctx) {
    const [s] = expectArgs(ctx, ["STORE_ID"]);
    const r = await ctx.client.admin<StoreJson>(
      "POST",
      `/store/${id(s, "STORE_ID")}/state?state=Up`,
    );
    if (ctx.opts.json) return printJson(ctx, r);
    ctx.io.out(`store ${r.store.id} is ${r.store.state_name}`);
  },
};

const regionList: Command = {
  words: ["region", "list"],
  usage: "region list [--limit N]",
  help: "regions in key order: range, leader, peers, size",
  async run(ctx) {
    expectArgs(ctx, []);
    const r = await ctx.client.admin<{ count: number; regions: RegionJson[] }>("GET", "/regions");
    if (ctx.opts.json) return printJson(ctx, r);
    const shown = r.regions.slice(0, ctx.opts.limit);
    ctx.io.out(formatTable(
      ["id", "start", "end", "leader", "peers", "size", "keys"],
      shown.map((x) => [
        x.id,
        keyOf(x, "start_key"),
        keyOf(x, "end_key"),
        x.leader ? x.leader.store_id : null,
        peersText(x),
        formatBytes(x.approximate_size_bytes),
        x.approximate_keys,
      ]),
    ));
    if (r.count > shown.length) ctx.io.out(`(${r.count - shown.length} more; use --limit)`);
  },
};

const regionShow: Command = {
  words: ["region", "show"],
  usage: "region show REGION_ID",
  help: "one region: range, epoch, leader, peers",
  async run(ctx) {
    const [r] = expectArgs(ctx, ["REGION_ID"]);
    const region = await ctx.client.admin<RegionJson>("GET", `/region/id/${id(r, "REGION_ID")}`);
    if (ctx.opts.json) return printJson(ctx, region);
    ctx.io.out(formatFields(regionFields(region)));
  },
};

const regionKey: Command = {
  words: ["region", "key"],
  usage: "region key KEY",
  help: "the region holding KEY",
  async run(ctx) {
    const [k] = expectArgs(ctx, ["KEY"]);
    const path = `/region/key/${percentEncodeBytes(keyBytes(ctx, k!))}`;
    const region = await ctx.client.admin<RegionJson>("GET", path);
    if (ctx.opts.json) return printJson(ctx, region);
    ctx.io.out(formatFields(regionFields(region)));
  },
};

/** How long `region split` waits for each split to show at the scheduler. */
const SPLIT_WAIT_MS = 15_000;

/**
 * The region holding `key`, retrying while the scheduler has a gap there (a split whose new half
 * has not reported yet) until `deadline`.
 */
async function regionByKey(ctx: Context, key: Uint8Array, deadline: number): Promise<RegionJson> {
  for (;;) {
    try {
      return await ctx.client.admin<RegionJson>("GET", `/region/key/${percentEncodeBytes(key)}`);
    } catch (e) {
      if (!(e instanceof CtlError) || e.code !== "RegionNotFound" || Date.now() > deadline) throw e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

const regionSplit: Command = {
  words: ["region", "split"],
  usage: "region split KEY...",
  help: "split the region holding each KEY at that KEY, one after another",
  async run(ctx) {
    if (ctx.args.length === 0) throw usageError("missing KEY...");
    const done: RegionJson[] = [];
    for (const text of ctx.args) {
      const key = keyBytes(ctx, text);
      const deadline = Date.now() + SPLIT_WAIT_MS;
      const region = await regionByKey(ctx, key, deadline);
      if (startKeyOf(region).toHex() === key.toHex()) {
        done.push(region);
        continue; // already a boundary
      }
      const keys = utf8OrNull(key) === null ? { keys_hex: [key.toHex()] } : { keys: [text] };
      await ctx.client.admin("POST", "/operators", {
        name: "split-region",
        region_id: region.id,
        ...keys,
      });
      // One admin operator per region: wait until the scheduler sees a region starting at the
      // key before splitting at the next one.
      for (;;) {
        const now = await regionByKey(ctx, key, deadline);
        if (startKeyOf(now).toHex() === key.toHex()) {
          done.push(now);
          break;
        }
        if (Date.now() > deadline) {
          throw new CtlError(
            "Timeout",
            `region ${region.id} has not split at ${JSON.stringify(text)} after ${
              SPLIT_WAIT_MS / 1000
            } s`,
            `see: mrkv ctl operator show ${region.id}`,
          );
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (ctx.opts.json) return printJson(ctx, { regions: done });
    ctx.io.out(done.map((r) => `region ${r.id} now starts at ${keyOf(r, "start_key")}`).join("\n"));
  },
};

const OPERATOR_HEADERS = ["region", "operator", "kind", "status", "step", "created", "reason"];

const operatorList: Command = {
  words: ["operator", "list"],
  usage: "operator list [--all]",
  help: "running operators (--all: recent ended ones too)",
  async run(ctx) {
    expectArgs(ctx, []);
    const running = await ctx.client.admin<{ operators: OperatorJson[] }>("GET", "/operators");
    const ended = ctx.opts.all
      ? (await ctx.client.admin<{ operators: OperatorJson[] }>("GET", "/operators/records"))
        .operators.slice(-ctx.opts.limit)
      : [];
    const all = [...running.operators, ...ended];
    if (ctx.opts.json) return printJson(ctx, { count: all.length, operators: all });
    if (all.length === 0) return ctx.io.out("no operator is running");
    ctx.io.out(formatTable(OPERATOR_HEADERS, operatorRows(all)));
  },
};

const operatorShow: Command = {
  words: ["operator", "show"],
  usage: "operator show REGION_ID",
  help: "a region's running (or last) operator, step by step",
  async run(ctx) {
    const [r] = expectArgs(ctx, ["REGION_ID"]);
    printOperator(
      ctx,
      await ctx.client.admin<OperatorJson>("GET", `/operators/${id(r, "REGION_ID")}`),
    );
  },
};

/** Builds the body of `POST /operators` for `operator add NAME ...`. */
function operatorBody(ctx: Context): Record<string, unknown> {
  const [name, region, ...rest] = ctx.args;
  const known =
    "transfer-leader, add-peer, remove-peer, transfer-region, split-region, merge-region";
  if (name === undefined) throw usageError(`missing the operator name (${known})`);
  const regionId = id(region, "REGION_ID");
  const one = (what: string) => {
    if (rest.length !== 1) throw usageError(`${name} takes REGION_ID and ${what}`);
    return id(rest[0], what);
  };
  switch (name) {
    case "transfer-leader":
      return { name, region_id: regionId, to_store_id: one("STORE_ID") };
    case "add-peer":
    case "remove-peer":
      return { name, region_id: regionId, store_id: one("STORE_ID") };
    case "merge-region":
      return {
        name,
        source_region_id: regionId,
        target_region_id: one("TARGET_REGION_ID"),
      };
    case "transfer-region": {
      const ids = rest.flatMap((x) => x.split(",")).filter((x) => x !== "");
      if (ids.length === 0) throw usageError("transfer-region takes REGION_ID and STORE_ID...");
      return { name, region_id: regionId, to_store_ids: ids.map((x) => id(x, "STORE_ID")) };
    }
    case "split-region": {
      if (rest.length === 0) return { name, region_id: regionId };
      const keys = rest.map((k) => keyBytes(ctx, k));
      const text = keys.map(utf8OrNull);
      return text.every((t) => t !== null)
        ? { name, region_id: regionId, keys: text }
        : { name, region_id: regionId, keys_hex: keys.map((k) => k.toHex()) };
    }
    default:
      throw usageError(`unknown operator "${name}" (${known})`);
  }
}

const operatorAdd: Command = {
  words: ["operator", "add"],
  usage: "operator add NAME REGION_ID [ARGS...]",
  help: "start an operator (see below)",
  async run(ctx) {
    const op = await ctx.client.admin<OperatorJson>("POST", "/operators", operatorBody(ctx));
    printOperator(ctx, op, "added ");
  },
};

const operatorCancel: Command = {
  words: ["operator", "cancel"],
  usage: "operator cancel REGION_ID",
  help: "cancel the region's running operator",
  async run(ctx) {
    const [r] = expectArgs(ctx, ["REGION_ID"]);
    const op = await ctx.client.admin<OperatorJson>(
      "DELETE",
      `/operators/${id(r, "REGION_ID")}`,
    );
    printOperator(ctx, op, "cancelled ");
  },
};

const schedulerList: Command = {
  words: ["scheduler", "list"],
  usage: "scheduler list",
  help: "running schedulers",
  async run(ctx) {
    expectArgs(ctx, []);
    const names = await ctx.client.admin<string[]>("GET", "/schedulers");
    if (ctx.opts.json) return printJson(ctx, names);
    ctx.io.out(names.length ? names.join("\n") : "no scheduler is running");
  },
};

const schedulerAdd: Command = {
  words: ["scheduler", "add"],
  usage: "scheduler add NAME",
  help: "start a scheduler by name",
  async run(ctx) {
    const [name] = expectArgs(ctx, ["NAME"]);
    const r = await ctx.client.admin("POST", "/schedulers", { name });
    if (ctx.opts.json) return printJson(ctx, r);
    ctx.io.out(`added ${name}`);
  },
};

const schedulerRemove: Command = {
  words: ["scheduler", "remove"],
  usage: "scheduler remove NAME",
  help: "stop a scheduler",
  async run(ctx) {
    const [name] = expectArgs(ctx, ["NAME"]);
    const r = await ctx.client.admin("DELETE", `/schedulers/${encodeURIComponent(name!)}`);
    if (ctx.opts.json) return printJson(ctx, r);
    ctx.io.out(`removed ${name}`);
  },
};

function printConfig(ctx: Context, c: Record<string, number>): void {
  if (ctx.opts.json) return printJson(ctx, c);
  ctx.io.out(formatFields(Object.entries(c)));
}

const configShow: Command = {
  words: ["config", "show"],
  usage: "config show",
  help: "the scheduler's run-time config",
  async run(ctx) {
    expectArgs(ctx, []);
    printConfig(ctx, await ctx.client.admin<Record<string, number>>("GET", "/config"));
  },
};

const configSet: Command = {
  words: ["config", "set"],
  usage: "config set KEY VALUE [KEY VALUE...]",
  help: "change it, e.g. config set max-store-down-time 10m",
  async run(ctx) {
    const { args } = ctx;
    if (args.length === 0 || args.length % 2 !== 0) throw usageError("expected KEY VALUE pairs");
    const body: Record<string, string | number> = {};
    for (let i = 0; i < args.length; i += 2) {
      const v = args[i + 1]!;
      body[args[i]!.replaceAll("-", "_")] = /^\d+$/.test(v) ? Number(v) : v;
    }
    printConfig(ctx, await ctx.client.admin<Record<string, number>>("POST", "/config", body));
  },
};

const kvPut: Command = {
  words: ["kv", "put"],
  usage: "kv put KEY VALUE",
  help: "write (acknowledged once applied on a quorum)",
  async run(ctx) {
    const [k, v] = expectArgs(ctx, ["KEY", "VALUE"]);
    await ctx.client.kv(
      "PUT",
      `/kv/${percentEncodeBytes(keyBytes(ctx, k!))}`,
      new TextEncoder().encode(v),
    );
    if (ctx.opts.json) return printJson(ctx, { ok: true });
    ctx.io.out("OK");
  },
};

const kvGet: Command = {
  words: ["kv", "get"],
  usage: "kv get KEY",
  help: "print a value (exit 3 if absent)",
  async run(ctx) {
    const [k] = expectArgs(ctx, ["KEY"]);
    const key = keyBytes(ctx, k!);
    const res = await ctx.client.kv("GET", `/kv/${percentEncodeBytes(key)}`);
    const value = new Uint8Array(await res.arrayBuffer());
    const text = utf8OrNull(value);
    if (ctx.opts.json) {
      return printJson(ctx, {
        key: utf8OrNull(key) ?? undefined,
        key_base64: utf8OrNull(key) === null ? key.toBase64() : undefined,
        ...(text === null ? { value_base64: value.toBase64() } : { value: text }),
      });
    }
    // Text gets a newline for the terminal; binary is written exactly as stored.
    if (text !== null) ctx.io.out(text);
    else ctx.io.raw(value);
  },
};

const kvDelete: Command = {
  words: ["kv", "delete"],
  usage: "kv delete KEY",
  help: "delete (an absent key is not an error)",
  async run(ctx) {
    const [k] = expectArgs(ctx, ["KEY"]);
    await ctx.client.kv("DELETE", `/kv/${percentEncodeBytes(keyBytes(ctx, k!))}`);
    if (ctx.opts.json) return printJson(ctx, { ok: true });
    ctx.io.out("OK");
  },
};

const kvScan: Command = {
  words: ["kv", "scan"],
  usage: "kv scan [START [END]] [--limit N]",
  help: "pairs in [START, END), in key order",
  async run(ctx) {
    const [start = "", end] = expectArgs(ctx, ["START", "END"], 2);
    const q = new URLSearchParams({ encoding: "base64", limit: String(ctx.opts.limit) });
    q.set("start", keyBytes(ctx, start).toBase64());
    if (end !== undefined) q.set("end", keyBytes(ctx, end).toBase64());
    const res = await ctx.client.kv("GET", `/kv?${q}`);
    const page = await res.json() as { kvs: { key: string; value: string }[]; next: string | null };
    const pairs = page.kvs.map((p) => ({
      key: Uint8Array.fromBase64(p.key),
      value: Uint8Array.fromBase64(p.value),
    }));
    // Text as text; binary, or text with control characters, as hex.
    const show = (b: Uint8Array) => {
      const t = utf8OrNull(b);
      return t === null || [...t].some((ch) => ch < " " || ch === "\x7f") ? `0x${b.toHex()}` : t;
    };
    if (ctx.opts.json) {
      return printJson(ctx, {
        kvs: pairs.map((p) => ({ key: show(p.key), value: show(p.value) })),
        next: page.next === null ? null : show(Uint8Array.fromBase64(page.next)),
      });
    }
    ctx.io.out(formatTable(["key", "value"], pairs.map((p) => [show(p.key), show(p.value)])));
    if (page.next !== null) {
      ctx.io.out(`(more from ${show(Uint8Array.fromBase64(page.next))}; raise --limit)`);
    }
  },
};

/** Every command, in `--help` order. */
export const COMMANDS: readonly Command[] = [
  cluster,
  storeList,
  storeShow,
  storeOffline,
  storeOnline,
  regionList,
  regionShow,
  regionKey,
  regionSplit,
  operatorList,
  operatorShow,
  operatorAdd,
  operatorCancel,
  schedulerList,
  schedulerAdd,
  schedulerRemove,
  configShow,
  configSet,
  kvPut,
  kvGet,
  kvDelete,
  kvScan,
];
