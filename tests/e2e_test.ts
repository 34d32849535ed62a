/**
 * End-to-end tests with real processes, started as a user starts them (docs/operations.md): one
 * `--role scheduler`, three `--role store`, every request sent over HTTP with `fetch` exactly as
 * curl would. Set `MRKV_DEBUG=1` to see the processes' output live; on failure the last lines of
 * every process are printed.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  ChildProc,
  freePorts,
  pollUntil,
  ProcessCluster,
  REPO_ROOT,
  runMain,
} from "./process_cluster.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A response with its body read (every body is read, so no connection is left dangling). */
interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Uint8Array;
  readonly text: string;
}

/**
 * One HTTP request, as curl would send it. Any 500 fails the test at once: the spec says no
 * input makes a server answer 500.
 */
async function http(
  method: string,
  url: string,
  body?: BodyInit,
  timeoutMs = 15_000,
  headers?: Record<string, string>,
): Promise<Reply> {
  const res = await fetch(url, { method, body, headers, signal: AbortSignal.timeout(timeoutMs) });
  const bytes = new Uint8Array(await res.arrayBuffer());
  const text = dec.decode(bytes);
  assert.ok(
    res.status < 500 || res.status === 503,
    `${method} ${url} answered ${res.status}: ${text}`,
  );
  return { status: res.status, headers: res.headers, body: bytes, text };
}

/** Asserts `reply` is the JSON error `{"error":{"code":code,...}}` with `status`. */
function assertError(reply: Reply, status: number, code: string, what: string): void {
  assert.equal(reply.status, status, `${what}: status (body ${reply.text})`);
  assert.match(reply.headers.get("content-type") ?? "", /application\/json/, `${what}: type`);
  const err = JSON.parse(reply.text).error;
  assert.equal(err?.code, code, `${what}: code (body ${reply.text})`);
  assert.equal(typeof err.message, "string", `${what}: message`);
}

/** Percent-encodes every byte of a key for a URL path segment. */
function keyPath(key: Uint8Array | string): string {
  const bytes = typeof key === "string" ? enc.encode(key) : key;
  return [...bytes].map((b) => "%" + b.toString(16).padStart(2, "0").toUpperCase()).join("");
}

/**
 * Sends a request until it gets an answer other than 503 or a connection error (which a client
 * must expect while a leader is being elected), within `timeoutMs`. Counts the retries.
 */
