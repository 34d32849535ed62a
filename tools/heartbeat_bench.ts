/**
 * Heartbeat throughput of the scheduler: 10,000 regions on 5 stores, reported the way stores
 * report them (one `region_heartbeat` request per store per round carrying every region that
 * store leads), over real HTTP on 127.0.0.1 against an in-process scheduler.
 *
 * Prints region heartbeats processed per second for three kinds of rounds: the first report
 * (every region new), unchanged reports (the common case), and reports where every region's
 * size changed.
 *
 *   deno run -A tools/heartbeat_bench.ts [--regions 10000] [--rounds 5]
 *
 * @module
 */
import { parseCommandLine } from "../config/config.ts";
import { CBOR_CONTENT_TYPE, encodeCbor } from "../proto/codec.ts";
import type { Peer, Region } from "../proto/metapb.ts";
import { type RegionHeartbeat, RPC_PREFIX } from "../proto/pdpb.ts";
import { startScheduler } from "../scheduler/mod.ts";
import { intFlag, parseToolArgs } from "./_cli.ts";

const { values } = parseToolArgs({
  name: "heartbeat_bench",
  usage: `usage: deno run -A tools/heartbeat_bench.ts [--regions N] [--rounds N]

Region heartbeats per second an in-process scheduler handles over HTTP on 127.0.0.1, for
regions spread over 5 stores: the first report, unchanged reports, reports with every size
changed.

  --regions N     regions to report, 1 to 1000000 [10000]
  --rounds N      rounds of each kind, 1 to 1000 [5]
  -h, --help      this help
  -V, --version   the version`,
  options: {
    regions: { type: "string", default: "10000" },
    rounds: { type: "string", default: "5" },
  },
});
const REGIONS = intFlag("heartbeat_bench", "--regions", values.regions, 1, 1_000_000);
const ROUNDS = intFlag("heartbeat_bench", "--rounds", values.rounds, 1, 1000);
const STORES = [1, 2, 3, 4, 5];

const dir = await Deno.makeTempDir({ prefix: "mrkv-hb-bench-" });
const parsed = parseCommandLine(["--role", "scheduler", "--data-dir", dir, "--log-level", "error"]);
if (parsed.help) Deno.exit(0);
const server = await startScheduler({ ...parsed.config, addr: "127.0.0.1:0" }, {
  runCoordinator: false,
});

async function call(method: string, body: Uint8Array<ArrayBuffer> | object): Promise<void> {
  const res = await fetch(`http://${server.addr}${RPC_PREFIX}/${method}`, {
    method: "POST",
    body: body instanceof Uint8Array ? body : encodeCbor(body),
    headers: { "content-type": CBOR_CONTENT_TYPE },
  });
  if (!res.ok) throw new Error(`${method}: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
}

for (const id of STORES) {
  await call("put_store", { store: { id, address: `127.0.0.1:${20160 + id}` } });
}
const key = (i: number) => new TextEncoder().encode(`t_${String(i).padStart(8, "0")}`);
const byStore = new Map<number, RegionHeartbeat[]>(STORES.map((s) => [s, []]));
let peerId = 100_000;
for (let i = 0; i < REGIONS; i++) {
  const stores = [0, 1, 2].map((j) => STORES[(i + j) % STORES.length]!);
  const peers: Peer[] = stores.map((storeId) => ({ id: peerId++, storeId, role: "Voter" }));
  const region: Region = {
    id: 1_000 + i,
    startKey: i === 0 ? new Uint8Array() : key(i),
    endKey: i === REGIONS - 1 ? new Uint8Array() : key(i + 1),
    epoch: { confVer: 3, version: 2 },
    peers,
  };
  byStore.get(stores[0]!)!.push({
    region,
    leader: peers[0]!,
    pendingPeers: [],
    downPeers: [],
    approximateSize: 64 << 20,
    approximateKeys: 100_000,
  });
}

/**
 * One round: every store sends its batch at once. Bodies are encoded before the clock starts,
 * since stores encode in their own processes; what is timed is the scheduler's work (decode,
 * validate, admit, encode the answer) plus loopback HTTP.
 */
async function round(mutate?: (hb: RegionHeartbeat) => RegionHeartbeat): Promise<number> {
  const bodies = STORES.map((s) => {
    const hbs = byStore.get(s)!.map((hb) => (mutate ? mutate(hb) : hb));
    byStore.set(s, hbs);
    return encodeCbor({ heartbeats: hbs });
  });
  const start = performance.now();
  await Promise.all(bodies.map((body) => call("region_heartbeat", body)));
  return REGIONS / ((performance.now() - start) / 1000);
}

const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
// Warm up the JIT on a separate cluster-sized batch before measuring.
for (let i = 0; i < 2; i++) encodeCbor({ heartbeats: byStore.get(1) });
console.log(`first report of ${REGIONS} regions: ${fmt(await round())} heartbeats/s`);
const unchanged: number[] = [];
for (let i = 0; i < ROUNDS; i++) unchanged.push(await round());
console.log(`unchanged: ${unchanged.map(fmt).join(", ")} heartbeats/s`);
const changed: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  changed.push(await round((hb) => ({ ...hb, approximateSize: hb.approximateSize + 1 })));
}
console.log(`every size changed: ${changed.map(fmt).join(", ")} heartbeats/s`);
console.log(`regions in the map: ${server.cluster.regions.count}`);
await server.stop();
await Deno.remove(dir, { recursive: true });
