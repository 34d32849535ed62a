/**
 * The answer for a request no route takes: `405 MethodNotAllowed` with an `Allow` header when
 * the path exists under other methods (HTTP's rule, RFC 9110 §15.5.6), else `404 NotFound`.
 * Both servers install it as their Hono app's `notFound` handler, after every route is added.
 *
 * @module
 */
import type { Context, Hono, MiddlewareHandler } from "hono";
import { errorResponse, MrkvError } from "./errors.ts";

/** A regular expression for a Hono path pattern (`/store/:id`, `/kv/*`). */
function patternRegex(path: string): RegExp {
  let re = "";
  for (const part of path.split(/(\/\*$|:[A-Za-z_][A-Za-z0-9_]*|\*)/)) {
    if (part === "/*") re += "(?:/.*)?";
    else if (part === "*") re += ".*";
    else if (part.startsWith(":")) re += "[^/]+";
    else re += part.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

const METHOD_ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

function methodRank(m: string): number {
  const i = METHOD_ORDER.indexOf(m);
  return i < 0 ? METHOD_ORDER.length : i;
}

/** Builds the `notFound` handler for `app` from the routes it has now. */
export function notFoundHandler(app: Hono): (c: Context) => Response {
  const routes = app.routes
    .filter((r) => r.method !== "ALL")
    .map((r) => ({ method: r.method, re: patternRegex(r.path) }));
  return (c) => {
    const path = c.req.path;
    const allowed = [...new Set(routes.filter((r) => r.re.test(path)).map((r) => r.method))]
      .sort((a, b) => methodRank(a) - methodRank(b));
    if (allowed.length === 0) {
      return errorResponse(new MrkvError("NotFound", `no route ${c.req.method} ${path}`));
    }
    const res = errorResponse(
      new MrkvError(
        "MethodNotAllowed",
        `${c.req.method} is not allowed on ${path} (allowed: ${allowed.join(", ")})`,
      ),
    );
    res.headers.set("allow", allowed.join(", "));
    return res;
  };
}

const NEWLINE = new Uint8Array([0x0a]);

/**
 * Middleware ending every JSON response with a newline, so `curl` output does not run into the
 * shell prompt. The body is streamed through, never buffered (a scan page can be large).
 */
export const jsonNewline: MiddlewareHandler = async (c, next) => {
  await next();
  const res = c.res;
  if (!res.body || !(res.headers.get("content-type") ?? "").startsWith("application/json")) return;
  const headers = new Headers(res.headers);
  const length = headers.get("content-length");
  if (length !== null) headers.set("content-length", String(Number(length) + 1));
  const body = res.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({ flush: (ctl) => ctl.enqueue(NEWLINE) }),
  );
  c.res = new Response(body, { status: res.status, statusText: res.statusText, headers });
};