async function untilAnswered(
  what: string,
  send: (attempt: number) => Promise<Reply>,
  stats: { retries: number },
  timeoutMs = 20_000,
): Promise<Reply> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0;; attempt++) {
    let failure: string;
    try {
      const r = await send(attempt);
      if (r.status !== 503) return r;
      failure = `503 ${r.text}`;
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      failure = (e as Error).message;
    }
    stats.retries++;
    if (Date.now() > deadline || attempt >= 400) {
      throw new Error(`${what}: no answer after ${attempt + 1} attempts: ${failure}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Reads every acknowledged write back through every store (one reader per store). */
async function mustReadBack(
  c: ProcessCluster,
  acked: ReadonlyMap<string, string | null>,
  stats: { retries: number },
): Promise<void> {
  await Promise.all([...Array(c.size).keys()].map(async (i) => {
    for (const [key, value] of acked) {
      const r = await untilAnswered(
        `GET ${key} via slot ${i}`,
        () => http("GET", `${c.storeUrl(i)}/kv/${keyPath(key)}`),
        stats,
      );
      if (value === null) assertError(r, 404, "KeyNotFound", `deleted ${key} via slot ${i}`);
      else {
        assert.equal(r.status, 200, `${key} via slot ${i}: ${r.text}`);
        assert.equal(r.text, value, `${key} via slot ${i}`);
      }
    }
  }));
}

/**
 * The stores' `raft-log-gc-count-limit`: above the entries written before the first restart (so
 * that store catches up by log), below the writes of the follower step (which outrun it).
 */
const GC_LIMIT = 300;
const GC_WRITES = 400;

/** A counter from a store's `/metrics`. */
function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\d+)$`, "m").exec(text);
  assert.ok(m, `metric ${name} in ${text}`);
  return Number(m[1]);
}

/** SIGTERMs every process of `c`; each must exit with code 0. */
async function mustShutDownCleanly(c: ProcessCluster): Promise<void> {
  const exits = await c.shutdown();
  assert.equal(exits.size, c.size + 1, `every process was running: ${[...exits.keys()]}`);
  for (const [name, status] of exits) {
    assert.deepEqual(status, { code: 0, signal: null }, `${name} exit`);
  }
}

/** Runs a step; a failed step stops the scenario (later steps depend on it). */
async function mustStep(
  t: Deno.TestContext,
  name: string,
  fn: () => Promise<void>,
): Promise<void> {
  if (!(await t.step(name, fn))) throw new Error(`step failed: ${name}`);
}

Deno.test(
  "e2e: a scheduler and 3 store processes as a user starts them: KV API on every store, kill -9 and restart, SIGTERM exits 0",
  async (t) => {
    const c = await ProcessCluster.start({
      stores: 3,
      storeFlags: ["--raft-log-gc-count-limit", String(GC_LIMIT)],
    });
    const stores = [0, 1, 2];
    const url = (i: number, path: string) => `${c.storeUrl(i)}${path}`;
    /** Every write the cluster acknowledged: key → value (null: deleted). */
    const acked = new Map<string, string | null>();
    const stats = { retries: 0 };
    /** A request retried while it gets 503 or no connection (elections happen under load). */
    // With the admin credential: the debug and admin routes need it (the KV routes accept it).
    const call = (method: string, target: string, body?: string | Uint8Array<ArrayBuffer>) =>
      untilAnswered(
        `${method} ${target}`,
        () => http(method, target, body, undefined, c.adminHeaders()),
        stats,
      );
    let passed = false;
    try {
      await mustStep(t, "region 1 reaches 3 voters on 3 distinct stores", async () => {
        const r = await c.waitRegionVoters(1, 3);
        const storeIds = new Set(r.peers.map((p) => p.store_id));
        assert.deepEqual(storeIds, new Set(stores.map((i) => c.storeId(i))));
        for (const i of stores) {
          const s = JSON.parse((await call("GET", url(i, "/status"))).text);
          assert.equal(s.role, "store");
          assert.equal(s.healthy, true);
        }
        const sched = JSON.parse((await call("GET", `${c.schedulerUrl}/status`)).text);
        assert.equal(sched.role, "scheduler");
        assert.equal(sched.bootstrapped, true);
      });

      await mustStep(t, "PUT/GET/DELETE through every store", async () => {
        for (const i of stores) {
          const key = `user/put-via-${i}`;
          const put = await call("PUT", url(i, `/kv/${key}`), `value written through store ${i}`);
          assert.equal(put.status, 204, put.text);
          acked.set(key, `value written through store ${i}`);
        }
        for (const i of stores) {
          for (const j of stores) {
            const got = await call("GET", url(j, `/kv/user/put-via-${i}`));
            assert.equal(got.status, 200, got.text);
            assert.equal(got.text, `value written through store ${i}`);
            assert.equal(got.headers.get("content-type"), "application/octet-stream");
          }
        }
        // Overwrite through one store, delete through another, read through the third.
        assert.equal((await call("PUT", url(1, "/kv/user/put-via-0"), "second")).status, 204);
        acked.set("user/put-via-0", "second");
        assert.equal((await call("GET", url(2, "/kv/user/put-via-0"))).text, "second");
        assert.equal((await call("DELETE", url(2, "/kv/user/put-via-1"))).status, 204);
        acked.set("user/put-via-1", null);
        for (const j of stores) {
          assertError(
            await call("GET", url(j, "/kv/user/put-via-1")),
            404,
            "KeyNotFound",
            "deleted",
          );
          assertError(await call("GET", url(j, "/kv/never-written")), 404, "KeyNotFound", "absent");
        }
        // Deleting an absent key is not an error.
        assert.equal((await call("DELETE", url(0, "/kv/never-written"))).status, 204);
        // An empty value is a value.
        assert.equal((await call("PUT", url(0, "/kv/user/empty"), "")).status, 204);
        acked.set("user/empty", "");
        const empty = await call("GET", url(2, "/kv/user/empty"));
        assert.equal(empty.status, 200);
        assert.equal(empty.body.length, 0);
        // Keys are percent-decoded bytes: spaces, slashes, UTF-8.
        const odd = "odd key/with ü & ?#";
        assert.equal((await call("PUT", url(1, `/kv/${keyPath(odd)}`), "odd")).status, 204);
        acked.set(odd, "odd");
        assert.equal((await call("GET", url(0, `/kv/${encodeURIComponent(odd)}`))).text, "odd");
      });

      await mustStep(
        t,
        "Raft messages and forwarded requests travel on streams; followers serve reads",
        async () => {
          let forwarding = 0;
          let followerReads = 0;
          for (const i of stores) {
            const metrics = (await call("GET", url(i, "/metrics"))).text;
            assert.ok(metric(metrics, "mrkv_raft_streams_opened_total") >= 1, `store slot ${i}`);
            if (metric(metrics, "mrkv_forward_streams_opened_total") >= 1) forwarding++;
            if (metric(metrics, "mrkv_kv_follower_reads_total") >= 1) followerReads++;
          }
          // Writes through the two stores that do not lead region 1 were forwarded, and those
          // stores served the reads through them themselves.
          assert.ok(forwarding >= 2, `${forwarding} stores forwarded on a stream`);
          assert.ok(followerReads >= 2, `${followerReads} stores served follower reads`);
        },
      );

      await mustStep(t, "scan across stores, with paging and base64 for binary keys", async () => {
        const keys = Array.from({ length: 20 }, (_, i) => `scan/${String(i).padStart(3, "0")}`);
        for (const [n, key] of keys.entries()) {
          const r = await call("PUT", url(n % 3, `/kv/${key}`), `v${n}`);
          assert.equal(r.status, 204, r.text);
          acked.set(key, `v${n}`);
        }
        for (const i of stores) {
          const r = await call("GET", url(i, "/kv?start=scan/&end=scan0&limit=100"));
          assert.equal(r.status, 200, r.text);
          assert.match(r.headers.get("content-type") ?? "", /application\/json/);
          const page = JSON.parse(r.text);
          assert.deepEqual(page.kvs, keys.map((key, n) => ({ key, value: `v${n}` })));
          assert.equal(page.next, null);
        }
        // Page through with limit=6, following `next`.
        const seen: string[] = [];
        let start: string | null = "scan/";
        for (let pages = 0; start !== null; pages++) {
          assert.ok(pages < 10, "paging does not end");
          const q = `start=${encodeURIComponent(start)}&end=scan0&limit=6`;
          const r = await call("GET", url(pages % 3, `/kv?${q}`));
          assert.equal(r.status, 200, r.text);
          const page = JSON.parse(r.text) as { kvs: { key: string }[]; next: string | null };
          assert.ok(page.kvs.length <= 6);
          seen.push(...page.kvs.map((kv) => kv.key));
          start = page.next;
        }
        assert.deepEqual(seen, keys);
        // No `end`: scan to the end of the key space.
        const tail = JSON.parse((await call("GET", url(2, "/kv?start=scan/019&limit=100"))).text);
        assert.equal(tail.kvs[0].key, "scan/019");
        assert.ok(tail.kvs.every((kv: { key: string }) => kv.key >= "scan/019"));

        // Binary keys and values (not UTF-8): written percent-encoded, scanned as base64.
        const bin = [0, 1, 2].map((n) => Uint8Array.of(0x00, 0xff, 0xfe, n));
        const binValue = (n: number) => Uint8Array.of(0xc3, 0x28, n, 0x00);
        for (const [n, key] of bin.entries()) {
          const r = await call("PUT", url(n, `/kv/${keyPath(key)}`), binValue(n));
          assert.equal(r.status, 204, r.text);
        }
        for (const i of stores) {
          const got = await call("GET", url(i, `/kv/${keyPath(bin[1]!)}`));
          assert.deepEqual(got.body, binValue(1));
          const start = Uint8Array.of(0x00).toBase64();
          const end = Uint8Array.of(0x01).toBase64();
          const r = await call(
            "GET",
            url(
              i,
              `/kv?encoding=base64&start=${encodeURIComponent(start)}&end=${
                encodeURIComponent(end)
              }`,
            ),
          );
          assert.equal(r.status, 200, r.text);
          const page = JSON.parse(r.text);
          assert.deepEqual(
            page.kvs,
            bin.map((k, n) => ({ key: k.toBase64(), value: binValue(n).toBase64() })),
          );
          assert.equal(page.next, null);
        }
        // Without encoding=base64, bytes that are not UTF-8 come as key_base64/value_base64.
        const plain = JSON.parse((await call("GET", url(0, "/kv?limit=1"))).text);
        assert.deepEqual(plain.kvs[0], {
          key_base64: bin[0]!.toBase64(),
          value_base64: binValue(0).toBase64(),
        });
        assert.ok(plain.next !== null, "a limit=1 page over more keys has a next key");
      });

      await mustStep(
        t,
        "bad requests get 400/413 JSON errors and leave nothing behind",
        async () => {
          const s = (i: number) => c.storeUrl(i);
          assertError(await call("PUT", `${s(0)}/kv/`, "x"), 400, "BadRequest", "empty key");
          assertError(await call("GET", `${s(1)}/kv/`), 400, "BadRequest", "empty key GET");
          const long = "k".repeat(1025);
          assertError(
            await call("PUT", `${s(1)}/kv/${long}`, "x"),
            400,
            "BadRequest",
            "1025-byte key",
          );
          assertError(
            await call("GET", `${s(2)}/kv/${long}`),
            400,
            "BadRequest",
            "1025-byte key GET",
          );
          assertError(await call("PUT", `${s(2)}/kv/%ZZ`, "x"), 400, "BadRequest", "bad escape");
          const max = "m".repeat(1024);
          assert.equal((await call("PUT", `${s(2)}/kv/${max}`, "at the limit")).status, 204);
          acked.set(max, "at the limit");
          assert.equal((await call("GET", `${s(0)}/kv/${max}`)).text, "at the limit");

          const mib = 1024 * 1024;
          const tooBig = new Uint8Array(mib + 1).fill(7);
          assertError(await call("PUT", `${s(0)}/kv/big`, tooBig), 413, "TooLarge", "1 MiB + 1");
          assertError(
            await call("PUT", `${s(1)}/kv/big`, tooBig),
            413,
            "TooLarge",
            "another store",
          );
          // The same without Content-Length (chunked, as `curl -T -` sends it): cut off at the limit.
          const chunked = await fetch(`${s(2)}/kv/big`, {
            method: "PUT",
            body: ReadableStream.from(
              (function* () {
                for (let n = 0; n < 17; n++) yield new Uint8Array(64 * 1024).fill(n);
              })(),
            ),
            signal: AbortSignal.timeout(15_000),
          });
          const chunkedReply = {
            status: chunked.status,
            headers: chunked.headers,
            text: await chunked.text(),
            body: new Uint8Array(),
          };
          assertError(chunkedReply, 413, "TooLarge", "chunked 1 MiB + 64 KiB");
          for (const i of stores) {
            assertError(await call("GET", `${s(i)}/kv/big`), 404, "KeyNotFound", "no partial data");
          }
          // Exactly 1 MiB is allowed and reads back whole through every store.
          const oneMib = new Uint8Array(mib).map((_, n) => n * 31);
          assert.equal((await call("PUT", `${s(1)}/kv/big`, oneMib)).status, 204);
          for (const i of stores) {
            const got = await call("GET", `${s(i)}/kv/big`);
            assert.equal(got.status, 200);
            assert.equal(got.body.length, mib);
            assert.ok(got.body.every((b, n) => b === ((n * 31) & 0xff)), "1 MiB value intact");
          }
          assert.equal((await call("DELETE", `${s(2)}/kv/big`)).status, 204);
          acked.set("big", null);

          for (const q of ["limit=0", "limit=abc", "limit=10001", "limit=-1", "limit=1.5"]) {
            assertError(await call("GET", `${s(0)}/kv?${q}`), 400, "BadRequest", q);
          }
          assertError(await call("GET", `${s(1)}/kv?encoding=hex`), 400, "BadRequest", "encoding");
          assertError(
            await call("GET", `${s(2)}/kv?encoding=base64&start=!!!`),
            400,
            "BadRequest",
            "bad base64",
          );
          assertError(await call("POST", `${s(0)}/no/such/route`), 404, "NotFound", "no route");
        },
      );

      await mustStep(t, "a follower's /debug/regions and /debug/kv show the data", async () => {
        const region = await c.waitRegionVoters(1, 3);
        const leaderSlot = c.slotOf(region.leader!.store_id);
        const follower = stores.find((i) => i !== leaderSlot)!;
        await pollUntil("the follower to hold user/put-via-2 locally", async () => {
          const r = await call("GET", url(follower, "/debug/kv/user/put-via-2"));
          if (r.status !== 200) return undefined;
          assert.equal(r.text, "value written through store 2");
          assert.equal(r.headers.get("x-region-id"), "1");
          return true;
        });
        // A delete reaches the follower's engine too.
        await pollUntil("the follower to drop user/put-via-1", async () => {
          const r = await call("GET", url(follower, "/debug/kv/user/put-via-1"));
          if (r.status === 200) return undefined;
          assertError(r, 404, "KeyNotFound", "debug kv of a deleted key");
          return true;
        });
        const dbg = JSON.parse((await call("GET", url(follower, "/debug/regions"))).text);
        assert.equal(dbg.store_id, c.storeId(follower));
        const r1 = dbg.regions.find((r: { region: { id: number } }) => r.region.id === 1);
        assert.ok(r1, `region 1 on the follower: ${JSON.stringify(dbg)}`);
        assert.equal(r1.role, "Follower");
        assert.equal(r1.peer_state, "Normal");
        assert.equal(r1.region.peers.length, 3);
        assert.equal(r1.leader_id, region.leader!.id);
        assert.ok(r1.applied_index > 0 && r1.applied_index <= r1.commit_index);
      });

      await mustStep(
        t,
        "kill -9 of the leader's store under load: a new leader is elected, writes go on",
        async () => {
          const before = await c.waitRegionVoters(1, 3);
          const killedId = before.leader!.store_id;
          const killed = c.slotOf(killedId);
          const survivors = stores.filter((i) => i !== killed);
          // Writers through every store, the doomed one too. A write that fails (503, refused
          // connection, reset in flight) is retried through the next store; only a 204 counts.
          let ackedCount = 0;
          const writer = async (w: number) => {
            for (let n = 0; n < 40; n++) {
              const key = `load/${w}/${String(n).padStart(3, "0")}`;
              const r = await untilAnswered(
                `PUT ${key}`,
                (attempt) => http("PUT", url((w + n + attempt) % 3, `/kv/${key}`), `w${w}n${n}`),
                stats,
              );
              assert.equal(r.status, 204, `PUT ${key}: ${r.text}`);
              acked.set(key, `w${w}n${n}`);
              ackedCount++;
            }
          };
          const writers = [0, 1, 2].map(writer);
          // Kill the leader's store while writes are in flight.
          await pollUntil("some writes before the crash", () => ackedCount >= 30 || undefined);
          const exit = await c.crashStore(killed);
          assert.equal(exit.signal, "SIGKILL");
          const ackedAtKill = ackedCount;
          await Promise.all(writers);
          assert.ok(ackedCount > ackedAtKill, "writes were acknowledged after the crash");
          // Then sequential writes through both survivors.
          for (let n = 0; n < 10; n++) {
            const key = `after-crash/${String(n).padStart(3, "0")}`;
            const via = survivors[n % 2]!;
            const r = await untilAnswered(
              `PUT ${key} via slot ${via}`,
              () => http("PUT", url(via, `/kv/${key}`), `a${n}`),
              stats,
            );
            assert.equal(r.status, 204, r.text);
            acked.set(key, `a${n}`);
          }
          const after = await pollUntil("the scheduler to see a new leader", async () => {
            const r = await c.region(1);
            return r?.leader && r.leader.store_id !== killedId ? r : undefined;
          });
          assert.ok(survivors.map((i) => c.storeId(i)).includes(after.leader!.store_id));
          const leaders = await Promise.all(
            survivors.map(async (i) => JSON.parse((await call("GET", url(i, "/status"))).text)),
          );
          assert.equal(leaders.reduce((n, s) => n + s.leaders, 0), 1, "one leader among survivors");
        },
      );

      await mustStep(t, "the killed store restarts with its data dir and catches up", async () => {
        const killed = stores.find((i) => c.proc(i)?.exited)!;
        const id = c.storeId(killed);
        c.startStore(killed);
        assert.equal(await c.waitStoreUp(killed), id, "same store ID after restart");
        await pollUntil(
          "the restarted store to hold the writes made while it was down",
          async () => {
            const r = await call("GET", url(killed, "/debug/kv/after-crash/009"));
            if (r.status !== 200) return undefined;
            assert.equal(r.text, "a9");
            assert.equal(r.headers.get("x-region-id"), "1");
            return true;
          },
        );
        // The leader's log still held what it missed (fewer entries than the GC limit so far).
        const metrics = (await call("GET", url(killed, "/metrics"))).text;
        assert.equal(metric(metrics, "mrkv_snapshots_applied_total"), 0, "caught up by log");
        // It takes writes again, and the others see them.
        const r = await untilAnswered(
          "PUT through the restarted store",
          () => http("PUT", url(killed, "/kv/after-restart"), "back"),
          stats,
        );
        assert.equal(r.status, 204, r.text);
        acked.set("after-restart", "back");
        const dbg = JSON.parse((await call("GET", url(killed, "/debug/regions"))).text);
        assert.equal(dbg.store_id, id);
        assert.equal(
          dbg.regions.find((x: { region: { id: number } }) => x.region.id === 1)?.peer_state,
          "Normal",
        );
      });

      await mustStep(t, "every acknowledged write reads back through every store", async () => {
        await mustReadBack(c, acked, stats);
        // And every store's engine converges on the last write.
        await pollUntil("every store to hold after-restart locally", async () => {
          for (const i of stores) {
            if ((await call("GET", url(i, "/debug/kv/after-restart"))).status !== 200) return false;
          }
          return true;
        });
      });

      await mustStep(
        t,
        "kill -9 of a follower's store; after log GC it catches up by snapshot",
        async () => {
          const region = await c.waitRegionVoters(1, 3);
          const leader = c.slotOf(region.leader!.store_id);
          const follower = stores.find((i) => i !== leader)!;
          const alive = stores.filter((i) => i !== follower);
          const peerOn = async (i: number) => {
            const dbg = JSON.parse((await call("GET", url(i, "/debug/regions"))).text);
            return dbg.regions.find((x: { region: { id: number } }) => x.region.id === 1);
          };
          const appliedAtKill = (await peerOn(follower)).applied_index as number;
          assert.equal((await c.crashStore(follower)).signal, "SIGKILL");
          // More entries than raft-log-gc-count-limit, so the leader compacts past the follower.
          const writer = async (w: number) => {
            for (let n = 0; n < GC_WRITES / 4; n++) {
              const key = `gc/${w}/${String(n).padStart(3, "0")}`;
              const r = await untilAnswered(
                `PUT ${key}`,
                (attempt) => http("PUT", url(alive[(w + n + attempt) % 2]!, `/kv/${key}`), `g${n}`),
                stats,
              );
              assert.equal(r.status, 204, `PUT ${key}: ${r.text}`);
              acked.set(key, `g${n}`);
            }
          };
          await Promise.all([0, 1, 2, 3].map(writer));
          const truncated = await pollUntil("the leader to compact past the follower", async () => {
            const r = await peerOn(leader);
            return r && r.truncated_index > appliedAtKill ? r.truncated_index as number : undefined;
          });
          c.startStore(follower);
          await c.waitStoreUp(follower);
          await pollUntil("the restarted follower to hold the last write", async () => {
            const r = await call(
              "GET",
              url(follower, `/debug/kv/gc/3/${String(GC_WRITES / 4 - 1).padStart(3, "0")}`),
            );
            return r.status === 200 || undefined;
          });
          const metrics = (await call("GET", url(follower, "/metrics"))).text;
          const applied = metric(metrics, "mrkv_snapshots_applied_total");
          assert.ok(
            applied >= 1,
            `the follower (applied ${appliedAtKill}) installed a snapshot (truncated ${truncated})`,
          );
          await mustReadBack(c, acked, stats);
        },
      );

      await mustStep(
        t,
        "kill -9 of the scheduler: the stores keep serving; restarted, it keeps its state",
        async () => {
          const clusterId = await c.waitSchedulerUp();
          assert.equal((await c.scheduler.stop("SIGKILL")).signal, "SIGKILL");
          for (const i of stores) {
            const key = `no-scheduler/${i}`;
            const put = await untilAnswered(
              `PUT ${key}`,
              () => http("PUT", url(i, `/kv/${key}`), "still up"),
              stats,
            );
            assert.equal(put.status, 204, put.text);
            acked.set(key, "still up");
            for (const j of stores) {
              const got = await untilAnswered(
                `GET ${key}`,
                () => http("GET", url(j, `/kv/${key}`)),
                stats,
              );
              assert.equal(got.text, "still up");
            }
          }
          c.startScheduler();
          assert.equal(await c.waitSchedulerUp(), clusterId, "same cluster ID after restart");
          const listed = JSON.parse((await call("GET", `${c.schedulerUrl}/pd/api/v1/stores`)).text);
          assert.deepEqual(
            new Set(listed.stores.map((s: { store: { id: number } }) => s.store.id)),
            new Set(stores.map((i) => c.storeId(i))),
          );
          await c.waitRegionVoters(1, 3);
        },
      );

      await mustStep(t, "SIGTERM stops every process with exit code 0", async () => {
        await mustShutDownCleanly(c);
      });

      await mustStep(
        t,
        "the whole cluster restarts from its data dirs with every acknowledged write",
        async () => {
          c.startScheduler();
          await c.waitSchedulerUp();
          const ids = stores.map((i) => c.storeId(i));
          for (const i of stores) c.startStore(i);
          for (const i of stores) assert.equal(await c.waitStoreUp(i), ids[i], "same store ID");
          await c.waitRegionVoters(1, 3);
          await mustReadBack(c, acked, stats);
          await mustShutDownCleanly(c);
        },
      );
      passed = true;
    } finally {
      if (!passed) console.error(`--- process output ---\n${c.output()}`);
      if (Deno.env.get("MRKV_DEBUG") === "1") console.error(`client retries: ${stats.retries}`);
      await c.close();
    }
  },
);

Deno.test("e2e: a bad flag exits 2 with one line naming the flag", async () => {
  const [port] = freePorts(1);
  const cases: { args: string[]; flag: string }[] = [
    { args: ["--role", "store", "--raft-tick-ms", "banana"], flag: "--raft-tick-ms" },
    { args: ["--role", "scheduler", "--no-such-flag", "1"], flag: "--no-such-flag" },
    { args: ["--role", "store", "--addr", `127.0.0.1:${port}`], flag: "--scheduler" },
    { args: ["--role", "scheduler", "--max-replicas", "1", "--addr", "nowhere"], flag: "--addr" },
    { args: ["--role", "dancer"], flag: "--role" },
  ];
  const results = await Promise.all(cases.map((c) => runMain(c.args)));
  for (const [n, { args, flag }] of cases.entries()) {
    const r = results[n]!;
    const what = `mrkv ${args.join(" ")}`;
    assert.equal(r.code, 2, `${what}: exit code (stderr ${r.stderr})`);
    const lines = r.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, `${what}: one line, got ${JSON.stringify(r.stderr)}`);
    assert.ok(lines[0]!.includes(flag), `${what}: "${lines[0]}" names ${flag}`);
  }
});

