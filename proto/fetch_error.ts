/**
 * Turns a failed `fetch` into a message a person can act on. Deno rejects with a bare
 * "fetch failed" and hides the reason in `cause` ("error sending request for url (…): client
 * error (Connect): tcp connect error: Connection refused (os error 111)"); a timeout is a
 * `TimeoutError` that names neither the address nor the limit.
 *
 * @module
 */

/** "cannot reach http://127.0.0.1:2379: connection refused", or the like. */
export function describeFetchError(e: unknown, url: string, timeoutMs?: number): string {
  const origin = originOf(url);
  if (e instanceof DOMException && (e.name === "TimeoutError" || e.name === "AbortError")) {
    return timeoutMs === undefined
      ? `no answer from ${origin} (${e.name === "AbortError" ? "aborted" : "timed out"})`
      : `no answer from ${origin} within ${timeoutMs} ms`;
  }
  const err = e as Error;
  const detail = err.cause instanceof Error ? err.cause.message : err.message ?? String(e);
  // The OS's reason, without the layers around it and the "(os error N)" tail.
  const tcp = /tcp connect error: (.*)$/.exec(detail);
  const dns = /dns error: (.*)$/.exec(detail);
  const reason = (tcp ? tcp[1]! : dns ? `cannot resolve the host (${dns[1]})` : detail)
    .replace(/^error sending request for url \([^)]*\): /, "")
    .replace(/\s*\(os error \d+\)$/, "");
  return `cannot reach ${origin}: ${reason.charAt(0).toLowerCase()}${reason.slice(1)}`;
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}
