/**
 * The documentation's examples run as written. Every `sh` block of the user-facing pages
 * ({@link EXAMPLE_FILES}, except a block marked `<!-- not run: why -->` on the line before it)
 * runs in bash, in order, one file per fresh in-process cluster on real HTTP, with the playground's addresses
 * (`127.0.0.1:2379`, `:20161`…`:20163`) and credentials (`@data/admin.header`) pointed at that
 * cluster. Each command line must exit 0
 * (or the code a trailing `# exit N` gives); each `curl` must answer 2xx, or the status a
 * trailing `# 404` (or `# 200 or 404`) gives. `deno task ctl` lines reach the same cluster.
 *
 * Also: every relative link in README.md and docs/ resolves inside the repository, and nothing
 * points at files outside it.
 */
import assert from "node:assert/strict";
import { type HttpCluster, startHttpCluster } from "./http_cluster.ts";
import { REPO_ROOT } from "./process_cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
/** Longest one file's examples may take (they start nothing that keeps running). */
const EXAMPLES_TIMEOUT_MS = 180_000;

/**
 * Pages whose examples are run: the user-facing ones. (The design pages' commands run
 * benchmarks and simulations: they are for people to run, not for every test run.)
 */
const EXAMPLE_FILES = [
  "README.md",
  "docs/api.md",
  "docs/architecture.md",
  "docs/configuration.md",
  "docs/operations.md",
];

/** Markdown files whose links are checked. */
async function docFiles(): Promise<string[]> {
  const files = ["README.md"];
  for await (const e of Deno.readDir(`${REPO_ROOT}docs`)) {
    if (e.isFile && e.name.endsWith(".md")) files.push(`docs/${e.name}`);
  }
  return files.sort();
}

/** One command of an example, with what it must produce. */
interface Example {
  readonly file: string;
  readonly line: number;
  readonly command: string;
  /** Statuses a curl may answer (empty: any 2xx). */
  readonly statuses: readonly number[];
  readonly exit: number;
}

/** The runnable commands of one markdown file, continuation lines joined. */
export function examplesOf(file: string, text: string): Example[] {
  const lines = text.split("\n");
  const out: Example[] = [];
  let inBlock = false, skip = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!inBlock && /^```sh\s*$/.test(line)) {
      inBlock = true;
      let j = i - 1;
      while (j >= 0 && lines[j]!.trim() === "") j--;
      skip = j >= 0 && /^<!-- not run/.test(lines[j]!.trim());
      continue;
    }
    if (inBlock && /^```\s*$/.test(line)) {
      inBlock = false;
      continue;
    }
    if (!inBlock || skip || line.trim() === "" || line.trim().startsWith("#")) continue;
    let command = line;
    const start = i + 1;
    while (command.trimEnd().endsWith("\\") && i + 1 < lines.length) {
      command = command.trimEnd().slice(0, -1) + " " + lines[++i]!.trim();
    }
    const comment = /\s#\s*(.*)$/.exec(command.replace(/'[^']*'|"(?:\\.|[^"\\])*"/g, "''"))?.[1] ??
      "";
    const m = /^(\d{3})((?: or \d{3})*)\b/.exec(comment);
    const statuses = m ? [m[1]!, ...m[2]!.split(" or ").filter(Boolean)].map(Number) : [];
    const exit = Number(/^exit (\d+)/.exec(comment)?.[1] ?? 0);
    out.push({ file, line: start, command, statuses, exit });
  }
  return out;
}

/** Rewrites the playground's addresses and credential files to `c`'s. */
function pointAt(command: string, c: HttpCluster): string {
  return command
    .replace(/@data\/(admin|client)\.header/g, (_, kind) => `@${c.dir}/${kind}.header`)
    .replaceAll("127.0.0.1:2379", new URL(c.schedulerUrl).host)
    .replace(/127\.0\.0\.1:2016([1-3])/g, (_, n) => new URL(c.storeUrls[Number(n) - 1]!).host);
}