/** The fixed addresses `tools/playground.ts` uses. */
const PLAYGROUND_PORTS = [2379, 20161, 20162, 20163];

function portsFree(ports: number[]): boolean {
  for (const port of ports) {
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
    } catch {
      return false;
    }
  }
  return true;
}

Deno.test("e2e: `deno task start` brings up a playground a newcomer can curl; SIGTERM exits 0", async () => {
  if (!portsFree(PLAYGROUND_PORTS)) {
    // The playground has fixed ports; someone else's is running. Not this test's failure.
    console.warn(`skipped: a playground port (${PLAYGROUND_PORTS.join(", ")}) is in use`);
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "mrkv-playground-" });
  const task = new ChildProc("playground", Deno.execPath(), [
    "task",
    "start",
    "--data",
    `${dir}/data`,
  ], { group: true });
  let passed = false;
  try {
    const state = await pollUntil("the playground's first store to answer /status", async () => {
      if (task.exited) return "exited";
      const r = await http("GET", "http://127.0.0.1:20161/status", undefined, 2_000);
      return r.status === 200 ? "up" : undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    if (state === "exited" && /address already in use/i.test(task.output())) {
      // Another playground took a port between our check and its start.
      console.warn("skipped: a playground port was taken while the playground started");
      passed = true;
      return;
    }
    if (state !== "up") assert.fail(`the playground exited: ${JSON.stringify(await task.status)}`);
    const stats = { retries: 0 };
    const put = await untilAnswered(
      "PUT hello on the playground",
      () => http("PUT", "http://127.0.0.1:20161/kv/hello", "world", 5_000),
      stats,
    );
    assert.equal(put.status, 204, put.text);
    const got = await untilAnswered(
      "GET hello on the playground",
      () => http("GET", "http://127.0.0.1:20163/kv/hello", undefined, 5_000),
      stats,
    );
    assert.equal(got.status, 200, got.text);
    assert.equal(got.text, "world");
    // The playground wrote the admin credential as a curl header file.
    const header = (await Deno.readTextFile(`${dir}/data/admin.header`)).trim();
    const [name, value] = [
      header.slice(0, header.indexOf(":")),
      header.slice(header.indexOf(":") + 1),
    ];
    const admin = { [name!.trim()]: value!.trim() };
    const unauthenticated = await http("GET", "http://127.0.0.1:2379/pd/api/v1/regions");
    assert.equal(unauthenticated.status, 401, "the admin API needs the admin credential");
    const regions = JSON.parse(
      (await http("GET", "http://127.0.0.1:2379/pd/api/v1/regions", undefined, 5_000, admin)).text,
    );
    assert.ok(regions.count >= 1);
    // The banner names each store by the ID the scheduler gave it, with its URL and data dir.
    const banner = await pollUntil("the playground's ready banner", () => {
      const out = task.output();
      return /cluster ready: a scheduler and 3 store\(s\)/.test(out) && /Ctrl-C stops all/.test(out)
        ? out
        : undefined;
    }, { timeoutMs: 30_000 });
    const status = JSON.parse((await http("GET", "http://127.0.0.1:20161/status")).text);
    assert.match(
      banner,
      new RegExp(`store ${status.id} +http://127\\.0\\.0\\.1:20161 +data .*/store-20161`),
    );
    assert.match(banner, /dashboard http:\/\/127\.0\.0\.1:2379\//);
    assert.match(banner, /deno run -A main\.ts --role store --addr 127\.0\.0\.1:20164 /);
    assert.deepEqual(await task.stop("SIGTERM"), { code: 0, signal: null });
    passed = true;
  } finally {
    if (!passed) console.error(`--- playground output (cwd ${REPO_ROOT}) ---\n${task.output()}`);
    if (!task.exited) await task.stop("SIGTERM", 10_000).catch(() => {});
    task.killGroup("SIGKILL"); // the playground's scheduler and stores, whatever happened
    await task.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("e2e: a second server on a data dir in use exits 1 naming the dir and the holder", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-lock-e2e-" });
  const [first, second] = freePorts(2);
  const holder = new ChildProc("scheduler", Deno.execPath(), [
    "run",
    "-A",
    "--unstable-kv",
    `${REPO_ROOT}/main.ts`,
    "--role",
    "scheduler",
    "--addr",
    `127.0.0.1:${first}`,
    "--data-dir",
    dir,
  ]);
  try {
    await pollUntil("the first scheduler to answer", async () => {
      if (holder.exited) assert.fail(`the first scheduler exited:\n${holder.output()}`);
      return (await http("GET", `http://127.0.0.1:${first}/status`, undefined, 2_000).catch(
        () => undefined,
      ))?.status === 200;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    for (const role of ["scheduler", "store"]) {
      const args = ["--role", role, "--addr", `127.0.0.1:${second}`, "--data-dir", dir];
      if (role === "store") args.push("--scheduler", `http://127.0.0.1:${first}`);
      const r = await runMain(args);
      assert.equal(r.code, 1, `${role}: exit code (stderr ${r.stderr})`);
      assert.ok(r.stderr.includes(dir), `${role}: names the dir: ${r.stderr}`);
      assert.ok(r.stderr.includes(`127.0.0.1:${first}`), `${role}: names the holder: ${r.stderr}`);
    }
  } finally {
    await holder.stop("SIGTERM", 10_000).catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
