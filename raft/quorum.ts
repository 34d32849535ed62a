/**
 * Quorum arithmetic for majority and joint configurations (Raft thesis §4.3). A joint
 * configuration is two majority configurations, the incoming and the outgoing voters; a
 * decision (commit, election, leadership check, read confirmation) needs a majority of each.
 * Outside joint consensus the outgoing set is empty and only the incoming one counts.
 *
 * Pure functions over sets of ids; the `ProgressTracker` feeds them the peers' state.
 *
 * @module
 */

/** Outcome of an election so far. */
export type VoteResult = "Pending" | "Lost" | "Won";

/**
 * The largest index that a majority of `ids` has (the majority-th highest `matchOf`). An empty
 * set places no constraint: Infinity, so it drops out of a joint minimum.
 */
export function majorityCommitted(
  ids: ReadonlySet<number>,
  matchOf: (id: number) => number,
): number {
  if (ids.size === 0) return Infinity;
  const matches: number[] = [];
  for (const id of ids) matches.push(matchOf(id));
  matches.sort((a, b) => b - a);
  return matches[Math.floor(ids.size / 2)]!;
}

/**
 * The largest index committed under the joint configuration: replicated on a majority of the
 * incoming and on a majority of the outgoing voters. With no voters at all nothing is
 * committed (0).
 */
export function jointCommitted(
  incoming: ReadonlySet<number>,
  outgoing: ReadonlySet<number>,
  matchOf: (id: number) => number,
): number {
  const c = Math.min(majorityCommitted(incoming, matchOf), majorityCommitted(outgoing, matchOf));
  return c === Infinity ? 0 : c;
}

/**
 * The outcome of a vote among `ids`, where `voteOf` is true (granted), false (rejected) or
 * undefined (not heard yet). An empty set wins: it places no constraint on a joint decision.
 */
export function majorityVoteResult(
  ids: ReadonlySet<number>,
  voteOf: (id: number) => boolean | undefined,
): VoteResult {
  if (ids.size === 0) return "Won";
  let granted = 0;
  let missing = 0;
  for (const id of ids) {
    const v = voteOf(id);
    if (v === true) granted++;
    else if (v === undefined) missing++;
  }
  const q = Math.floor(ids.size / 2) + 1;
  if (granted >= q) return "Won";
  if (granted + missing >= q) return "Pending";
  return "Lost";
}

/**
 * The outcome of a vote under the joint configuration: won when both halves are won, lost as
 * soon as either is lost. With no voters at all it is lost (nobody can be elected).
 */
export function jointVoteResult(
  incoming: ReadonlySet<number>,
  outgoing: ReadonlySet<number>,
  voteOf: (id: number) => boolean | undefined,
): VoteResult {
  if (incoming.size === 0 && outgoing.size === 0) return "Lost";
  const a = majorityVoteResult(incoming, voteOf);
  const b = majorityVoteResult(outgoing, voteOf);
  if (a === "Lost" || b === "Lost") return "Lost";
  if (a === "Won" && b === "Won") return "Won";
  return "Pending";
}
