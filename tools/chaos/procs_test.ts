import assert from "node:assert/strict";
import { freePorts, pollUntil } from "../../tests/process_cluster.ts";
import { ServerSet } from "./procs.ts";

/** Servers that answer "hi" on their own port; "crash" exits by itself after a moment. */
class TinyServers extends ServerSet {
  readonly names = ["a", "crash"];
  readonly stores = ["a", "crash"];
  readonly #ports = ((ports) => new Map(this.names.map((n, i) => [n, ports[i]!])))(freePorts(2));

  start(name: string): void {
    this.spawn(name);
  }

  url(name: string): string {
    return `http://127.0.0.1:${this.#ports.get(name)}`;
  }

  storeId(name: string): number {
    return this.names.indexOf(name) + 1;
  }

  nameOf(id: number): string | undefined {
    return this.names[id - 1];
  }

  async waitUp(name: string, timeoutMs = 20_000): Promise<void> {
    await pollUntil(`${name} to answer`, async () => {
      this.checkAlive(name);
      return await answers(this.url(name));
    }, { timeoutMs });
  }

  protected argv(name: string): string[] {
    const code = name === "crash"
      ? `console.log("crashing"); setTimeout(() => Deno.exit(3), 300)`
      : `Deno.serve({ hostname: "127.0.0.1", port: ${this.#ports.get(name)}, onListen() {} }, ` +
        `() => new Response("hi"))`;
    return [Deno.execPath(), "eval", code];
  }
}

async function answers(url: string, timeoutMs = 1_000): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return (await res.text()) === "hi";
  } catch {
    return false;
  }
}

Deno.test({
  name: "servers pause, resume, die and restart; one that exits alone is recorded",
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "mrkv-procs-" });
    const t0 = performance.now();
    const set = new TinyServers(dir, () => performance.now() - t0);
    try {
      set.start("a");
      await set.waitUp("a");
      assert.ok(set.isServing("a"));

      set.pause("a");
      assert.ok(!set.isServing("a"));
      assert.ok(!(await answers(set.url("a"), 300)), "a paused server does not answer");
      set.resume("a");
      await pollUntil("a to answer after SIGCONT", () => answers(set.url("a")));

      await set.kill("a");
      assert.ok(!set.isServing("a"));
      assert.ok(!(await answers(set.url("a"), 300)));
      await set.restart("a");
      assert.ok(await answers(set.url("a")));
      assert.equal(set.unexpected.length, 0, "faults the tool made are not findings");

      set.start("crash");
      await pollUntil("the crash to be recorded", () => set.unexpected.length > 0);
      assert.equal(set.unexpected[0]!.name, "crash");
      assert.equal(set.unexpected[0]!.code, 3);
      assert.match(set.unexpected[0]!.tail, /crashing/);
    } finally {
      await set.close();
    }
    const log = await Deno.readTextFile(`${dir}/logs/a.log`);
    assert.match(log, /SIGSTOP at \d+ ms[\s\S]*SIGCONT[\s\S]*SIGKILL[\s\S]*restart/);
    await Deno.remove(dir, { recursive: true });
  },
});
