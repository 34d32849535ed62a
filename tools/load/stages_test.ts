import assert from "node:assert/strict";
import { parseSamples, stagesTable, storeStages } from "./stages.ts";

const before = parseSamples(`# HELP x
mrkv_kv_request_duration_seconds_sum{op="put",code="204",forwarded="false"} 1
mrkv_kv_request_duration_seconds_count{op="put",code="204",forwarded="false"} 10
mrkv_propose_apply_duration_seconds_sum 2
mrkv_propose_apply_duration_seconds_count 20
mrkv_raft_log_write_seconds_total 0.5
mrkv_raft_log_writes_total 100
mrkv_raft_send_duration_seconds_sum{result="ok"} 1
mrkv_raft_send_duration_seconds_count{result="ok"} 100
process_cpu_seconds_total 3
not a sample line
`);
const after = parseSamples(
  `mrkv_kv_request_duration_seconds_sum{op="put",code="204",forwarded="false"} 1.5
mrkv_kv_request_duration_seconds_count{op="put",code="204",forwarded="false"} 60
mrkv_kv_request_duration_seconds_sum{op="put",code="204",forwarded="true"} 0.4
mrkv_kv_request_duration_seconds_count{op="put",code="204",forwarded="true"} 50
mrkv_propose_apply_duration_seconds_sum 2.7
mrkv_propose_apply_duration_seconds_count 120
mrkv_raft_log_write_seconds_total 0.8
mrkv_raft_log_writes_total 200
mrkv_raft_log_fsyncs_total 100
mrkv_raft_send_duration_seconds_sum{result="ok"} 1.4
mrkv_raft_send_duration_seconds_count{result="ok"} 300
mrkv_ready_passes_total 250
process_cpu_seconds_total 3.25
`,
);

Deno.test("stages are the means of what happened between the two scrapes, in ms", () => {
  const s = storeStages(before, after);
  assert.equal(s.leader, true);
  assert.equal(s.writes, 50);
  assert.ok(Math.abs(s.clientWriteMs! - 10) < 1e-9, `client ${s.clientWriteMs}`);
  assert.ok(Math.abs(s.forwardedWriteMs! - 8) < 1e-9);
  assert.ok(Math.abs(s.proposeApplyMs! - 7) < 1e-9);
  assert.ok(Math.abs(s.logWriteMs! - 3) < 1e-9);
  assert.ok(Math.abs(s.raftSendMs! - 2) < 1e-9);
  assert.equal(s.passWriteMs, undefined, "nothing observed");
  assert.equal(s.logFsyncs, 100);
  assert.equal(s.raftSends, 200);
  assert.ok(Math.abs(s.cpuSeconds - 0.25) < 1e-9);
  const table = stagesTable([{ name: "s1", stages: s }]);
  assert.match(
    table,
    /\| s1 \| leader \| 10\.00 \| 8\.00 \| 7\.00 \| – \| 3\.00 \| 2\.00 \| 2\.00, 4\.00, 5\.00, 5\.00 \|/,
  );
  assert.match(table, /50 client writes; all stores' CPU: 5\.00 ms per write/);
});

Deno.test("a store that proposed nothing is a follower, and an idle run divides by nothing", () => {
  const s = storeStages(before, before);
  assert.equal(s.leader, false);
  assert.equal(s.clientWriteMs, undefined);
  assert.match(stagesTable([{ name: "s", stages: s }]), /0 client writes; all stores' CPU: – ms/);
});
