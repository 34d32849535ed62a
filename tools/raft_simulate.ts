/**
 * Runs the randomized raft simulation (raft/simulation.ts) from the command line:
 *
 *     deno run tools/raft_simulate.ts [FIRST_SEED=1] [COUNT=100] [STEPS=3000] [trace]
 *
 * With `trace`, every event of the run is printed (use it with count 1 to study a seed).
 * Exits 1 and prints the failing seed on a safety violation, 2 on bad arguments.
 *
 * @module
 */
import { runSimulation } from "../raft/simulation.ts";
import { intFlag, parseToolArgs, usageExit } from "./_cli.ts";

const { positionals } = parseToolArgs({
  name: "raft_simulate",
  usage: `usage: deno run tools/raft_simulate.ts [FIRST_SEED] [COUNT] [STEPS] [trace]

Runs COUNT seeded simulations of a Raft group (partitions, crashes, message loss) from
FIRST_SEED, STEPS steps each, checking the safety properties after every step.

  FIRST_SEED      the first seed [1]
  COUNT           how many seeds, 1 to 1000000 [100]
  STEPS           steps per seed, 1 to 10000000 [3000]
  trace           print every event (use with COUNT 1 to study one seed)
  -h, --help      this help
  -V, --version   the version`,
  options: {},
  positionals: true,
});
if (positionals.length > 4 || (positionals[3] !== undefined && positionals[3] !== "trace")) {
  usageExit("raft_simulate", `unexpected argument "${positionals.at(-1)}"`);
}
const [first = "1", count = "100", steps = "3000", trace] = positionals;
const start = intFlag("raft_simulate", "FIRST_SEED", first, 0, Number.MAX_SAFE_INTEGER - 1e6);
const n = intFlag("raft_simulate", "COUNT", count, 1, 1_000_000);
const stepCount = intFlag("raft_simulate", "STEPS", steps, 1, 10_000_000);
let applied = 0;
let leaders = 0;
let joint = 0;
let single = 0;
for (let seed = start; seed < start + n; seed++) {
  try {
    const st = runSimulation({
      seed,
      steps: stepCount,
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
    start + n - 1
  }, ${applied} proposals applied, ${leaders} leaders elected, ` +
    `${joint} joint configurations entered, ${single} single-step ConfChangeV2s applied`,
);
