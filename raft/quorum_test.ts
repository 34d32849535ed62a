/**
 * Quorum arithmetic: the committed index and vote outcome of majority and joint
 * configurations, table-driven (a joint decision needs a majority of both halves).
 */
import assert from "node:assert/strict";
import {
  jointCommitted,
  jointVoteResult,
  majorityCommitted,
  majorityVoteResult,
  type VoteResult,
} from "./quorum.ts";

const set = (...ids: number[]) => new Set(ids);

Deno.test("majority committed index: the majority-th highest match", () => {
  const cases: [number[], Record<number, number>, number][] = [
    [[1], { 1: 7 }, 7],
    [[1, 2], { 1: 7, 2: 3 }, 3],
    [[1, 2, 3], { 1: 7, 2: 3, 3: 5 }, 5],
    [[1, 2, 3, 4], { 1: 9, 2: 8, 3: 2, 4: 1 }, 2],
    [[1, 2, 3, 4, 5], { 1: 9, 2: 8, 3: 2, 4: 1, 5: 8 }, 8],
  ];
  for (const [ids, match, want] of cases) {
    assert.equal(majorityCommitted(new Set(ids), (id) => match[id]!), want, `${ids}`);
  }
  assert.equal(majorityCommitted(set(), () => 0), Infinity, "an empty set places no constraint");
});

Deno.test("joint committed index: the smaller of the two majorities", () => {
  const match: Record<number, number> = { 1: 10, 2: 9, 3: 2, 4: 1, 5: 1 };
  const m = (id: number) => match[id]!;
  const cases: [Set<number>, Set<number>, number, string][] = [
    [set(1, 2, 3), set(), 9, "not joint: the incoming majority"],
    [set(1, 2, 3), set(1, 2, 3), 9, "same sets"],
    [set(1, 4, 5), set(1, 2, 3), 1, "incoming majority lags (4, 5)"],
    [set(1, 2, 3), set(3, 4, 5), 1, "outgoing majority lags"],
    [set(1, 2, 4), set(1, 2, 3), 9, "replace 3 by 4: 1 and 2 suffice on both sides"],
    [set(1), set(1, 2, 3), 9, "shrink to one voter: 1 alone, and 1+2 outgoing"],
    [set(), set(), 0, "no voters at all: nothing committed"],
  ];
  for (const [inc, out, want, what] of cases) assert.equal(jointCommitted(inc, out, m), want, what);
});

Deno.test("vote results: majority, and joint (won only when both halves are won)", () => {
  const votes = (granted: number[], rejected: number[]) => (id: number) =>
    granted.includes(id) ? true : rejected.includes(id) ? false : undefined;
  const maj: [number[], number[], number[], VoteResult][] = [
    [[1, 2, 3], [1, 2], [], "Won"],
    [[1, 2, 3], [1], [2], "Pending"],
    [[1, 2, 3], [1], [2, 3], "Lost"],
    [[1, 2, 3, 4], [1, 2], [3], "Pending"],
    [[1, 2, 3, 4], [1], [2, 3], "Lost"],
    [[], [], [], "Won"],
  ];
  for (const [ids, g, r, want] of maj) {
    assert.equal(majorityVoteResult(new Set(ids), votes(g, r)), want, `${ids} +${g} -${r}`);
  }
  const joint: [number[], number[], number[], number[], VoteResult, string][] = [
    [[1, 4, 5], [1, 2, 3], [1, 2, 3], [], "Pending", "outgoing won, incoming pending"],
    [[1, 4, 5], [1, 2, 3], [1, 2, 3], [4, 5], "Lost", "outgoing won, incoming lost"],
    [[1, 4, 5], [1, 2, 3], [1, 2, 4], [], "Won", "a majority of each"],
    [[1, 4, 5], [1, 2, 3], [1, 4, 5], [2, 3], "Lost", "incoming won, outgoing lost"],
    [[1, 2, 3], [], [1, 2], [3], "Won", "not joint"],
    [[], [], [1], [], "Lost", "no voters: nobody can win"],
  ];
  for (const [inc, out, g, r, want, what] of joint) {
    assert.equal(jointVoteResult(new Set(inc), new Set(out), votes(g, r)), want, what);
  }
});
