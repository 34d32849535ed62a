/**
 * The ctl against a live in-process cluster (a real scheduler over HTTP, three stores whose KV
 * API is reached through their apps), as a person and a script would use it: tables, `--json`,
 * exit codes and error messages. One run through `main.ts ctl` as a real process checks that
 * the compiled entry has it.
 */
import assert from "node:assert/strict";
import { type TestCluster, waitFor, withCluster } from "../tests/cluster.ts";
import { runMain } from "../tests/process_cluster.ts";
import { startHttpCluster } from "../tests/http_cluster.ts";
import type { Fetch } from "./client.ts";
import { EXIT, runCtl } from "./mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Real HTTP to the scheduler; a store's address (127.0.0.1:30001+slot) goes to its app. */
function fetchVia(c: TestCluster): Fetch {
  return async (url, init) => {
    const u = new URL(url);
    const slot = Number(u.port) - 30001;
    if (u.hostname === "127.0.0.1" && slot >= 0 && slot < c.storeCount) {
      const node = c.nodes[slot];
      if (!node) throw new TypeError("fetch failed", { cause: new Error("connection refused") });
      return await node.app.fetch(new Request(url, init));
    }
    return await fetch(url, init);
  };
}

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Runs `mrkv ctl ...args` against `c`. */
async function ctl(c: TestCluster, ...args: string[]): Promise<Run> {
  const out: Uint8Array[] = [];
  let err = "";
  const code = await runCtl(args, {
    stdout: (b) => out.push(b.slice()),
    stderr: (t) => err += t,
    env: (n) => (n === "MRKV_SCHEDULER" ? `http://${c.scheduler.addr}` : undefined),
    fetch: fetchVia(c),
  });
  const text = new TextDecoder().decode(new Uint8Array(out.flatMap((b) => [...b])));
  return { code, out: text, err };
}

/** Runs and requires exit 0; returns stdout. */
async function ok(c: TestCluster, ...args: string[]): Promise<string> {
  const r = await ctl(c, ...args);
  assert.equal(r.code, 0, `mrkv ctl ${args.join(" ")}: exit ${r.code}, stderr ${r.err}`);
  return r.out;
}

async function json<T = Record<string, unknown>>(c: TestCluster, ...args: string[]): Promise<T> {
  return JSON.parse(await ok(c, ...args, "--json")) as T;
}

Deno.test(
  "ctl: cluster, stores and regions as aligned tables and as JSON",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      const ids = [0, 1, 2].map((i) => c.storeId(i));
      const overview = await ok(c, "cluster");
      assert.match(overview, /^cluster\s+\d+$/m);
      assert.match(overview, /^stores\s+3 \(3 Up\)$/m);
      assert.match(overview, /^ID\s+ADDRESS\s+STATE\s+REGIONS\s+LEADERS/m);
      for (const id of ids) {
        assert.match(overview, new RegExp(`^\\s*${id}\\s+127\\.0\\.0\\.1:3000\\d\\s+Up\\s`, "m"));
      }
      assert.match(overview, /^replica-checker\s+(idle|working)\s/m);
      const cj = await json<{ cluster_id: number; stores: unknown[] }>(c, "cluster");
      assert.equal(cj.cluster_id, c.scheduler.cluster.clusterId);
      assert.equal(cj.stores.length, 3);

      // Columns line up: every row of the store table is as wide as its header's columns say.
      const table = (await ok(c, "store", "list")).trimEnd().split("\n");
      assert.equal(table.length, 4);
      const addrCol = table[0]!.indexOf("ADDRESS");
      for (const row of table.slice(1)) {
        assert.equal(row.indexOf("127.0.0.1"), addrCol, row);
      }

      const show = await ok(c, "store", "show", String(ids[1]));
      assert.match(show, new RegExp(`^id\\s+${ids[1]}$`, "m"));
      assert.match(show, /^capacity\s+\d+(\.\d)? [KMGT]iB$/m, "real disk capacity");

      const regions = await json<{ count: number; regions: { id: number }[] }>(c, "region", "list");
      assert.equal(regions.count, 1);
      assert.match(await ok(c, "region", "show", "1"), /^range\s+\[-inf, \+inf\)$/m);
      assert.match(await ok(c, "region", "key", "anything"), /^id\s+1$/m);
    }),
);

Deno.test(
  "ctl: kv put, get, scan, delete; a missing key exits 3",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      assert.equal(await ok(c, "kv", "put", "greeting", "hello world"), "OK\n");
      assert.equal(await ok(c, "kv", "put", "k2", "v2"), "OK\n");
      assert.equal(await ok(c, "kv", "get", "greeting"), "hello world\n");
      assert.deepEqual(await json(c, "kv", "get", "k2"), { key: "k2", value: "v2" });
      const scan = await ok(c, "kv", "scan", "a", "z");
      assert.match(scan, /^KEY\s+VALUE$/m);
      assert.match(scan, /^greeting\s+hello world$/m);
      assert.match(scan, /^k2\s+v2$/m);
      const limited = await ok(c, "kv", "scan", "--limit", "1");
      assert.match(limited, /^\(more from 0x6772656574696e6700; raise --limit\)$/m);
      assert.equal(await ok(c, "kv", "put", "--hex", "00ff", "bin"), "OK\n");
      assert.equal(await ok(c, "kv", "get", "--hex", "00ff"), "bin\n");
      assert.equal(await ok(c, "kv", "delete", "greeting"), "OK\n");
      const missing = await ctl(c, "kv", "get", "greeting");
      assert.equal(missing.code, EXIT.notFound, missing.err);
      assert.match(missing.err, /^mrkv ctl: KeyNotFound: key not found$/m);
    }),
);

