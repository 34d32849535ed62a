/**
 * The membership rules of confchange.ts, table-driven: each case applies ConfChangeV2s in
 * order to a starting configuration and expects the resulting ConfState after each, or the
 * refusal (the input configuration is never modified); plus the ConfState invariants.
 */
import assert from "node:assert/strict";
import {
  changeConfig,
  configFromConfState,
  confStateOfConfig,
  confStateProblem,
  entersJoint,
  simpleChange,
} from "./confchange.ts";
import { ConfChangeError } from "./errors.ts";
import {
  ccAdd as add,
  ccLearner as learner,
  ccRemove as remove,
  ccV2 as v2,
  confState as cs,
  LEAVE_JOINT as LEAVE,
} from "./testing/conf.ts";
import type { ConfChangeV2, ConfState } from "./types.ts";

interface Case {
  name: string;
  start: ConfState;
  /** Each step: the change and the expected configuration, or a refusal (regex). */
  steps: [ConfChangeV2, ConfState | RegExp][];
}

const cases: Case[] = [
  {
    name: "replace a voter through a joint configuration, auto leave",
    start: cs([1, 2, 3]),
    steps: [
      [v2("Auto", add(4), remove(3)), cs([1, 2, 4], [], { out: [1, 2, 3], auto: true })],
      [LEAVE, cs([1, 2, 4])],
    ],
  },
  {
    name: "explicit joint: the application leaves",
    start: cs([1, 2, 3]),
    steps: [
      [v2("JointExplicit", add(4), remove(3)), cs([1, 2, 4], [], { out: [1, 2, 3] })],
      [LEAVE, cs([1, 2, 4])],
    ],
  },
  {
    name: "implicit joint for one change",
    start: cs([1, 2, 3]),
    steps: [
      [v2("JointImplicit", add(4)), cs([1, 2, 3, 4], [], { out: [1, 2, 3], auto: true })],
      [LEAVE, cs([1, 2, 3, 4])],
    ],
  },
  {
    name: "demote a voter while adding another: the demoted one waits in learnersNext",
    start: cs([1, 2, 3]),
    steps: [
      [
        v2("Auto", add(4), learner(3)),
        cs([1, 2, 4], [], { out: [1, 2, 3], next: [3], auto: true }),
      ],
      [LEAVE, cs([1, 2, 4], [3])],
    ],
  },
  {
    name: "add a voter and a learner at once; the learner is a learner at once",
    start: cs([1, 2, 3]),
    steps: [
      [v2("Auto", add(4), learner(5)), cs([1, 2, 3, 4], [5], { out: [1, 2, 3], auto: true })],
      [LEAVE, cs([1, 2, 3, 4], [5])],
    ],
  },
  {
    name: "promote a learner and remove a voter",
    start: cs([1, 2, 3], [4]),
    steps: [
      [v2("JointExplicit", add(4), remove(1)), cs([2, 3, 4], [], { out: [1, 2, 3] })],
      [LEAVE, cs([2, 3, 4])],
    ],
  },
  {
    name: "a demoted voter promoted back in the same change leaves learnersNext",
    start: cs([1, 2, 3]),
    steps: [
      [v2("JointExplicit", learner(3), add(3), add(4)), cs([1, 2, 3, 4], [], { out: [1, 2, 3] })],
      [LEAVE, cs([1, 2, 3, 4])],
    ],
  },
  {
    name: "a removed outgoing voter can be demoted to learnersNext",
    start: cs([1, 2, 3]),
    steps: [
      [v2("JointExplicit", remove(3), learner(3)), cs([1, 2], [], { out: [1, 2, 3], next: [3] })],
      [LEAVE, cs([1, 2], [3])],
    ],
  },
  {
    name: "single step: add, demote, promote, remove one voter at a time",
    start: cs([1, 2, 3]),
    steps: [
      [v2("Auto", add(4)), cs([1, 2, 3, 4])],
      [v2("Auto", learner(4)), cs([1, 2, 3], [4])],
      [v2("Auto", add(4)), cs([1, 2, 3, 4])],
      [v2("Auto", remove(4)), cs([1, 2, 3])],
      [v2("Auto", learner(5)), cs([1, 2, 3], [5])],
      [v2("Auto", add(2)), cs([1, 2, 3], [5])], // already a voter: no change
    ],
  },
  {
    name: "refusals: leave when not joint, change while joint, zero voters",
    start: cs([1, 2, 3]),
    steps: [
      [LEAVE, /not joint/],
      [v2("Auto", remove(1), remove(2), remove(3)), /remove every voter/],
      [v2("JointExplicit", learner(1), learner(2), learner(3)), /remove every voter/],
      [v2("JointExplicit", add(4)), cs([1, 2, 3, 4], [], { out: [1, 2, 3] })],
      [v2("JointExplicit", add(5)), /already joint/],
      [v2("Auto", add(5)), /single-step change cannot be applied in a joint/],
      [v2("Auto", add(5), add(6)), /already joint/],
      [LEAVE, cs([1, 2, 3, 4])],
    ],
  },
  {
    name: "a single voter can shrink no further, but can enter a joint configuration",
    start: cs([1]),
    steps: [
      [v2("Auto", remove(1)), /remove every voter/],
      [v2("Auto", learner(1)), /remove every voter/],
      [v2("Auto", add(2), remove(1)), cs([2], [], { out: [1], auto: true })],
      [LEAVE, cs([2])],
    ],
  },
  {
    name: "a configuration without voters cannot become joint",
    start: cs([]),
    steps: [
      [v2("JointExplicit", add(1)), /without voters cannot become joint/],
      [v2("Auto", add(1)), cs([1])],
    ],
  },
];

