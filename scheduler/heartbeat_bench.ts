/**
 * `deno bench -A scheduler/`: the scheduler's work for one batch of 10,000 region heartbeats
 * (CBOR decode, validation, admission, CBOR answer), without HTTP. Divide 10,000 by the time
 * per iteration for heartbeats/s. `tools/heartbeat_bench.ts` measures the same over HTTP.
 */
import { decodeCbor, encodeCbor } from "../proto/codec.ts";
import { decodeRegionHeartbeatRequest } from "../proto/pdpb.ts";
import { benchHeartbeats } from "./_bench_heartbeats.ts";
import { openTestCluster } from "./_test_cluster.ts";

const N = 10_000;
const hbs = benchHeartbeats(N);
const unchanged = encodeCbor({ heartbeats: hbs });
const changed = [1, 2].map((d) =>
  encodeCbor({ heartbeats: hbs.map((h) => ({ ...h, approximateSize: h.approximateSize + d })) })
);
const t = await openTestCluster();
t.cluster.handleRegionHeartbeats(hbs);

function process(body: Uint8Array): Uint8Array {
  const req = decodeRegionHeartbeatRequest(decodeCbor(body));
  return encodeCbor({ results: t.cluster.handleRegionHeartbeats(req.heartbeats) });
}

Deno.bench("10,000 unchanged region heartbeats (decode, admit, answer)", () => {
  process(unchanged);
});

let flip = 0;
Deno.bench("10,000 region heartbeats, every size changed", () => {
  process(changed[flip++ % 2]!);
});

Deno.bench("admission only: 10,000 unchanged heartbeats, already decoded", () => {
  t.cluster.handleRegionHeartbeats(hbs);
});

const sized = [1, 2].map((d) => hbs.map((h) => ({ ...h, approximateSize: h.approximateSize + d })));
Deno.bench("admission only: 10,000 heartbeats with new sizes, already decoded", () => {
  t.cluster.handleRegionHeartbeats(sized[flip++ % 2]!);
});