Deno.test(
  "ctl: operators — split, transfer leader, list, show, cancel; refusals say why",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      const added = await ok(c, "operator", "add", "split-region", "1", "m");
      assert.match(added, /^added admin-split-region on region 1: (Created|Running)/m);
      await waitFor(
        "two regions",
        async () => (await json<{ count: number }>(c, "region", "list")).count === 2,
      );
      const right = await json<{ id: number; start_key: string }>(c, "region", "key", "z");
      assert.notEqual(right.id, 1);
      assert.equal(right.start_key, "m");
      const list = await ok(c, "region", "list");
      assert.match(list, /^\s*1\s+-inf\s+"m"\s/m);
      // `region split` finds each key's region and waits for every split in turn.
      const split = await ok(c, "region", "split", "d", "h", "m");
      assert.match(split, /now starts at "d"\n.*now starts at "h"\n.*now starts at "m"$/m);
      assert.equal((await json<{ count: number }>(c, "region", "list")).count, 4);

      // Transfer region 1's leadership to a store holding a follower.
      const r1 = await json<{ leader: { store_id: number }; peers: { store_id: number }[] }>(
        c,
        "region",
        "show",
        "1",
      );
      const target = r1.peers.find((p) => p.store_id !== r1.leader.store_id)!.store_id;
      await ok(c, "operator", "add", "transfer-leader", "1", String(target));
      await waitFor(
        `store ${target} to lead region 1`,
        async () =>
          (await json<{ leader: { store_id: number } | null }>(c, "region", "show", "1")).leader
            ?.store_id === target,
      );
      await waitFor(
        "the transfer to finish",
        async () => /: Finished/.test(await ok(c, "operator", "show", "1")),
      );
      const all = await ok(c, "operator", "list", "--all");
      assert.match(all, /^REGION\s+OPERATOR\s+KIND\s+STATUS/m);
      assert.match(all, /^\s*1\s+admin-transfer-leader\s+admin\s+Finished/m);

      const refused = await ctl(c, "operator", "add", "transfer-leader", "1", String(target));
      assert.equal(refused.code, EXIT.failed);
      assert.match(refused.err, new RegExp(`BadRequest: store ${target} already leads region 1`));
      const none = await ctl(c, "operator", "cancel", "1");
      assert.equal(none.code, EXIT.notFound);
      assert.match(none.err, /has no running operator/);
      const unknown = await ctl(c, "operator", "add", "scatter-region", "1", "2");
      assert.equal(unknown.code, EXIT.usage);
      assert.match(unknown.err, /unknown operator "scatter-region" \(transfer-leader, add-peer/);

      // Merge the region starting at "d" back into region 1, which ends there.
      const d = await json<{ id: number }>(c, "region", "key", "d");
      const notAdjacent = await ctl(c, "operator", "add", "merge-region", "1", String(right.id));
      assert.equal(notAdjacent.code, EXIT.failed);
      assert.match(notAdjacent.err, /not adjacent/);
      const merging = await ok(c, "operator", "add", "merge-region", String(d.id), "1");
      assert.match(merging, new RegExp(`^added admin-merge-region on region ${d.id}`, "m"));
      await waitFor(
        "region 1 to take the range up to h",
        async () => (await json<{ id: number }>(c, "region", "key", "e")).id === 1,
      );
      assert.equal((await json<{ count: number }>(c, "region", "list")).count, 3);
    }),
);

Deno.test(
  "ctl: schedulers, config, taking a store offline that cannot be drained",
  opts,
  () =>
    withCluster({ stores: 3 }, async (c) => {
      assert.deepEqual(await json<string[]>(c, "scheduler", "list"), [
        "balance-region-scheduler",
        "balance-leader-scheduler",
        "hot-region-scheduler",
      ]);
      assert.equal(
        await ok(c, "scheduler", "remove", "balance-leader-scheduler"),
        "removed balance-leader-scheduler\n",
      );
      assert.equal(
        await ok(c, "scheduler", "add", "balance-leader-scheduler"),
        "added balance-leader-scheduler\n",
      );
      const set = await json<{ max_store_down_time: number }>(
        c,
        "config",
        "set",
        "max-store-down-time",
        "10m",
      );
      assert.equal(set.max_store_down_time, 600_000);
      assert.match(await ok(c, "config", "show"), /^max_store_down_time\s+600000$/m);
      const bad = await ctl(c, "config", "set", "max-replicas", "0");
      assert.equal(bad.code, EXIT.failed);
      assert.match(bad.err, /BadRequest: max_replicas/);

      const id = c.storeId(2);
      const off = await ok(c, "store", "offline", String(id));
      assert.match(off, new RegExp(`^store ${id} is Offline`, "m"));
      assert.match(
        off,
        /^warning: the drain cannot finish now: no Up store without a replica of region 1/m,
      );
      assert.match(
        await ok(c, "store", "show", String(id)),
        /^blocked\s+no Up store without a replica/m,
      );
      assert.equal(await ok(c, "store", "online", String(id)), `store ${id} is Up\n`);
    }),
);

