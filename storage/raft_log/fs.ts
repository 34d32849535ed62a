/**
 * The few file operations the Raft log engine uses, behind an interface: the real file system
 * (`node:fs/promises`, positional reads and writes, `fdatasync`, directory `fsync`) and, for
 * tests and in-memory stores, {@link MemFs} (`mem_fs.ts`), which also simulates crashes.
 *
 * @module
 */
import * as fsp from "node:fs/promises";
import { join } from "node:path";

/** An open file. Writes and reads name their position; nothing depends on a file offset. */
export interface LogFile {
  /** Writes all of `data` at `position`. */
  write(data: Uint8Array, position: number): Promise<void>;
  /** Reads up to `into.length` bytes at `position`; returns how many were read. */
  read(into: Uint8Array, position: number): Promise<number>;
  /** Makes the file's data durable (`fdatasync`). */
  datasync(): Promise<void>;
  /** Cuts the file to `length` bytes. */
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

/** A directory of log files. Paths are names inside the directory. */
export interface LogFs {
  /** Creates the directory if needed. */
  init(): Promise<void>;
  /** Names of the files in the directory. */
  list(): Promise<string[]>;
  /** Opens a file for reading and writing; `create: true` fails if it exists. */
  open(name: string, options: { create: boolean }): Promise<LogFile>;
  unlink(name: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Makes the directory's entries durable (creations, renames, deletions). */
  syncDir(): Promise<void>;
  /** A description for error messages. */
  readonly where: string;
}

/** The real file system, in directory `dir`. */
export class NodeFs implements LogFs {
  constructor(readonly dir: string) {}

  get where(): string {
    return this.dir;
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true });
  }

  async list(): Promise<string[]> {
    return await fsp.readdir(this.dir);
  }

  async open(name: string, { create }: { create: boolean }): Promise<LogFile> {
    const handle = await fsp.open(join(this.dir, name), create ? "wx+" : "r+");
    return new NodeFile(handle);
  }

  async unlink(name: string): Promise<void> {
    await fsp.unlink(join(this.dir, name));
  }

  async rename(from: string, to: string): Promise<void> {
    await fsp.rename(join(this.dir, from), join(this.dir, to));
  }

  async syncDir(): Promise<void> {
    const handle = await fsp.open(this.dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

class NodeFile implements LogFile {
  constructor(readonly handle: fsp.FileHandle) {}

  async write(data: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.handle.write(
        data,
        done,
        data.length - done,
        position + done,
      );
      if (bytesWritten <= 0) throw new Error("short write to a raft log file");
      done += bytesWritten;
    }
  }

  async read(into: Uint8Array, position: number): Promise<number> {
    let done = 0;
    while (done < into.length) {
      const { bytesRead } = await this.handle.read(into, done, into.length - done, position + done);
      if (bytesRead <= 0) break;
      done += bytesRead;
    }
    return done;
  }

  async datasync(): Promise<void> {
    await this.handle.datasync();
  }

  async truncate(length: number): Promise<void> {
    await this.handle.truncate(length);
  }

  async size(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
