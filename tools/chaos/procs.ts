/**
 * A set of named server processes that faults act on: pause (`SIGSTOP`/`SIGCONT`), kill
 * (`SIGKILL`) and restart with the same command line. Each process's output is appended to
 * `logs/<name>.log` under the run directory, with a marker line for each fault; a process that
 * exits when nobody stopped it is recorded as an {@link UnexpectedExit}.
 *
 * Subclasses say how a server is started ({@link ServerSet.argv}) and when it is up
 * ({@link ServerSet.waitUp}).
 *
 * @module
 */
import { REPO_ROOT } from "../../tests/process_cluster.ts";

/** Lines of output kept in memory per server, for failure reports. */
const TAIL_LINES = 30;

/** A process that exited while it was meant to run. */
export interface UnexpectedExit {
  readonly name: string;
  readonly at: number;
  readonly code: number;
  readonly signal: string | null;
  readonly tail: string;
}

/** What the fault injector needs of the servers under test. */
export interface Servers {
  /** Every server name the network places ("sched" included when there is one). */
  readonly names: readonly string[];
  /** The servers clients talk to ("s1".."sN"). */
  readonly stores: readonly string[];
  readonly unexpected: readonly UnexpectedExit[];
  url(name: string): string;
  /** The ID the system gives server `name` (store ID for mrkv). */
  storeId(name: string): number;
  nameOf(storeId: number): string | undefined;
  isServing(name: string): boolean;
  pause(name: string): void;
  resume(name: string): void;
  kill(name: string): Promise<void>;
  restart(name: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Appends a server's output to its log file and keeps the last lines. */
class LogSink {
  readonly #file: Deno.FsFile;
  readonly #tail: string[] = [];
  #chain = Promise.resolve();

  constructor(path: string) {
    this.#file = Deno.openSync(path, { create: true, append: true });
  }

  note(line: string): void {
    this.#write(`---- chaos: ${line} ----\n`);
  }

  async drain(stream: ReadableStream<Uint8Array>): Promise<void> {
    let pending = "";
    try {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        this.#write(chunk);
        const parts = (pending + chunk).split("\n");
        pending = parts.pop()!;
        for (const l of parts) this.#keep(l);
      }
    } catch { /* the stream broke with the process */ }
    if (pending) this.#keep(pending);
  }

  tail(): string {
    return this.#tail.join("\n");
  }

  async close(): Promise<void> {
    await this.#chain;
    try {
      this.#file.close();
    } catch { /* closed */ }
  }

  #keep(line: string): void {
    this.#tail.push(line);
    if (this.#tail.length > TAIL_LINES) this.#tail.shift();
  }

  #write(text: string): void {
    const bytes = new TextEncoder().encode(text);
    this.#chain = this.#chain.then(async () => {
      let off = 0;
      while (off < bytes.length) off += await this.#file.write(bytes.subarray(off));
    }).catch(() => {});
  }
}

/** One server process (one incarnation). */
class ServerProc {
  readonly child: Deno.ChildProcess;
  readonly exited: Promise<Deno.CommandStatus>;
  done = false;
  /** Set when the tool stops or kills it on purpose. */
  expectExit = false;
  paused = false;

  constructor(argv: readonly string[], log: LogSink) {
    this.child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      cwd: REPO_ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const drained = Promise.all([log.drain(this.child.stdout), log.drain(this.child.stderr)]);
    this.exited = this.child.status.then(async (s) => {
      // Output may stay open a little longer; do not wait forever for it.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([drained, new Promise((r) => timer = setTimeout(r, 1_000))]);
      clearTimeout(timer);
      this.done = true;
      return s;
    });
  }

  signal(sig: Deno.Signal): void {
    if (this.done) return;
    try {
      this.child.kill(sig);
    } catch { /* exited meanwhile */ }
  }
}