Deno.test(
  "ctl: usage errors exit 2, a missing store exits 3, an unreachable scheduler exits 1 with a hint",
  opts,
  () =>
    withCluster({ stores: 1, maxReplicas: 1 }, async (c) => {
      const badId = await ctl(c, "store", "show", "abc");
      assert.equal(badId.code, EXIT.usage);
      assert.match(
        badId.err,
        /STORE_ID must be a positive integer, got "abc"\nusage: mrkv ctl store show STORE_ID/,
      );
      const unknown = await ctl(c, "stores");
      assert.equal(unknown.code, EXIT.usage);
      assert.match(unknown.err, /unknown command "stores"/);
      const typo = await ctl(c, "store", "lst");
      assert.equal(typo.code, EXIT.usage);
      assert.match(typo.err, /try:\n {2}mrkv ctl store list/);
      const flag = await ctl(c, "store", "list", "--jsn");
      assert.equal(flag.code, EXIT.usage);
      assert.match(flag.err, /unknown flag --jsn/);
      const missing = await ctl(c, "store", "show", "999");
      assert.equal(missing.code, EXIT.notFound);
      assert.match(
        missing.err,
        /StoreNotFound: store 999 is not registered\n {2}hint: list the stores/,
      );
      const help = await ctl(c, "store", "--help");
      assert.equal(help.code, 0);
      assert.match(help.out, /usage: mrkv ctl store offline STORE_ID/);

      const port = (() => {
        const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        const p = (l.addr as Deno.NetAddr).port;
        l.close();
        return p;
      })();
      const down = await ctl(c, "--scheduler", `http://127.0.0.1:${port}`, "cluster");
      assert.equal(down.code, EXIT.failed);
      assert.match(
        down.err,
        new RegExp(
          `cannot reach http://127.0.0.1:${port}: connection refused\\n  hint: is the scheduler running\\?`,
        ),
      );
    }),
);

Deno.test(
  "ctl: `main.ts ctl` in a real process, as the compiled binary runs it",
  opts,
  () =>
    withCluster({ stores: 1, maxReplicas: 1 }, async (c) => {
      const list = await runMain([
        "ctl",
        "--scheduler",
        `http://${c.scheduler.addr}`,
        "store",
        "list",
      ]);
      assert.equal(list.code, 0, list.stderr);
      assert.match(
        list.stdout,
        new RegExp(`^\\s*${c.storeId(0)}\\s+127\\.0\\.0\\.1:30001\\s+Up`, "m"),
      );
      const version = await runMain(["ctl", "--version"]);
      assert.match(version.stdout, /^mrkv ctl \d+\.\d+\.\d+ \(deno /);
      const usage = await runMain(["ctl"]);
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /^usage: mrkv ctl/);
    }),
);

Deno.test(
  "ctl: a secure cluster needs the admin credential, from the secret or a header file",
  opts,
  async () => {
    const c = await startHttpCluster(1);
    try {
      const run = async (env: Record<string, string>, ...args: string[]) => {
        let out = "", err = "";
        const code = await runCtl(args, {
          stdout: (b) => out += new TextDecoder().decode(b),
          stderr: (t) => err += t,
          env: (n) => ({ MRKV_SCHEDULER: c.schedulerUrl, ...env })[n],
        });
        return { code, out, err };
      };
      // A secret file that cannot be read is a usage error; a client token is not enough.
      const none = await run(
        {},
        "--cluster-secret-file",
        `${c.dir}/missing.secret`,
        "store",
        "list",
      );
      assert.equal(none.code, EXIT.usage);
      assert.match(none.err, /cannot read .*missing\.secret/);
      const bare = await run({ MRKV_TOKEN_FILE: `${c.dir}/client.header` }, "store", "list");
      assert.equal(bare.code, EXIT.failed, bare.err);
      assert.match(bare.err, /PermissionDenied: .*\n {2}hint: this credential may not do that/);
      const secret = await run({ MRKV_CLUSTER_SECRET_FILE: c.secretFile }, "store", "list");
      assert.equal(secret.code, 0, secret.err);
      assert.match(secret.out, /^\s*\d+\s+127\.0\.0\.1:\d+\s+Up/m);
      const header = await run({}, "--token-file", `${c.dir}/admin.header`, "kv", "put", "k", "v");
      assert.equal(header.code, 0, header.err);
      assert.equal(
        (await run({ MRKV_CLUSTER_SECRET_FILE: c.secretFile }, "kv", "get", "k")).out,
        "v\n",
      );
    } finally {
      await c.close();
    }
  },
);
