import assert from "node:assert/strict";
import { pollUntil } from "../../tests/process_cluster.ts";
import { blockedBy, cleanLeftovers, filterTable, NetnsNet, netnsUnavailable } from "./netns.ts";

Deno.test("a cut blocks both directions between the named servers only", () => {
  const blocked = blockedBy(["sched", "s1", "s2", "s3"], [["s1", "s2"], ["s1", "sched"], [
    "s2",
    "s1",
  ]]);
  assert.deepEqual(Object.fromEntries(blocked), {
    sched: ["s1"],
    s1: ["s2", "sched"],
    s2: ["s1"],
    s3: [],
  });
  assert.throws(() => blockedBy(["s1"], [["s1", "s9"]]), /unknown server/);
  assert.throws(() => blockedBy(["s1"], [["s1", "s1"]]), /itself/);
});

Deno.test("the filter table drops traffic to and from each blocked address", () => {
  const table = filterTable(["10.77.1.2", "10.77.1.3"]);
  assert.match(table, /^\*filter\n:INPUT ACCEPT/);
  assert.match(
    table,
    /-A INPUT -s 10\.77\.1\.2\/32 -j DROP\n-A OUTPUT -d 10\.77\.1\.2\/32 -j DROP/,
  );
  assert.match(table, /-A OUTPUT -d 10\.77\.1\.3\/32 -j DROP\nCOMMIT\n$/);
  assert.doesNotMatch(filterTable([]), /DROP/);
});

const unavailable = await netnsUnavailable();
const required = Deno.env.get("MRKV_CHAOS_REQUIRE_NETNS") === "1";
if (unavailable && !required) {
  console.warn(`netns_test: namespace tests ignored: ${unavailable}`);
}

/** Whether server `from`'s namespace can open a TCP connection to `to` (1 s limit). */
async function reaches(net: NetnsNet, from: string, toAddr: string): Promise<boolean> {
  const [host, port] = toAddr.split(":");
  const out = await new Deno.Command(net.wrap(from, ["true"])[0]!, {
    args: [
      ...net.wrap(from, ["timeout", "1", "bash", "-c", `echo > /dev/tcp/${host}/${port}`]).slice(
        1,
      ),
    ],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.code === 0;
}

Deno.test({
  name: "namespaces on a bridge: reachable from the host and each other, cut, healed, removed",
  ignore: unavailable !== undefined && !required,
  async fn() {
    if (unavailable) throw new Error(`MRKV_CHAOS_REQUIRE_NETNS=1 but ${unavailable}`);
    const logs: string[] = [];
    const net = await NetnsNet.create(["s1", "s2"], (l) => logs.push(l));
    let server: Deno.ChildProcess | undefined;
    try {
      const [cmd, ...args] = net.wrap("s1", [
        Deno.execPath(),
        "eval",
        `Deno.serve({ hostname: "${
          net.ip("s1")
        }", port: 20160, onListen() {} }, () => new Response("hi"))`,
      ]);
      server = new Deno.Command(cmd!, { args, stdout: "null", stderr: "null" }).spawn();
      const url = `http://${net.addr("s1")}/`;
      await pollUntil("the server in s1 to answer", async () => {
        const res = await fetch(url, { signal: AbortSignal.timeout(500) });
        return (await res.text()) === "hi";
      }, { timeoutMs: 20_000 });
      assert.ok(await reaches(net, "s2", net.addr("s1")), "s2 reaches s1 before the cut");

      await net.cut([["s1", "s2"]]);
      assert.ok(!(await reaches(net, "s2", net.addr("s1"))), "s2 must not reach s1 when cut");
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      assert.equal(await res.text(), "hi", "the host still reaches s1");

      await net.heal();
      assert.ok(await reaches(net, "s2", net.addr("s1")), "s2 reaches s1 after the heal");
    } finally {
      server?.kill("SIGKILL");
      await server?.status;
      await net.close();
    }
    const list = await new Deno.Command("ip", { args: ["netns", "list"] }).output();
    assert.doesNotMatch(new TextDecoder().decode(list.stdout), new RegExp(`^mkc${net.n}-`, "m"));
  },
});

Deno.test({
  name: "leftovers of a run whose process is gone are removed by the next run",
  ignore: unavailable !== undefined && !required,
  async fn() {
    if (unavailable) throw new Error(`MRKV_CHAOS_REQUIRE_NETNS=1 but ${unavailable}`);
    const net = await NetnsNet.create(["s1"], () => {});
    // Pretend its owner crashed long ago.
    const claim = `/run/mrkv-chaos/${net.n}.json`;
    await Deno.writeTextFile(claim, JSON.stringify({ pid: 999_999_999, start: "0" }));
    const old = new Date(Date.now() - 60_000);
    await Deno.utime(claim, old, old);
    const logs: string[] = [];
    await cleanLeftovers((l) => logs.push(l));
    const list = await new Deno.Command("ip", { args: ["netns", "list"] }).output();
    assert.doesNotMatch(new TextDecoder().decode(list.stdout), new RegExp(`^mkc${net.n}-`, "m"));
    await assert.rejects(Deno.stat(claim));
    assert.ok(logs.some((l) => /leftovers/.test(l)), logs.join("\n"));
    await net.close();
  },
});
