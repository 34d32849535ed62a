/**
 * {@link LogFs} in memory, for stores that keep everything in memory and for crash tests.
 *
 * It tracks what a crash would keep: each file's data up to its last `datasync`, and the
 * directory as of its last `syncDir`. {@link MemFs.crashAfter} makes the n-th mutating operation
 * fail as if the process died just before it; {@link MemFs.crashImage} then builds the file
 * system a restart could find: the synced data, plus any prefix of what was written since
 * (a torn write), plus or minus the directory changes not yet synced.
 *
 * @module
 */
import type { LogFile, LogFs } from "./fs.ts";

/** Thrown by every operation once the simulated process has crashed. */
export class SimulatedCrash extends Error {
  constructor(op: string) {
    super(`simulated crash at ${op}`);
    this.name = "SimulatedCrash";
  }
}

class Inode {
  data = new Uint8Array(0);
  length = 0;
  /** What survives a crash for sure: the data as of the last datasync. */
  synced = new Uint8Array(0);

  content(): Uint8Array {
    return this.data.subarray(0, this.length);
  }

  write(src: Uint8Array, position: number): void {
    const end = position + src.length;
    if (end > this.data.length) {
      const grown = new Uint8Array(Math.max(end, this.data.length * 2, 4096));
      grown.set(this.content());
      this.data = grown;
    }
    if (position > this.length) this.data.fill(0, this.length, position);
    this.data.set(src, position);
    this.length = Math.max(this.length, end);
  }
}

/** How a crash image treats what was not yet durable. */
export interface CrashImageOptions {
  /** `"durable"`: the directory as of its last sync; `"current"`: every change landed. */
  readonly dir: "durable" | "current";
  /**
   * How many bytes past its synced data each file keeps (default 0). Bytes written since the
   * last sync are kept as a prefix, the way a torn append looks.
   */
  readonly keep?: (name: string, unsynced: number) => number;
}

/** An in-memory {@link LogFs}. See the module comment. */
export class MemFs implements LogFs {
  readonly where = "memory";
  #dir = new Map<string, Inode>();
  #durableDir = new Map<string, Inode>();
  #ops = 0;
  #crashAt = Number.POSITIVE_INFINITY;
  #crashed = false;

  /** Mutating operations done so far (writes, syncs, truncations, directory changes). */
  get ops(): number {
    return this.#ops;
  }

  get crashed(): boolean {
    return this.#crashed;
  }

  /** Makes mutating operation number `n` (1-based, counted from now) and all later ones fail. */
  crashAfter(n: number): void {
    this.#crashAt = this.#ops + n;
  }

  /** Crashes now: every later operation fails. */
  crash(): void {
    this.#crashed = true;
  }

  /** A new file system holding what a restart after the crash could find. */
  crashImage(options: CrashImageOptions): MemFs {
    const out = new MemFs();
    const dir = options.dir === "durable" ? this.#durableDir : this.#dir;
    for (const [name, inode] of dir) {
      const copy = new Inode();
      const content = inode.content();
      const synced = inode.synced;
      const extra = Math.max(0, content.length - synced.length);
      const keep = Math.min(extra, Math.max(0, options.keep?.(name, extra) ?? 0));
      copy.write(synced, 0);
      if (keep > 0) {
        copy.write(content.subarray(synced.length, synced.length + keep), synced.length);
      }
      copy.synced = copy.content().slice();
      out.#dir.set(name, copy);
      out.#durableDir.set(name, copy);
    }
    return out;
  }

  /** The current bytes of a file (tests). */
  contents(name: string): Uint8Array | undefined {
    return this.#dir.get(name)?.content().slice();
  }

  /** Replaces a file's bytes, durably (tests: corrupt or cut a file). */
  setContents(name: string, bytes: Uint8Array): void {
    const inode = new Inode();
    inode.write(bytes, 0);
    inode.synced = bytes.slice();
    this.#dir.set(name, inode);
    this.#durableDir.set(name, inode);
  }

  #mutate(op: string): void {
    if (this.#crashed) throw new SimulatedCrash(op);
    this.#ops++;
    if (this.#ops >= this.#crashAt) {
      this.#crashed = true;
      throw new SimulatedCrash(op);
    }
  }

  #check(op: string): void {
    if (this.#crashed) throw new SimulatedCrash(op);
  }

  init(): Promise<void> {
    return Promise.resolve();
  }

  list(): Promise<string[]> {
    this.#check("list");
    return Promise.resolve([...this.#dir.keys()]);
  }

  open(name: string, { create }: { create: boolean }): Promise<LogFile> {
    try {
      let inode = this.#dir.get(name);
      if (create) {
        this.#mutate(`create ${name}`);
        if (inode) throw new Error(`${name} exists`);
        inode = new Inode();
        this.#dir.set(name, inode);
      } else {
        this.#check(`open ${name}`);
        if (!inode) throw new Error(`${name} does not exist`);
      }
      return Promise.resolve(new MemFile(this, name, inode));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  unlink(name: string): Promise<void> {
    try {
      this.#mutate(`unlink ${name}`);
      if (!this.#dir.delete(name)) throw new Error(`${name} does not exist`);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  rename(from: string, to: string): Promise<void> {
    try {
      this.#mutate(`rename ${from}`);
      const inode = this.#dir.get(from);
      if (!inode) throw new Error(`${from} does not exist`);
      this.#dir.delete(from);
      this.#dir.set(to, inode);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  syncDir(): Promise<void> {
    try {
      this.#mutate("syncDir");
      this.#durableDir = new Map(this.#dir);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** @internal */
  op(what: string, f: () => void, mutating = true): Promise<void> {
    try {
      if (mutating) this.#mutate(what);
      else this.#check(what);
      f();
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }
}

class MemFile implements LogFile {
  #closed = false;
  constructor(readonly fs: MemFs, readonly name: string, readonly inode: Inode) {}

  #open(): void {
    if (this.#closed) throw new Error(`${this.name} is closed`);
  }

  write(data: Uint8Array, position: number): Promise<void> {
    return this.fs.op(`write ${this.name}`, () => {
      this.#open();
      this.inode.write(data, position);
    });
  }

  read(into: Uint8Array, position: number): Promise<number> {
    let n = 0;
    return this.fs.op(`read ${this.name}`, () => {
      this.#open();
      const src = this.inode.content().subarray(position, position + into.length);
      into.set(src);
      n = src.length;
    }, false).then(() => n);
  }

  datasync(): Promise<void> {
    return this.fs.op(`datasync ${this.name}`, () => {
      this.#open();
      this.inode.synced = this.inode.content().slice();
    });
  }

  truncate(length: number): Promise<void> {
    return this.fs.op(`truncate ${this.name}`, () => {
      this.#open();
      this.inode.length = Math.min(this.inode.length, length);
      if (this.inode.synced.length > length) this.inode.synced = this.inode.synced.slice(0, length);
    });
  }

  size(): Promise<number> {
    let n = 0;
    return this.fs.op(`size ${this.name}`, () => {
      n = this.inode.length;
    }, false).then(() => n);
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}
