/**
 * A client's PUT, GET and DELETE of one key, answered straight from the listener
 * (`proto/http_server.ts`, `DirectRoute`) instead of through a web `Request`, Hono and a
 * `Response`: these are nearly all of a store's client requests, and that layer costs about as
 * much CPU per request as the rest of the listener (docs/benchmarks.md, "The listener's cost per
 * request").
 *
 * The direct route and the Hono routes (`server.ts`, which serve everything else: forwarded
 * requests, streamed or large bodies, unusual paths, and tests that call the app in-process)
 * answer through the same {@link clientKeyAnswer} and the same guard decision, so a request
 * gets the same answer either way. The direct route takes only paths whose characters leave
 * nothing to normalize, so its key is the one `new URL(...).pathname` would give.
 *
 * @module
 */
import type { DirectAnswer, DirectRoute } from "../proto/http_server.ts";
import { errorAnswer, MrkvError } from "../proto/errors.ts";
import { percentDecodeBytes } from "../proto/codec.ts";
import { ROUTE_HEADER } from "../proto/route_hint.ts";
import { admitter, type GuardOptions } from "../proto/http_guard.ts";
import { tooLarge } from "../proto/http_body.ts";
import type { Histogram } from "../telemetry/metrics.ts";
import { FORWARDED_HEADER, type KvService } from "./kv_service.ts";

/** Keys are 1..1024 bytes (docs/api.md). */
export const MAX_KEY_BYTES = 1024;

/** The KV operations on one key, by HTTP method. */
export const KEY_OPS: Readonly<Record<string, "get" | "put" | "delete">> = {
  GET: "get",
  PUT: "put",
  DELETE: "delete",
};

/** The key in a `/kv/...` path (percent-decoded bytes of everything after `prefix`). */
export function keyFromPathname(pathname: string, prefix = "/kv/"): Uint8Array {
  const key = percentDecodeBytes(pathname.slice(prefix.length), "key");
  if (key.length === 0) throw new MrkvError("BadRequest", "key must not be empty");
  if (key.length > MAX_KEY_BYTES) {
    throw new MrkvError("BadRequest", `key is ${key.length} bytes; the limit is ${MAX_KEY_BYTES}`);
  }
  return key;
}

/**
 * The answer to a client's (not a forwarded) request on one key: 204 for a write, 200 with
 * the value or 404 `KeyNotFound` for a read, each with a route hint when this store does not
 * lead the key's region or `askedRoute` (`proto/route_hint.ts`). Other errors are thrown.
 * A JSON body here has no final newline (the Hono app adds it; {@link kvDirectRoute} too).
 */
export async function clientKeyAnswer(
  kv: KvService,
  op: "get" | "put" | "delete",
  key: Uint8Array,
  value: Uint8Array,
  askedRoute: boolean,
): Promise<DirectAnswer> {
  let answer: DirectAnswer;
  if (op === "get") {
    const got = await kv.get(key);
    answer = got === null
      // An answer like any other: it carries the route too.
      ? errorAnswer(new MrkvError("KeyNotFound", "key not found"))
      : { status: 200, headers: [["content-type", "application/octet-stream"]], body: got };
  } else {
    if (op === "put") await kv.put(key, value);
    else await kv.delete(key);
    answer = { status: 204, headers: [] };
  }
  const hint = kv.routeHint(key, askedRoute);
  if (hint === undefined) return answer;
  return { ...answer, headers: [...answer.headers, [ROUTE_HEADER, hint]] };
}

/** What {@link kvDirectRoute} needs from the store. */
export interface KvDirectOptions {
  readonly kv: KvService;
  /** The store's `mrkv_kv_request_duration_seconds`. */
  readonly timer: Histogram;
  /** The store app's guard (`proto/http_guard.ts`), asked only when KV routes need a credential. */
  readonly guard: GuardOptions;
  /** Values larger than this are refused (`TooLarge`). */
  readonly maxValueBytes: number;
}

/**
 * Characters a `/kv/` path may hold to be taken directly: unreserved and sub-delimiters, `:`,
 * `@`, `/` and percent escapes. Anything else (spaces, non-ASCII, `\`, quotes) goes to the Hono
 * route, whose URL parsing escapes it.
 */
const PLAIN_PATH = /^\/kv\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]+$/;
/** A `.` or `..` segment, escaped or not: URL parsing would remove it. */
const DOT_SEGMENT = /\/(?:\.|%2e){1,2}(?:\/|$)/i;

/** The listener's direct route for a store's client KV requests on one key. */
export function kvDirectRoute(opts: KvDirectOptions): DirectRoute {
  const admit = admitter(opts.guard);
  const open = opts.guard.clientRoutesOpen === true;
  return (head) => {
    const op = KEY_OPS[head.method];
    if (op === undefined || head.headers[FORWARDED_HEADER] !== undefined) return undefined;
    const q = head.url.indexOf("?");
    const path = q < 0 ? head.url : head.url.slice(0, q);
    if (!PLAIN_PATH.test(path) || DOT_SEGMENT.test(path)) return undefined;
    return async (body) => {
      const stop = opts.timer.startTimer({ op, forwarded: "false" });
      let answer: DirectAnswer;
      try {
        if (!open) admit(head.method, path, head.webHeaders(), head.peer);
        const key = keyFromPathname(path);
        if (body.length > opts.maxValueBytes) throw tooLarge("value", opts.maxValueBytes);
        answer = await clientKeyAnswer(
          opts.kv,
          op,
          key,
          body,
          head.headers[ROUTE_HEADER] !== undefined,
        );
      } catch (e) {
        answer = errorAnswer(e);
      }
      if (typeof answer.body === "string") answer = { ...answer, body: answer.body + "\n" };
      stop({ code: String(answer.status) });
      return answer;
    };
  };
}
