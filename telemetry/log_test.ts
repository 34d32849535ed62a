/** Log lines: one per event, levels filtered, bound fields, message prefixes lifted into fields. */
import assert from "node:assert/strict";
import { formatLine, Logger, type LogLevel } from "./log.ts";

function collect(level: LogLevel = "info") {
  const lines: string[] = [];
  const log = new Logger({
    level,
    fields: { role: "store" },
    sink: (l) => lines.push(l),
    now: () => Date.UTC(2025, 4, 1, 10, 0, 0),
  });
  return { log, lines };
}

Deno.test("a line has time, level, bound fields, then the message; lower levels are dropped", () => {
  const { log, lines } = collect("warn");
  log.info("not shown");
  log.debug("not shown either");
  log.warn("disk is slow", { ms: 120 });
  log.error("oh no");
  assert.deepEqual(lines, [
    'time=2025-05-01T10:00:00.000Z level=WARN role=store ms=120 msg="disk is slow"',
    'time=2025-05-01T10:00:00.000Z level=ERROR role=store msg="oh no"',
  ]);
});

Deno.test("a `region N: ` or `store N: ` prefix becomes a field; a child adds fields", () => {
  const { log, lines } = collect();
  const store = log.child({ store: 4 });
  store.info("region 7: installed snapshot at index 12");
  store.info("store 4: started with 3 region peers");
  store.info("store 5: is someone else", { peer: 9 });
  store.info("region 7: peer 3 was removed; destroying it");
  store.info("region 7: created peer 5 on demand (from peer 3)");
  assert.deepEqual(lines, [
    'time=2025-05-01T10:00:00.000Z level=INFO role=store store=4 region=7 msg="installed snapshot at index 12"',
    'time=2025-05-01T10:00:00.000Z level=INFO role=store store=4 msg="started with 3 region peers"',
    'time=2025-05-01T10:00:00.000Z level=INFO role=store store=4 peer=9 msg="store 5: is someone else"',
    'time=2025-05-01T10:00:00.000Z level=INFO role=store store=4 region=7 peer=3 msg="peer 3 was removed; destroying it"',
    'time=2025-05-01T10:00:00.000Z level=INFO role=store store=4 region=7 peer=5 msg="created peer 5 on demand (from peer 3)"',
  ]);
});

Deno.test("values are quoted and escaped so that every event stays on one line", () => {
  const line = formatLine(new Date(0), "error", 'failed:\n  at "x"\\y', {
    path: "/data dir",
    empty: "",
    skipped: undefined,
    ok: true,
  });
  assert.equal(
    line,
    'time=1970-01-01T00:00:00.000Z level=ERROR path="/data dir" empty="" ok=true msg="failed:\\n  at \\"x\\"\\\\y"',
  );
  assert.ok(!line.includes("\n"));
});
