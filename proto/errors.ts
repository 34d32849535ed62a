/**
 * The one error family both servers speak ({@link MrkvError}) and its mapping to HTTP
 * (docs/api.md, "Errors"). Every route handler throws; `app.onError` calls
 * {@link errorResponse}, so the status/code table lives here and nowhere else.
 *
 * @module
 */

/** Every wire error code, grouped by HTTP status (docs/api.md). */
export const ERROR_STATUS = {
  BadRequest: 400,
  Unauthenticated: 401,
  PermissionDenied: 403,
  KeyNotFound: 404,
  RegionNotFound: 404,
  StoreNotFound: 404,
  NotFound: 404,
  MethodNotAllowed: 405,
  TooLarge: 413,
  EpochNotMatch: 409,
  KeyNotInRegion: 409,
  StaleCommand: 409,
  NotLeader: 503,
  NoLeader: 503,
  Timeout: 503,
  ServerIsBusy: 503,
} as const;

/** A wire error code. */
export type ErrorCode = keyof typeof ERROR_STATUS;

/** Seconds a client should wait before retrying a 503 (the `Retry-After` header). */
export const RETRY_AFTER_SECONDS = 1;

/** Extra fields carried in the JSON body next to `code` and `message` (snake_case keys). */
export type ErrorDetails = Readonly<Record<string, unknown>>;

/**
 * An expected failure with a wire code. `details` travel in the JSON body, e.g.
 * `new MrkvError("NotLeader", "...", { leader: { id: 3, store_id: 2 } })`.
 */
export class MrkvError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetails = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "MrkvError";
  }

  /** The HTTP status for this error's code. */
  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

/**
 * A write whose outcome is unknown: it may have been applied, may still be, or may never be.
 * On the wire this is `503 Timeout`; every other error code of a write means it was not applied
 * (see docs/api.md, "Write outcomes").
 */
export function unknownOutcome(message: string, details: ErrorDetails = {}): MrkvError {
  return new MrkvError("Timeout", message, { ...details, outcome: "unknown" });
}

/** True if `code` is one of the spec's error codes. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && Object.hasOwn(ERROR_STATUS, code);
}

/** The JSON body of an error response. */
export interface ErrorBody {
  error: { code: ErrorCode | "Internal"; message: string; [detail: string]: unknown };
}

/**
 * The parts of the answer to anything thrown by a handler: a {@link MrkvError} keeps its code;
 * anything else is an internal bug and answers 500 `Internal` (the tests assert this never happens
 * for bad input). 503s carry `Retry-After`. For answers that are not a `Response` (a streamed
 * request's frame); otherwise {@link errorResponse}.
 */
export function errorAnswer(
  err: unknown,
): { status: number; headers: [string, string][]; body: string } {
  let status = 500;
  let body: ErrorBody;
  if (err instanceof MrkvError) {
    status = err.status;
    body = { error: { ...err.details, code: err.code, message: err.message } };
  } else {
    const message = err instanceof Error ? err.message : String(err);
    body = { error: { code: "Internal", message: `internal error: ${message}` } };
  }
  const headers: [string, string][] = [["content-type", "application/json"]];
  if (status === 503) headers.push(["retry-after", String(RETRY_AFTER_SECONDS)]);
  return { status, headers, body: JSON.stringify(body) };
}

/** Maps anything thrown by a handler to a `Response` (see {@link errorAnswer}). */
export function errorResponse(err: unknown): Response {
  const { status, headers, body } = errorAnswer(err);
  return new Response(body, { status, headers });
}

/**
 * The inverse of {@link errorResponse}, for clients: turns an error response back into a
 * {@link MrkvError} (details kept), or a plain `Error` if the body is not the spec's shape.
 */
export async function errorFromResponse(res: Response): Promise<Error> {
  const text = await res.text().catch(() => "");
  try {
    const body = JSON.parse(text) as { error?: Record<string, unknown> };
    const e = body.error;
    if (e && typeof e === "object" && isErrorCode(e.code) && typeof e.message === "string") {
      const { code, message, ...details } = e;
      return new MrkvError(code, message, details);
    }
  } catch {
    // not JSON: fall through
  }
  return new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
}
