/**
 * HTTP helpers shared by the scheduler's routes: bounded body reading (413 past the limit,
 * never buffering more), CBOR and JSON responses, and the one `onError` mapping.
 *
 * @module
 */
import type { Context } from "hono";
import { CBOR_CONTENT_TYPE, decodeCbor, encodeCbor } from "../proto/codec.ts";
import { errorResponse, MrkvError } from "../proto/errors.ts";
import { readBodyLimited } from "../proto/http_body.ts";

/** Largest internal request body (a batch of 10,000 region heartbeats fits easily). */
export const MAX_RPC_BODY = 32 * 1024 * 1024;
/** Largest admin request body. */
export const MAX_ADMIN_BODY = 1024 * 1024;

/** Reads the request body, failing with `TooLarge` as soon as it passes `limit` bytes. */
export function readBody(c: Context, limit: number): Promise<Uint8Array> {
  return readBodyLimited(c.req.raw, limit);
}

/** Reads and decodes a CBOR request body (checks the content type). */
export async function readCbor(c: Context): Promise<unknown> {
  const type = c.req.header("content-type") ?? "";
  if (!type.toLowerCase().startsWith(CBOR_CONTENT_TYPE)) {
    throw new MrkvError("BadRequest", `content-type must be ${CBOR_CONTENT_TYPE}, got "${type}"`);
  }
  return decodeCbor(await readBody(c, MAX_RPC_BODY));
}

/** Reads and parses a JSON request body. */
export async function readJson(c: Context): Promise<unknown> {
  const bytes = await readBody(c, MAX_ADMIN_BODY);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return JSON.parse(text);
  } catch (e) {
    throw new MrkvError("BadRequest", `body is not valid JSON: ${(e as Error).message}`);
  }
}

/** A CBOR response. */
export function cborResponse(value: unknown, status = 200): Response {
  return new Response(encodeCbor(value), {
    status,
    headers: { "content-type": CBOR_CONTENT_TYPE },
  });
}

/** The `app.onError` handler: every thrown error becomes the spec's JSON error. */
export function onError(err: unknown): Response {
  return errorResponse(err);
}
