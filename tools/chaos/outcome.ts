/**
 * The one table that turns a server's answer into an operation outcome. Change it here and
 * nowhere else when the server's error semantics change.
 *
 * - 200/204, and 404 `KeyNotFound` on a read: `ok`.
 * - A code in {@link NOT_APPLIED_CODES}: `fail` (the server promises the request was not
 *   applied, so a write may be dropped from the history).
 * - Everything else, including `503 Timeout`, `500 Internal`, unknown codes, bodies that are
 *   not the spec's error JSON, network errors and client timeouts: `unknown`.
 *
 * A network error is always `unknown`, never `fail`: Deno's fetch re-sends a buffered request
 * on a new connection when a pooled one dies before the answer, so "connection refused" may
 * follow a first attempt the server received and applied.
 *
 * @module
 */
import type { Outcome } from "./history.ts";

/** Error codes the server answers only when the request certainly did not take effect. */
export const NOT_APPLIED_CODES: ReadonlySet<string> = new Set([
  "NotLeader",
  "NoLeader",
  "ServerIsBusy",
  "EpochNotMatch",
  "KeyNotInRegion",
  "StaleCommand",
  "RegionNotFound",
  "BadRequest",
  "TooLarge",
]);

/** The outcome of an HTTP answer with `status` and (for errors) the JSON error `code`. */
export function classifyAnswer(
  kind: "read" | "write",
  status: number,
  code: string | undefined,
): Outcome {
  if (status === 200 || status === 204) return "ok";
  if (kind === "read" && status === 404 && code === "KeyNotFound") return "ok";
  if (code !== undefined && NOT_APPLIED_CODES.has(code)) return "fail";
  return "unknown";
}

/** What a request that got no answer (network error, client timeout, run stopped) means. */
export const NO_ANSWER: Outcome = "unknown";
