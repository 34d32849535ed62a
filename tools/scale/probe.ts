/**
 * What the scale benchmark reads from the running processes: CPU time and resident memory from
 * /proc, and counters from `/metrics` pages.
 *
 * @module
 */

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux). */
const CLOCK_TICKS = 100;

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Resident memory of a process, in bytes. */
export function rssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** The 1-minute load average. */
export function loadAverage(): number {
  return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
}

/** The value of an unlabelled sample `name` in a Prometheus text page (0 if absent). */
export function metricValue(page: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{\\})? ([0-9.eE+-]+)$`, "m").exec(page);
  return m ? Number(m[1]) : 0;
}
