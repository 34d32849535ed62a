/**
 * Where the chaos cluster's servers live on the network, and how partitions are made.
 *
 * {@link NetnsNet} (root, `ip` and `iptables` present): each server runs in its own network
 * namespace with one address on a private bridge the tool creates, 10.77.<n>.0/24 (server j
 * at .j, the bridge, and so the test process in the root namespace, at .254). A partition is a
 * set of server pairs that cannot talk: each namespace gets an iptables filter table dropping
 * traffic to and from the servers it is cut from (loaded atomically with `iptables-restore`);
 * the test process is never cut, so clients keep reaching every server.
 *
 * Runs do not collide: a run first claims a free <n> by creating `/run/mrkv-chaos/<n>.json`
 * (its pid and start time), and every name it creates carries <n> (`mkc<n>br`, `mkc<n>v<j>`,
 * namespaces `mkc<n>-<server>`). A claim whose process is gone is a crashed run: its leftovers
 * are removed before the next run starts. Everything is removed by {@link NetnsNet.close}.
 *
 * {@link LoopbackNet} is the fallback without namespaces: 127.0.0.1 and free ports, no
 * partitions.
 *
 * @module
 */
import { freePorts } from "../../tests/process_cluster.ts";

/** A pair of servers (by name: "sched", "s1"...) that must not reach each other. */
export type Cut = readonly [string, string];

/** The network the cluster runs on. */
export interface Net {
  readonly kind: "netns" | "loopback";
  /** One line for reports, e.g. "netns on 10.77.3.0/24". */
  readonly summary: string;
  /** `host:port` that server `name` listens on and others dial. */
  addr(name: string): string;
  /** The command line that runs `argv` as server `name`. */
  wrap(name: string, argv: readonly string[]): string[];
  /** Cuts `pairs` off from each other, both ways; replaces any earlier cut. */
  cut(pairs: readonly Cut[]): Promise<void>;
  /** Removes every cut. */
  heal(): Promise<void>;
  /** Removes everything the net created. Never throws. */
  close(): Promise<void>;
}

/** The result of running a helper command. */
interface CmdResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function cmd(argv: readonly string[], stdin?: string): Promise<CmdResult> {
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Runs `argv`; throws with its stderr if it fails. */
async function must(argv: readonly string[], stdin?: string): Promise<string> {
  let res: CmdResult;
  try {
    res = await cmd(argv, stdin);
  } catch (e) {
    throw new Error(`${argv.join(" ")}: ${(e as Error).message}`);
  }
  if (res.code !== 0) {
    throw new Error(`${argv.join(" ")} exited ${res.code}: ${res.stderr.trim().slice(0, 300)}`);
  }
  return res.stdout;
}

/** Why network namespaces cannot be used here, or undefined when they can. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return `network namespaces need Linux (this is ${Deno.build.os})`;
  if (Deno.uid() !== 0) return "network namespaces need root (run as root, e.g. in CI)";
  for (const [tool, pkg] of [["ip", "iproute2"], ["iptables-restore", "iptables"]]) {
    const ok = await cmd([tool!, "-V"]).then((r) => r.code === 0, () => false);
    if (!ok) return `${tool} is not installed (apt-get install -y ${pkg})`;
  }
  return undefined;
}

/** The iptables filter table for a namespace whose server may not reach `blockedIps`. */
export function filterTable(blockedIps: readonly string[]): string {
  const rules = blockedIps.flatMap((ip) => [
    `-A INPUT -s ${ip}/32 -j DROP`,
    `-A OUTPUT -d ${ip}/32 -j DROP`,
  ]);
  return [
    "*filter",
    ":INPUT ACCEPT [0:0]",
    ":FORWARD ACCEPT [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    ...rules,
    "COMMIT",
    "",
  ].join("\n");
}

/** For each server, the servers it is cut from. */
export function blockedBy(names: readonly string[], pairs: readonly Cut[]): Map<string, string[]> {
  const out = new Map(names.map((n) => [n, [] as string[]]));
  for (const [a, b] of pairs) {
    if (!out.has(a) || !out.has(b)) throw new Error(`cut names an unknown server: ${a}/${b}`);
    if (a === b) throw new Error(`cannot cut ${a} from itself`);
    if (!out.get(a)!.includes(b)) out.get(a)!.push(b);
    if (!out.get(b)!.includes(a)) out.get(b)!.push(a);
  }
  return out;
}

const STATE_DIR = "/run/mrkv-chaos";
const PREFIX = "mkc";
const SUBNET = (n: number) => `10.77.${n}`;
const SERVER_PORT = { sched: 2379, store: 20160 };

/** Start time of process `pid` (clock ticks since boot), or undefined if there is none. */
async function processStart(pid: number): Promise<string | undefined> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // Field 22; the command name (field 2) is in parentheses and may hold spaces.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** Servers in their own network namespaces on a private bridge. */
export class NetnsNet implements Net {
  readonly kind = "netns";
  readonly #index: Map<string, number>;

