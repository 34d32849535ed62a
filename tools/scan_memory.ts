/**
 * Measures store memory under concurrent maximum-size scans (docs/security.md, "Bounded
 * resources"): starts a real 3-store cluster (secret mode, temp dirs), writes `--keys` values of
 * 1 MiB (the largest allowed), then runs `--scans` concurrent walks of `GET /kv?limit=10000`
 * pages (the largest page) against one store, `--rounds` times, while sampling every store's
 * resident memory (VmRSS from /proc) every 50 ms. Prints the peak RSS per store and whether it
 * stayed under `--max-mib`; exits 1 if not.
 *
 * The scan phase is bounded by `--seconds`: once it has passed, no scan asks for another page
 * (the pages in flight finish) and the report says how far the rounds got.
 *
 *   deno run -A tools/scan_memory.ts [--keys 24] [--scans 20] [--rounds 1] [--seconds 300]
 *
 * @module
 */
import { parseToolArgs } from "./_cli.ts";
import { ProcessCluster } from "../tests/process_cluster.ts";

const USAGE =
  `Usage: deno run -A tools/scan_memory.ts [--keys 24] [--scans 20] [--rounds 1] [--seconds 300] [--max-mib 1024]

Peak resident memory of a real 3-store cluster under concurrent maximum-size scans; exits 1
if a store went over --max-mib (docs/security.md, "Bounded resources").`;

const { values } = parseToolArgs({
  name: "scan_memory",
  usage: USAGE,
  options: {
    keys: { type: "string", default: "24" },
    scans: { type: "string", default: "20" },
    rounds: { type: "string", default: "1" },
    seconds: { type: "string", default: "300" },
    "max-mib": { type: "string", default: "1024" },
  },
});
const keys = Number(values.keys);
const scans = Number(values.scans);
const rounds = Number(values.rounds);
const budgetMs = Number(values.seconds) * 1000;
const maxBytes = Number(values["max-mib"]) * 1024 * 1024;
const MIB = 1024 * 1024;
const mib = (n: number) => `${(n / MIB).toFixed(0)} MiB`;

function rssBytes(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * `next` of a scan page, read from the end of the JSON (`..."next":"…"}` or `"next":null}`):
 * parsing a whole page of 1 MiB values in this process would cost more than the stores' work.
 */
function nextOf(body: Uint8Array): string | null {
  const tail = new TextDecoder().decode(body.subarray(Math.max(0, body.length - 8192)));
  const m = /"next":(null|"(?:[^"\\]|\\.)*")\}\s*$/.exec(tail);
  if (!m) throw new Error(`a scan page without "next": …${tail.slice(-200)}`);
  return JSON.parse(m[1]!);
}

const c = await ProcessCluster.start({ stores: 3 });
let peakOver = false;
try {
  await c.waitRegionVoters(1, 3);
  const value = new Uint8Array(MIB).map((_, i) => i * 7);
  const t0 = Date.now();
  for (let i = 0; i < keys; i += 4) {
    await Promise.all([0, 1, 2, 3].map(async (j) => {
      if (i + j >= keys) return;
      for (let attempt = 0;; attempt++) {
        const res = await c.fetch(
          `${c.storeUrl((i + j) % 3)}/kv/big${String(i + j).padStart(5, "0")}`,
          { method: "PUT", body: value, signal: AbortSignal.timeout(30_000) },
        ).catch((e: Error) => e);
        if (res instanceof Response) {
          await res.arrayBuffer();
          if (res.status === 204) return;
        }
        if (attempt > 50) {
          throw new Error(`PUT failed: ${res instanceof Response ? res.status : res.message}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }));
  }
  console.log(`wrote ${keys} values of 1 MiB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  // The process serving a store is the `deno run` child itself.
  const pids = [0, 1, 2].map((i) => c.proc(i)!.pid);
  const base = pids.map(rssBytes);
  const peak = [...base];
  const sampler = setInterval(() => {
    pids.forEach((pid, i) => peak[i] = Math.max(peak[i]!, rssBytes(pid)));
  }, 50);
  let pages = 0;
  const retries = new Map<string, number>();
  const pageMs: number[] = [];
  let bytes = 0;
  let finishedScans = 0;
  let roundsDone = 0;
  const t1 = Date.now();
  const deadline = t1 + budgetMs;
  for (let round = 0; round < rounds && Date.now() < deadline; round++) {
    await Promise.all(Array.from({ length: scans }, async () => {
      let start = "";
      while (Date.now() < deadline) {
        const q = new URLSearchParams({ start, limit: "10000" });
        const asked = Date.now();
        const res = await c.fetch(`${c.storeUrl(0)}/kv?${q}`, {
          signal: AbortSignal.timeout(60_000),
        });
        const body = new Uint8Array(await res.arrayBuffer());
        if (res.status === 503) {
          // A retryable answer: no slot free in time, or the page took longer than an attempt.
          const code = /"code":"(\w+)"/.exec(new TextDecoder().decode(body))?.[1] ?? "?";
          retries.set(code, (retries.get(code) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        if (res.status !== 200) {
          throw new Error(`scan answered ${res.status}: ${new TextDecoder().decode(body)}`);
        }
        pages++;
        pageMs.push(Date.now() - asked);
        bytes += body.length;
        const next = nextOf(body);
        if (next === null) {
          finishedScans++;
          return;
        }
        start = next;
      }
    }));
    if (Date.now() < deadline) roundsDone++;
  }
  clearInterval(sampler);
  pids.forEach((pid, i) => peak[i] = Math.max(peak[i]!, rssBytes(pid)));
  console.log(
    `${scans} concurrent scans × ${rounds} rounds (limit 10000, ${keys} values of 1 MiB): ` +
      `${roundsDone}/${rounds} rounds and ${finishedScans}/${scans * rounds} scans finished, ` +
      `${pages} pages (${mib(bytes)} of JSON) in ${((Date.now() - t1) / 1000).toFixed(1)} s` +
      `${Date.now() >= deadline ? ` (stopped at the ${budgetMs / 1000} s budget)` : ""}, ` +
      `pages retried after a 503: ${JSON.stringify(Object.fromEntries(retries))}`,
  );
  pageMs.sort((a, b) => a - b);
  const at = (q: number) => pageMs[Math.min(pageMs.length - 1, Math.floor(q * pageMs.length))];
  console.log(`page latency (answered 200): p50 ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${at(1)} ms`);
  pids.forEach((_, i) =>
    console.log(
      `store slot ${i} (store ${c.storeId(i)}): RSS before ${mib(base[i]!)}, ` +
        `peak during scans ${mib(peak[i]!)}`,
    )
  );
  const worst = Math.max(...peak);
  peakOver = worst >= maxBytes;
  console.log(`highest peak ${mib(worst)}: ${peakOver ? "OVER" : "under"} ${mib(maxBytes)}`);
  await c.shutdown();
} finally {
  await c.close();
}
if (peakOver) Deno.exit(1);