Deno.test("conf changes: table of enter, leave, single-step and refused changes", () => {
  for (const c of cases) {
    let cfg = configFromConfState(c.start);
    for (const [i, [cc, want]] of c.steps.entries()) {
      const what = `${c.name}, step ${i}`;
      const before = confStateOfConfig(cfg);
      if (want instanceof RegExp) {
        assert.throws(() => changeConfig(cfg, cc), (e: unknown) => {
          assert.ok(e instanceof ConfChangeError, what);
          assert.match(e.message, want, what);
          return true;
        });
        assert.deepEqual(confStateOfConfig(cfg), before, `${what}: input untouched`);
        continue;
      }
      const { config } = changeConfig(cfg, cc);
      assert.deepEqual(confStateOfConfig(config), want, what);
      assert.equal(confStateProblem(want), undefined, `${what}: result is a valid ConfState`);
      assert.deepEqual(confStateOfConfig(cfg), before, `${what}: input untouched`);
      cfg = config;
    }
  }
});

Deno.test("simple changes refuse to change more than one voter", () => {
  const cfg = configFromConfState(cs([1, 2, 3]));
  assert.throws(() => simpleChange(cfg, [add(4), remove(3)]), /changes 2 voters/);
  assert.throws(() => simpleChange(cfg, [add(4), add(5)]), /changes 2 voters/);
  // Adding and removing the same new voter changes nothing overall.
  assert.deepEqual(confStateOfConfig(simpleChange(cfg, [add(4), remove(4)]).config), cs([1, 2, 3]));
});

Deno.test("fresh progress: new peers, and peers removed and added back within one change", () => {
  const cfg = configFromConfState(cs([1, 2, 3], [4]));
  const f = (cc: ConfChangeV2) => [...changeConfig(cfg, cc).fresh].sort();
  assert.deepEqual(f(v2("Auto", add(5), learner(6))), [5, 6]);
  assert.deepEqual(f(v2("Auto", add(4))), [], "a promoted learner keeps its progress");
  assert.deepEqual(f(v2("Auto", remove(4), learner(4))), [4], "a new incarnation of 4");
  assert.deepEqual(f(v2("Auto", remove(3), add(3))), [], "3 stays an outgoing voter meanwhile");
  assert.deepEqual(f(v2("Auto", add(7), remove(7))), [], "gone again");
});

Deno.test("which changes enter a joint configuration", () => {
  assert.equal(entersJoint(v2("Auto", add(4))), undefined);
  assert.deepEqual(entersJoint(v2("Auto", add(4), add(5))), { autoLeave: true });
  assert.deepEqual(entersJoint(v2("JointImplicit", add(4))), { autoLeave: true });
  assert.deepEqual(entersJoint(v2("JointExplicit", add(4))), { autoLeave: false });
});

Deno.test("ConfState invariants", () => {
  const bad: [ConfState, RegExp][] = [
    [cs([1, 1]), /lists 1 twice/],
    [cs([0]), /invalid id 0/],
    [cs([1, 2], [2]), /both a voter and a learner/],
    [cs([1, 2], [3], { out: [3] }), /outgoing voter and a learner/],
    [cs([1, 2], [], { out: [1, 2], next: [3] }), /not an outgoing voter/],
    [cs([1, 2], [], { out: [1, 2], next: [2] }), /learnersNext and an incoming voter/],
    [{ voters: [1], learners: [], learnersNext: [1] }, /not an outgoing voter/],
    [{ voters: [1], learners: [], autoLeave: true }, /outside a joint/],
    [cs([], [], { out: [1] }), /no incoming voters/],
  ];
  for (const [c, re] of bad) {
    assert.match(confStateProblem(c) ?? "", re, JSON.stringify(c));
    assert.throws(() => configFromConfState(c), ConfChangeError);
  }
  assert.equal(confStateProblem(cs([])), undefined, "an empty configuration (a new peer)");
  assert.equal(confStateProblem(cs([1, 2, 4], [5], { out: [1, 2, 3], next: [3] })), undefined);
});