  private constructor(readonly n: number, readonly names: readonly string[]) {
    this.#index = new Map(names.map((name, i) => [name, i + 1]));
  }

  get summary(): string {
    return `netns on ${SUBNET(this.n)}.0/24 (bridge ${PREFIX}${this.n}br)`;
  }

  /** Claims a subnet and builds the bridge and one namespace per server in `names`. */
  static async create(names: readonly string[], log: (line: string) => void): Promise<NetnsNet> {
    if (names.length > 250) throw new Error("at most 250 servers");
    await Deno.mkdir(STATE_DIR, { recursive: true });
    await cleanLeftovers(log);
    const n = await claim();
    const net = new NetnsNet(n, names);
    try {
      await net.#build(log);
    } catch (e) {
      await net.close();
      throw e;
    }
    return net;
  }

  ip(name: string): string {
    const j = this.#index.get(name);
    if (j === undefined) throw new Error(`no server ${name}`);
    return `${SUBNET(this.n)}.${j}`;
  }

  /** The address of the test process (the bridge). */
  get hostIp(): string {
    return `${SUBNET(this.n)}.254`;
  }

  addr(name: string): string {
    return `${this.ip(name)}:${name === "sched" ? SERVER_PORT.sched : SERVER_PORT.store}`;
  }

  #ns(name: string): string {
    return `${PREFIX}${this.n}-${name}`;
  }