/** Runs `examples` as one bash script against `c`; returns a failure per bad command. */
async function runExamples(examples: readonly Example[], c: HttpCluster): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-doc-examples-" });
  const log = `${dir}/log`;
  // curl keeps its output; the status of each request goes to the log (-D dumps headers).
  const script = [
    "set +e",
    `LOG=${log}`,
    `export MRKV_SCHEDULER=${c.schedulerUrl}`,
    `export MRKV_CLUSTER_SECRET_FILE=${c.secretFile}`,
    `curl() { local h; h=$(mktemp); command curl -sS -D "$h" "$@"; local rc=$?; ` +
    `echo "STATUS $(grep -a '^HTTP/' "$h" | tail -1 | cut -d' ' -f2)" >> "$LOG"; rm -f "$h"; return $rc; }`,
    ...examples.flatMap((e, i) => [
      `echo "BEGIN ${i}" >> "$LOG"`,
      pointAt(e.command, c),
      `echo "EXIT ${i} $?" >> "$LOG"`,
    ]),
  ].join("\n");
  // Its own process group, so that on timeout whatever an example started goes too.
  const child = new Deno.Command("bash", {
    args: ["-c", script],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: true,
  }).spawn();
  const timer = setTimeout(() => {
    try {
      Deno.kill(-child.pid, "SIGKILL");
    } catch { /* already gone */ }
  }, EXAMPLES_TIMEOUT_MS);
  const run = await child.output().finally(() => clearTimeout(timer));
  const output = new TextDecoder().decode(run.stdout) + new TextDecoder().decode(run.stderr);
  const text = await Deno.readTextFile(log).catch(() => "");
  await Deno.remove(dir, { recursive: true });
  const failures: string[] = [];
  const seen = new Map<number, { statuses: number[]; exit?: number }>();
  let current = -1;
  for (const line of text.split("\n")) {
    const [kind, a, b] = line.split(" ");
    if (kind === "BEGIN") seen.set(current = Number(a), { statuses: [] });
    else if (kind === "STATUS") seen.get(current)?.statuses.push(Number(a));
    else if (kind === "EXIT") seen.get(Number(a))!.exit = Number(b);
  }
  for (const [i, e] of examples.entries()) {
    const got = seen.get(i);
    const where = `${e.file}:${e.line}: ${e.command}`;
    if (got?.exit === undefined) {
      failures.push(`${where}: did not run`);
      continue;
    }
    if (got.exit !== e.exit) failures.push(`${where}: exit ${got.exit}, expected ${e.exit}`);
    for (const s of got.statuses) {
      const ok = e.statuses.length ? e.statuses.includes(s) : s >= 200 && s < 300;
      if (!ok) {
        failures.push(`${where}: answered ${s}, expected ${e.statuses.join(" or ") || "2xx"}`);
      }
    }
  }
  if (failures.length > 0) failures.push(`--- output ---\n${output.slice(-4000)}`);
  return failures;
}

Deno.test("examples: the parser finds commands, statuses, exit codes and skips marked blocks", () => {
  const md = [
    "```sh",
    "curl -X PUT --data-binary 'a # b' http://x/kv/k   # 204",
    "curl http://x/kv/missing   # 404 KeyNotFound",
    "curl -X DELETE http://x/operators/1   # 200 or 404 (already done)",
    "# a comment line",
    "deno task ctl kv get nothing   # exit 3",
    "curl -X POST -d '{}' \\",
    "    http://x/ops   # 400 unknown",
    "```",
    "<!-- not run: starts servers -->",
    "",
    "```sh",
    "deno run -A main.ts --role scheduler",
    "```",
  ].join("\n");
  const ex = examplesOf("t.md", md);
  assert.deepEqual(ex.map((e) => [e.line, e.statuses, e.exit]), [
    [2, [204], 0],
    [3, [404], 0],
    [4, [200, 404], 0],
    [6, [], 3],
    [7, [400], 0],
  ]);
  assert.equal(ex[4]!.command, "curl -X POST -d '{}'  http://x/ops   # 400 unknown");
});

Deno.test(
  "docs: every example of the user-facing pages runs against a live cluster",
  opts,
  async () => {
    for (const file of EXAMPLE_FILES) {
      const examples = examplesOf(file, await Deno.readTextFile(`${REPO_ROOT}${file}`));
      if (examples.length === 0) continue;
      const c = await startHttpCluster(3);
      try {
        const failures = await runExamples(examples, c);
        assert.deepEqual(failures, [], `${file}:\n${failures.join("\n")}`);
      } finally {
        await c.close();
      }
    }
  },
);

Deno.test("docs: relative links resolve inside the repository; nothing points outside it", async () => {
  const problems: string[] = [];
  for (const file of await docFiles()) {
    const text = await Deno.readTextFile(`${REPO_ROOT}${file}`);
    if (/\.\.\/shared|interface\.md|design\.md|anchor-systems|tinykv-project3/.test(text)) {
      problems.push(`${file}: mentions a file outside the repository`);
    }
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/.test(target) || target.startsWith("#")) continue;
      const path = target.split("#")[0]!;
      const resolved = new URL(path, new URL(file, `file://${REPO_ROOT}`)).pathname;
      if (!resolved.startsWith(REPO_ROOT)) {
        problems.push(`${file}: ${target} points outside the repository`);
        continue;
      }
      try {
        await Deno.stat(resolved);
      } catch {
        problems.push(`${file}: ${target} does not exist`);
      }
    }
  }
  assert.deepEqual(problems, []);
});
