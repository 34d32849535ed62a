/** Process metrics, build info and the data directory's filesystem figures are real numbers. */
import assert from "node:assert/strict";
import { Registry } from "./metrics.ts";
import { diskStats, registerProcessMetrics } from "./process.ts";
import { VERSION } from "./version.ts";

Deno.test("process_* and mrkv_build_info render with live values", () => {
  const r = new Registry();
  registerProcessMetrics(r, "store");
  const text = r.render();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
  assert.ok(value("process_resident_memory_bytes") > 1024 * 1024, text);
  assert.ok(value("process_cpu_seconds_total") > 0, text);
  assert.ok(Math.abs(value("process_start_time_seconds") - Date.now() / 1000) < 3600, text);
  if (Deno.build.os === "linux") assert.ok(value("process_open_fds") >= 3, text);
  assert.match(
    text,
    new RegExp(`^mrkv_build_info\\{version="${VERSION}",role="store",deno="`, "m"),
  );
});

Deno.test("diskStats reads the filesystem that holds a directory, and 0s for a missing path", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const d = diskStats(dir);
    assert.ok(d.capacity > 0 && d.available > 0 && d.available <= d.capacity, JSON.stringify(d));
    assert.deepEqual(diskStats(`${dir}/missing/deeper`), { capacity: 0, available: 0 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
