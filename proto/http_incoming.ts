/**
 * What the listener's two paths share when they turn a `node:http` request into a web `Request`
 * for the fetch handler: ordinary requests (`http_server.ts`) and upgrade requests
 * (`http_upgrade.ts`).
 *
 * @module
 */
import type http from "node:http";
import { errorResponse, MrkvError } from "./errors.ts";

/** The request's URL (scheme and host as the client sent them) and its headers as pairs. */
export function requestHead(
  scheme: string,
  req: http.IncomingMessage,
): { url: string; headers: [string, string][] } {
  // Pairs, not a Headers object: `new Request` copies them either way.
  return {
    url: `${scheme}://${req.headers.host ?? "mrkv"}${req.url ?? "/"}`,
    headers: headerPairs(req),
  };
}

/** The request's headers as sent (repeats kept, in order), as name, value pairs. */
export function headerPairs(req: http.IncomingMessage): [string, string][] {
  const raw = req.rawHeaders;
  const headers: [string, string][] = new Array(raw.length >> 1);
  for (let i = 0; i + 1 < raw.length; i += 2) headers[i >> 1] = [raw[i]!, raw[i + 1]!];
  return headers;
}

/** The answer to a request the handler threw on (a malformed URL, or a bug). */
export function malformedRequest(): Response {
  return errorResponse(new MrkvError("BadRequest", "malformed request"));
}

/** HOST:PORT split into host (IPv6 brackets removed) and port; no check of either. */
export function splitHostPort(addr: string): { hostname: string; port: number } {
  const i = addr.lastIndexOf(":");
  return { hostname: addr.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(addr.slice(i + 1)) };
}