  wrap(name: string, argv: readonly string[]): string[] {
    // `ip netns exec` execs the command (no fork), so the child's pid is the server's pid.
    return ["ip", "netns", "exec", this.#ns(name), ...argv];
  }

  async cut(pairs: readonly Cut[]): Promise<void> {
    const blocked = blockedBy(this.names, pairs);
    await Promise.all(this.names.map((name) =>
      must(
        ["ip", "netns", "exec", this.#ns(name), "iptables-restore"],
        filterTable(blocked.get(name)!.map((b) => this.ip(b))),
      )
    ));
  }

  async heal(): Promise<void> {
    await this.cut([]);
  }

  async close(): Promise<void> {
    await teardown(this.n, () => {});
  }

  async #build(log: (line: string) => void): Promise<void> {
    const br = `${PREFIX}${this.n}br`;
    await must(["ip", "link", "add", br, "type", "bridge"]);
    await must(["ip", "addr", "add", `${this.hostIp}/24`, "dev", br]);
    await must(["ip", "link", "set", br, "up"]);
    for (const name of this.names) {
      const ns = this.#ns(name);
      const veth = `${PREFIX}${this.n}v${this.#index.get(name)}`;
      await must(["ip", "netns", "add", ns]);
      await must(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns]);
      await must(["ip", "link", "set", veth, "master", br, "up"]);
      await must(["ip", "-n", ns, "addr", "add", `${this.ip(name)}/24`, "dev", "eth0"]);
      await must(["ip", "-n", ns, "link", "set", "eth0", "up"]);
      await must(["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    // A host whose firewall drops forwarded or bridge traffic by default would cut everything;
    // these rules (removed on close) let the bridge's own traffic through.
    for (const rule of hostRules(this.n)) {
      const res = await cmd(["iptables", "-I", ...rule]);
      if (res.code !== 0) {
        log(`chaos: warning: iptables -I ${rule.join(" ")}: ${res.stderr.trim()}`);
      }
    }
  }
}

function hostRules(n: number): string[][] {
  const br = `${PREFIX}${n}br`;
  const tag = ["-m", "comment", "--comment", `mrkv-chaos-${n}`, "-j", "ACCEPT"];
  return [["FORWARD", "-i", br, "-o", br, ...tag], ["INPUT", "-i", br, ...tag], [
    "OUTPUT",
    "-o",
    br,
    ...tag,
  ]];
}

/** Claims the lowest free subnet number by creating its state file exclusively. */
async function claim(): Promise<number> {
  const start = await processStart(Deno.pid);
  for (let n = 1; n <= 250; n++) {
    try {
      const f = await Deno.open(`${STATE_DIR}/${n}.json`, { createNew: true, write: true });
      await f.write(new TextEncoder().encode(JSON.stringify({ pid: Deno.pid, start })));
      f.close();
      return n;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
  }
  throw new Error(`no free subnet: 250 chaos runs hold claims in ${STATE_DIR}`);
}

/** Numbers claimed by live runs. */
async function liveClaims(): Promise<Set<number>> {
  const live = new Set<number>();
  for await (const entry of Deno.readDir(STATE_DIR)) {
    const m = /^(\d+)\.json$/.exec(entry.name);
    if (!m) continue;
    try {
      const { pid, start } = JSON.parse(await Deno.readTextFile(`${STATE_DIR}/${entry.name}`));
      if (typeof pid === "number" && (await processStart(pid)) === start) live.add(Number(m[1]));
    } catch { /* unreadable or half-written: treated as dead below only if its owner is gone */ }
  }
  return live;
}

/** Removes what crashed earlier runs left: namespaces, links, host rules and claims. */
export async function cleanLeftovers(log: (line: string) => void): Promise<void> {
  const live = await liveClaims();
  const found = new Set<number>();
  for await (const entry of Deno.readDir(STATE_DIR)) {
    const m = /^(\d+)\.json$/.exec(entry.name);
    if (m) found.add(Number(m[1]));
  }
  const nsList = await cmd(["ip", "netns", "list"]);
  for (const m of nsList.stdout.matchAll(new RegExp(`^${PREFIX}(\\d+)-`, "gm"))) {
    found.add(Number(m[1]));
  }
  const links = await cmd(["ip", "-o", "link", "show"]);
  for (const m of links.stdout.matchAll(new RegExp(`^\\d+: ${PREFIX}(\\d+)(?:br|v\\d+)`, "gm"))) {
    found.add(Number(m[1]));
  }
  for (const n of found) {
    if (live.has(n)) continue;
    // A claim file younger than a few seconds may belong to a run still writing it.
    const age = await Deno.stat(`${STATE_DIR}/${n}.json`).then(
      (s) => Date.now() - (s.mtime?.getTime() ?? 0),
      () => Infinity,
    );
    if (age < 5_000) continue;
    log(`chaos: removing leftovers of an earlier run that did not finish (${SUBNET(n)}.0/24)`);
    await teardown(n, log);
  }
}

/** Removes everything of subnet number `n`: processes left in its namespaces, links, rules. */
async function teardown(n: number, log: (line: string) => void): Promise<void> {
  const list = await cmd(["ip", "netns", "list"]).catch(() => undefined);
  const namespaces = [...(list?.stdout ?? "").matchAll(new RegExp(`^(${PREFIX}${n}-\\S+)`, "gm"))]
    .map((m) => m[1]!);
  for (const ns of namespaces) {
    // Only servers this tool started run there; kill them so the namespace really goes away.
    const pids = await cmd(["ip", "netns", "pids", ns]).catch(() => undefined);
    for (const pid of (pids?.stdout ?? "").split(/\s+/).filter(Boolean)) {
      try {
        Deno.kill(Number(pid), "SIGKILL");
      } catch { /* gone */ }
    }
    const res = await cmd(["ip", "netns", "del", ns]).catch(() => undefined);
    if (res && res.code !== 0) log(`chaos: warning: ip netns del ${ns}: ${res.stderr.trim()}`);
  }
  await cmd(["ip", "link", "del", `${PREFIX}${n}br`]).catch(() => {});
  // Host-side veths go with their namespace; a half-built one may remain.
  const links = await cmd(["ip", "-o", "link", "show"]).catch(() => undefined);
  for (const m of (links?.stdout ?? "").matchAll(new RegExp(`^\\d+: (${PREFIX}${n}v\\d+)`, "gm"))) {
    await cmd(["ip", "link", "del", m[1]!]).catch(() => {});
  }
  for (const rule of hostRules(n)) {
    for (let i = 0; i < 5; i++) {
      const res = await cmd(["iptables", "-D", ...rule]).catch(() => undefined);
      if (!res || res.code !== 0) break;
    }
  }
  await Deno.remove(`${STATE_DIR}/${n}.json`).catch(() => {});
}

/** Every server on 127.0.0.1 with its own free port; partitions are not possible. */
export class LoopbackNet implements Net {
  readonly kind = "loopback";
  readonly summary = "loopback 127.0.0.1 (no network namespaces: partitions disabled)";
  readonly #ports: Map<string, number>;

  constructor(names: readonly string[]) {
    const ports = freePorts(names.length);
    this.#ports = new Map(names.map((n, i) => [n, ports[i]!]));
  }

  addr(name: string): string {
    const port = this.#ports.get(name);
    if (port === undefined) throw new Error(`no server ${name}`);
    return `127.0.0.1:${port}`;
  }

  wrap(_name: string, argv: readonly string[]): string[] {
    return [...argv];
  }

  cut(pairs: readonly Cut[]): Promise<void> {
    if (pairs.length === 0) return Promise.resolve();
    return Promise.reject(new Error("partitions need network namespaces (run as root)"));
  }

  heal(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
