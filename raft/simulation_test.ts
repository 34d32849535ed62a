/**
 * Randomized simulation (see simulation.ts): many seeds, each thousands of steps of message
 * loss, reordering, duplication, partitions, crash-restart, proposals, membership changes
 * (single-step and joint), leader transfers and quiescing groups, with Raft's safety properties
 * and config agreement checked after every step.
 *
 * 200 seeds by default; 10,000 with `MRKV_LONG=1` (`deno task test:long`). Replay one seed
 * with `MRKV_SEED=<seed>`.
 */
import assert from "node:assert/strict";
import { runSimulation, type SimulationStats } from "./simulation.ts";

const only = Deno.env.get("MRKV_SEED");
const long = Deno.env.get("MRKV_LONG") === "1";
const seeds = only !== undefined
  ? [Number(only)]
  : Array.from({ length: long ? 10_000 : 200 }, (_, i) => i + 1);

Deno.test(`simulation: ${seeds.length} seeds keep election safety, log matching, committed and applied prefixes, config agreement`, () => {
  const total = {
    committed: 0,
    applied: 0,
    leaders: 0,
    confChanges: 0,
    confChangesV2: 0,
    jointEntered: 0,
    jointLeft: 0,
    snapshots: 0,
    reads: 0,
    crashes: 0,
    quiesced: 0,
    followersSlept: 0,
  };
  let withLeaderChange = 0;
  for (const seed of seeds) {
    let st: SimulationStats;
    try {
      st = runSimulation({ seed, steps: 3000 });
    } catch (e) {
      console.error(`simulation failed for seed ${seed}; replay with MRKV_SEED=${seed}`);
      throw e;
    }
    total.committed += st.maxCommitted;
    total.applied += st.appliedProposals;
    total.leaders += st.leaders;
    total.confChanges += st.confChangesApplied;
    total.confChangesV2 += st.confChangesV2;
    total.jointEntered += st.jointEntered;
    total.jointLeft += st.jointLeft;
    total.snapshots += st.snapshotsSent;
    total.reads += st.readStates;
    total.crashes += st.crashes;
    total.quiesced += st.quiesced;
    total.followersSlept += st.followersSlept;
    if (st.leaders > 1) withLeaderChange++;
  }
  // The run must not pass vacuously: work was committed, leaders changed, every fault and
  // feature was exercised.
  const n = seeds.length;
  if (n === 1) return; // replaying one seed: the run itself is the check
  assert.ok(total.applied >= 20 * n, `too few proposals applied: ${total.applied} over ${n} seeds`);
  assert.ok(
    withLeaderChange >= Math.ceil(n / 2),
    `leadership changed in only ${withLeaderChange} of ${n} seeds`,
  );
  assert.ok(total.confChanges >= n, `too few conf changes applied: ${total.confChanges}`);
  // Joint consensus was exercised: joint configurations were entered and left again.
  assert.ok(total.jointEntered >= n / 4, `too few joint configurations: ${total.jointEntered}`);
  assert.ok(total.jointLeft >= n / 4, `too few joint configurations left: ${total.jointLeft}`);
  assert.ok(total.snapshots > 0, "no snapshot was ever sent");
  assert.ok(total.reads > 0, "no read index was ever served");
  assert.ok(total.crashes >= n, "too few crashes");
  assert.ok(total.quiesced >= n, `too few leaders quiesced: ${total.quiesced}`);
  assert.ok(total.followersSlept >= n, `too few followers slept: ${total.followersSlept}`);
  console.log(`simulation: ${n} seeds, ${JSON.stringify(total)}`);
});
