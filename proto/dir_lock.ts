/**
 * One process per data directory.
 *
 * Two servers on one data directory would each believe they own its Raft state: two stores with
 * the same store ID, voting twice in one term and overwriting each other's log. So every role
 * takes an exclusive `flock` on `<data-dir>/LOCK` before it opens anything there, and holds it
 * until it stops. The lock file records who holds it (PID, role, address, start time) so the
 * refusal can name the other process. The operating system drops the lock when the process dies,
 * `kill -9` included, so a crash never leaves a directory locked.
 *
 * @module
 */
import { join } from "node:path";

/** Name of the lock file inside a data directory. */
export const LOCK_FILE = "LOCK";

/** Who holds a data directory. */
export interface LockOwner {
  readonly pid: number;
  readonly role: string;
  readonly addr: string;
  readonly startedAt: string;
}

/** The data directory is held by another process (or another server in this one). */
export class DataDirLockedError extends Error {
  constructor(readonly dataDir: string, readonly owner: LockOwner | undefined) {
    super(
      `data dir ${dataDir} is in use by another mrkv process` +
        (owner
          ? ` (pid ${owner.pid}, ${owner.role} on ${owner.addr}, since ${owner.startedAt})`
          : "") +
        `; stop it first, or give this one its own --data-dir`,
    );
    this.name = "DataDirLockedError";
  }
}

/** A held lock; {@link release} gives it back (also done by the OS if the process dies). */
export class DirLock {
  #file: Deno.FsFile | undefined;

  private constructor(readonly path: string, file: Deno.FsFile) {
    this.#file = file;
  }

  /**
   * Creates `dataDir` if needed and locks it for this process, or throws
   * {@link DataDirLockedError} naming the holder.
   */
  static async acquire(dataDir: string, who: { role: string; addr: string }): Promise<DirLock> {
    await Deno.mkdir(dataDir, { recursive: true });
    const path = join(dataDir, LOCK_FILE);
    const file = await Deno.open(path, { read: true, write: true, create: true });
    let locked = false;
    try {
      locked = await file.tryLock(true);
    } catch (e) {
      file.close();
      throw new Error(`cannot lock ${path}: ${(e as Error).message}`, { cause: e });
    }
    if (!locked) {
      file.close();
      throw new DataDirLockedError(dataDir, await readOwner(path));
    }
    const owner: LockOwner = {
      pid: Deno.pid,
      role: who.role,
      addr: who.addr,
      startedAt: new Date().toISOString(),
    };
    const bytes = new TextEncoder().encode(JSON.stringify(owner) + "\n");
    await file.truncate(0);
    await file.seek(0, Deno.SeekMode.Start);
    for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
    return new DirLock(path, file);
  }

  /** Releases the lock. Idempotent. */
  release(): void {
    const file = this.#file;
    this.#file = undefined;
    if (!file) return;
    try {
      file.unlockSync();
    } finally {
      file.close();
    }
  }
}

/** The owner recorded in a lock file, if it can be read (it is only informative). */
async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    const o = JSON.parse(await Deno.readTextFile(path)) as Partial<LockOwner>;
    if (typeof o.pid === "number" && typeof o.role === "string" && typeof o.addr === "string") {
      return {
        pid: o.pid,
        role: o.role,
        addr: o.addr,
        startedAt: typeof o.startedAt === "string" ? o.startedAt : "an unknown time",
      };
    }
  } catch { /* unreadable or being written: the message just names no owner */ }
  return undefined;
}
