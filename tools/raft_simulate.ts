/**
 * Runs the randomized raft simulation (raft/simulation.ts) from the command line:
 *
 *     deno run tools/raft_simulate.ts [firstSeed=1] [count=100] [steps=3000] [trace]
 *
 * With `trace`, every event of the run is printed (use it with count 1 to study a seed).
 * Exits 1 and prints the failing seed on a safety violation.
 *
 * @module
 */
import { runSimulation } from "../raft/simulation.ts";

const [first = "1", count = "100", steps = "3000", trace] = Deno.args;
const start = Number(first);
let applied = 0;
let leaders = 0;
let joint = 0;
let single = 0;
for (let seed = start; seed < start + Number(count); seed++) {
  try {
    const st = runSimulation({
      seed,
      steps: Number(steps),
      trace: trace === "trace" ? (line) => console.log(line) : undefined,
    });
    applied += st.appliedProposals;
    leaders += st.leaders;
    joint += st.jointEntered;
    single += st.confChangesV2 - st.jointEntered - st.jointLeft;
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(1);
  }
}
console.log(
  `ok: seeds ${start}..${
    start + Number(count) - 1
  }, ${applied} proposals applied, ${leaders} leaders elected, ${joint} joint configurations ` +
    `entered, ${single} single-step ConfChangeV2s applied`,
);
