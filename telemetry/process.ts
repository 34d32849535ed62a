/**
 * Process-level metrics every role exposes (the `process_*` family Prometheus client libraries
 * share, so standard dashboards work), `mrkv_build_info`, and the capacity of the filesystem
 * that holds a data directory.
 *
 * @module
 */
import { statfsSync } from "node:fs";
import process from "node:process";
import type { Registry } from "./metrics.ts";
import { VERSION } from "./version.ts";

/** Seconds since the epoch when this process started (approximately: when this module loaded). */
const START_TIME_SECONDS = Math.floor(Date.now() / 1000 - performance.now() / 1000);

/** Declares `process_*` and `mrkv_build_info{role=...}` on `registry`. */
export function registerProcessMetrics(registry: Registry, role: string): void {
  registry.counter({
    name: "process_cpu_seconds_total",
    help: "User and system CPU time spent, in seconds.",
    collect: () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1e6;
    },
  });
  registry.gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes.",
    collect: () => Deno.memoryUsage().rss,
  });
  registry.gauge({
    name: "process_heap_bytes",
    help: "JavaScript heap in use, in bytes.",
    collect: () => Deno.memoryUsage().heapUsed,
  });
  registry.gauge({
    name: "process_start_time_seconds",
    help: "Start time of the process since the Unix epoch, in seconds.",
    collect: () => START_TIME_SECONDS,
  });
  if (Deno.build.os === "linux") {
    registry.gauge({
      name: "process_open_fds",
      help: "Open file descriptors.",
      collect: () => countOpenFds(),
    });
    registry.gauge({
      name: "process_max_fds",
      help: "Most file descriptors the process may open.",
      collect: () => maxFds(),
    });
  }
  registry.gauge({
    name: "mrkv_build_info",
    help: "Always 1; the labels say which build and runtime is running.",
    labels: ["version", "role", "deno", "v8", "typescript"],
    collect: () => [[{ version: VERSION, role, ...Deno.version }, 1]],
  });
}

function countOpenFds(): number {
  let n = 0;
  for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
  return n;
}

function maxFds(): number {
  const text = Deno.readTextFileSync("/proc/self/limits");
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(text);
  return !m || m[1] === "unlimited" ? Infinity : Number(m[1]);
}

/** Size and free space of a filesystem, in bytes. */
export interface DiskStats {
  /** Total size of the filesystem. */
  readonly capacity: number;
  /** Bytes an unprivileged process may still write. */
  readonly available: number;
}

/** The filesystem holding `path` (0s if it cannot be read, e.g. the path is gone). */
export function diskStats(path: string): DiskStats {
  try {
    const s = statfsSync(path);
    return { capacity: s.blocks * s.bsize, available: s.bavail * s.bsize };
  } catch {
    return { capacity: 0, available: 0 };
  }
}
