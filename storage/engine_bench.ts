/**
 * Engine throughput on a Deno KV file in a temp dir: `deno bench -A storage/engine_bench.ts`.
 * Per-iteration time of the batched bench ÷ 1000 is the cost of one batched put.
 */
import { KvEngine } from "./engine.ts";

const dir = await Deno.makeTempDir({ prefix: "mrkv-bench-" });
const engine = await KvEngine.open(dir);
globalThis.addEventListener("unload", () => {
  engine.close();
  Deno.removeSync(dir, { recursive: true });
});

const value128 = new Uint8Array(128).fill(7);
const value1m = new Uint8Array(1024 * 1024).fill(9);
let seq = 0;
const key = (i: number) => new TextEncoder().encode(`key${String(i).padStart(10, "0")}`);

Deno.bench("1000 puts of 128 B in one WriteBatch (one commit)", { group: "put" }, async () => {
  const batch = engine.batch();
  for (let i = 0; i < 1000; i++) batch.putData(key(seq++ % 100_000), value128);
  await engine.write(batch);
});

Deno.bench("one put of 128 B per write (one commit each)", { group: "put" }, async () => {
  await engine.write(engine.batch().putData(key(seq++ % 100_000), value128));
});

Deno.bench("5000 puts of 128 B in one WriteBatch (5 commits)", async () => {
  const batch = engine.batch();
  for (let i = 0; i < 5000; i++) batch.putData(key(seq++ % 100_000), value128);
  await engine.write(batch);
});

Deno.bench("one put of a 1 MiB value (16 pieces + head, 2 commits)", async () => {
  await engine.write(engine.batch().putData(key(1_000_000), value1m));
});

Deno.bench("get of a 128 B value", async () => {
  await engine.get(key(seq++ % 1000));
});

Deno.bench("get of a 1 MiB value", async () => {
  await engine.get(key(1_000_000));
});

Deno.bench("scan of 1000 keys", async () => {
  await engine.scan(key(0), undefined, 1000);
});