/** Named server processes with fault operations; see the module comment. */
export abstract class ServerSet implements Servers {
  abstract readonly names: readonly string[];
  abstract readonly stores: readonly string[];
  readonly unexpected: UnexpectedExit[] = [];
  readonly #procs = new Map<string, ServerProc>();
  readonly #logs = new Map<string, LogSink>();

  constructor(readonly dir: string, readonly now: () => number) {}

  /** The command line that starts server `name` (already placed by the network). */
  protected abstract argv(name: string): string[];
  /** Resolves once server `name` serves; throws if it does not within `timeoutMs`. */
  abstract waitUp(name: string, timeoutMs?: number): Promise<void>;
  abstract url(name: string): string;
  abstract storeId(name: string): number;
  abstract nameOf(storeId: number): string | undefined;

  /** Starts server `name` (again, after a kill). */
  protected spawn(name: string): void {
    let log = this.#logs.get(name);
    if (!log) {
      Deno.mkdirSync(`${this.dir}/logs`, { recursive: true });
      log = new LogSink(`${this.dir}/logs/${name}.log`);
      this.#logs.set(name, log);
    }
    const p = new ServerProc(this.argv(name), log);
    this.#procs.set(name, p);
    p.exited.then((s) => {
      if (p.expectExit) return;
      this.unexpected.push({
        name,
        at: this.now(),
        code: s.code,
        signal: s.signal,
        tail: this.tail(name),
      });
    });
  }

  /** Throws if server `name` has exited. */
  protected checkAlive(name: string): void {
    const p = this.#procs.get(name);
    if (p?.done) throw new Error(`${name} exited`);
  }

  /** Whether `name` is running and not paused. */
  isServing(name: string): boolean {
    const p = this.#procs.get(name);
    return p !== undefined && !p.done && !p.paused;
  }

  /** `SIGSTOP`: the process freezes with its connections open. */
  pause(name: string): void {
    const p = this.#must(name);
    p.signal("SIGSTOP");
    p.paused = true;
    this.#note(name, "SIGSTOP");
  }

  /** `SIGCONT` after {@link pause}. */
  resume(name: string): void {
    const p = this.#must(name);
    p.signal("SIGCONT");
    p.paused = false;
    this.#note(name, "SIGCONT");
  }

  /** `kill -9`; resolves once the process is gone. */
  async kill(name: string): Promise<void> {
    const p = this.#must(name);
    p.expectExit = true;
    p.signal("SIGKILL");
    await p.exited;
    this.#note(name, "SIGKILL");
  }

  /** Starts a killed server again with the same command line; waits until it serves. */
  async restart(name: string, timeoutMs = 30_000): Promise<void> {
    const p = this.#procs.get(name);
    if (p && !p.done) throw new Error(`${name} is still running`);
    this.#note(name, "restart");
    this.spawn(name);
    await this.waitUp(name, timeoutMs);
  }

  /** The last lines `name` printed. */
  tail(name: string): string {
    return this.#logs.get(name)?.tail() ?? "";
  }

  /** Stops every process (SIGTERM, then SIGKILL after `graceMs`) and closes the logs. */
  async close(graceMs = 5_000): Promise<void> {
    const running = [...this.#procs.values()].filter((p) => !p.done);
    for (const p of running) {
      p.expectExit = true;
      if (p.paused) p.signal("SIGCONT");
      p.signal("SIGTERM");
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(running.map((p) => p.exited)),
      new Promise((r) => timer = setTimeout(r, graceMs)),
    ]);
    clearTimeout(timer);
    for (const p of running) p.signal("SIGKILL");
    await Promise.all(running.map((p) => p.exited.catch(() => {})));
    await Promise.all([...this.#logs.values()].map((l) => l.close()));
  }

  #must(name: string): ServerProc {
    const p = this.#procs.get(name);
    if (!p || p.done) throw new Error(`${name} is not running`);
    return p;
  }

  #note(name: string, what: string): void {
    this.#logs.get(name)?.note(`${what} at ${Math.round(this.now())} ms`);
  }
}
