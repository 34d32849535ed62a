/**
 * The data-dir lock: a second holder is refused with a message naming the first; releasing (or
 * the holder's process dying) frees the directory.
 */
import assert from "node:assert/strict";
import { DataDirLockedError, DirLock } from "./dir_lock.ts";

Deno.test("a locked data dir refuses a second holder, naming the first; release frees it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-lock-" });
  try {
    const first = await DirLock.acquire(dir, { role: "store", addr: "127.0.0.1:20160" });
    const err = await refusal(() =>
      DirLock.acquire(dir, { role: "store", addr: "127.0.0.1:20161" })
    );
    assert.ok(err.message.includes(dir), err.message);
    assert.ok(err.message.includes(`pid ${Deno.pid}`), err.message);
    assert.ok(err.message.includes("127.0.0.1:20160"), err.message);
    first.release();
    first.release(); // idempotent
    const again = await DirLock.acquire(dir, { role: "scheduler", addr: "127.0.0.1:2379" });
    again.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a lock held by another process is refused; it is freed when that process is killed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-lock-" });
  const script = `
    import { DirLock } from ${JSON.stringify(new URL("./dir_lock.ts", import.meta.url).href)};
    await DirLock.acquire(${JSON.stringify(dir)}, { role: "store", addr: "10.0.0.9:1" });
    console.log("locked");
    setInterval(() => {}, 1000);
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = child.stdout.getReader();
    const { value } = await reader.read();
    assert.equal(new TextDecoder().decode(value).trim(), "locked");
    reader.releaseLock();
    const err = await refusal(() => DirLock.acquire(dir, { role: "store", addr: "127.0.0.1:1" }));
    assert.ok(err.message.includes(`pid ${child.pid}`), err.message);
    assert.ok(err.message.includes("10.0.0.9:1"), err.message);
    child.kill("SIGKILL");
    await child.status;
    const lock = await DirLock.acquire(dir, { role: "store", addr: "127.0.0.1:1" });
    lock.release();
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.stdout.cancel().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

/** The {@link DataDirLockedError} that `f` must reject with. */
async function refusal(f: () => Promise<unknown>): Promise<DataDirLockedError> {
  try {
    await f();
  } catch (e) {
    assert.ok(e instanceof DataDirLockedError, String(e));
    return e;
  }
  throw new assert.AssertionError({ message: "the second lock was granted" });
}
