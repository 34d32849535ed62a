/**
 * Bounded request-body reading for both servers: a body past its limit is refused with
 * `TooLarge` as soon as it passes the limit (or at once, from `content-length`), never buffered
 * whole first. A body that breaks off (shorter than its `content-length`, a reset connection, a
 * body timeout) is a `BadRequest` ({@link BodyReadError}), which the servers log.
 *
 * @module
 */
import { MrkvError } from "./errors.ts";

/** Reads `req`'s body, at most `limit` bytes; `what` names it in the error. */
export async function readBodyLimited(
  req: Request,
  limit: number,
  what = "request body",
): Promise<Uint8Array> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > limit) throw tooLarge(what, limit);
  const body = req.body;
  if (!body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = body.getReader();
  for (;;) {
    let next: ReadableStreamReadResult<Uint8Array>;
    try {
      next = await reader.read();
    } catch (e) {
      throw new BodyReadError(`${what} broke off after ${total} bytes: ${(e as Error).message}`, e);
    }
    const { done, value } = next;
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge(what, limit);
    }
    chunks.push(value);
  }
  return concatBytes(chunks, total);
}

/** `chunks` copied into one new array of `size` bytes. */
export function concatBytes(chunks: Uint8Array[], size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A request body that could not be read to its end: answered 400 and logged. */
export class BodyReadError extends MrkvError {
  constructor(message: string, cause: unknown) {
    super("BadRequest", message, {}, { cause });
  }
}

/** The error for a body (`what`) over its `limit`: `TooLarge`. */
export function tooLarge(what: string, limit: number): MrkvError {
  return new MrkvError("TooLarge", `${what} is larger than ${limit} bytes`);
}
