/**
 * CBOR encoding (cborg) for everything the servers say to each other, plus the validators that
 * turn untrusted decoded values into typed ones. Every validator throws
 * `MrkvError("BadRequest")` with a message naming the offending field, so decoders never cast
 * unchecked wire data.
 *
 * @module
 */
import { decode, encode } from "cborg";
import { MrkvError } from "./errors.ts";

/** The media type of every internal request and response body. */
export const CBOR_CONTENT_TYPE = "application/cbor";

// Not `strict`/`rejectDuplicateMapKeys`: they double decoding time and buy nothing here, since
// every field is validated after decoding (a duplicate key simply keeps its last value).
const DECODE_OPTIONS = {
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
  allowIndefinite: false,
  useMaps: false,
} as const;

/** Encodes a plain value (objects, arrays, numbers, strings, `Uint8Array`, null) as CBOR. */
export function encodeCbor(value: unknown): Uint8Array<ArrayBuffer> {
  // cborg always returns a fresh Uint8Array over its own ArrayBuffer.
  return encode(value) as Uint8Array<ArrayBuffer>;
}

/** Decodes CBOR; any malformed input becomes a `BadRequest` naming `what`. */
export function decodeCbor(bytes: Uint8Array, what = "body"): unknown {
  if (bytes.length === 0) throw new MrkvError("BadRequest", `${what} is empty (expected CBOR)`);
  try {
    return decode(bytes, DECODE_OPTIONS);
  } catch (e) {
    // cborg throws Error for bad CBOR and RangeError (stack) for absurd nesting.
    throw new MrkvError("BadRequest", `${what} is not valid CBOR: ${(e as Error).message}`, {}, {
      cause: e,
    });
  }
}

/** A decoded CBOR/JSON object whose fields have not been checked yet. */
export type Fields = Readonly<Record<string, unknown>>;

function bad(field: string, expected: string, got: unknown): MrkvError {
  return new MrkvError("BadRequest", `${field} must be ${expected}, got ${describe(got)}`);
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return "an array";
  if (v instanceof Uint8Array) return "bytes";
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : "a non-finite number";
  if (typeof v === "string") return v.length > 40 ? "a long string" : JSON.stringify(v);
  return `a ${typeof v}`;
}

/** A plain object (not an array, bytes or null). */
export function expectObject(v: unknown, field: string): Fields {
  if (typeof v !== "object" || v === null || Array.isArray(v) || v instanceof Uint8Array) {
    throw bad(field, "an object", v);
  }
  return v as Fields;
}

/** An own field of `obj` (never inherited: `__proto__` on the wire stays inert). */
export function field(obj: Fields, name: string): unknown {
  return Object.hasOwn(obj, name) ? obj[name] : undefined;
}

/** A safe integer in `[min, max]`. */
export function expectSafeInt(
  v: unknown,
  fieldName: string,
  min = Number.MIN_SAFE_INTEGER,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v)) throw bad(fieldName, "an integer", v);
  if (v < min || v > max) {
    throw new MrkvError("BadRequest", `${fieldName} must be in [${min}, ${max}], got ${v}`);
  }
  return v;
}

/** A positive safe integer: an ID. */
export function expectId(v: unknown, fieldName: string): number {
  return expectSafeInt(v, fieldName, 1);
}

/** A non-negative safe integer: a count, size or epoch field. */
export function expectUint(v: unknown, fieldName: string): number {
  return expectSafeInt(v, fieldName, 0);
}

/** A finite number. */
export function expectNumber(v: unknown, fieldName: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw bad(fieldName, "a number", v);
  return v;
}

/** A string no longer than `maxLength`. */
export function expectString(v: unknown, fieldName: string, maxLength = 4096): string {
  if (typeof v !== "string") throw bad(fieldName, "a string", v);
  if (v.length > maxLength) {
    throw new MrkvError("BadRequest", `${fieldName} is longer than ${maxLength} characters`);
  }
  return v;
}

/** A boolean. */
export function expectBool(v: unknown, fieldName: string): boolean {
  if (typeof v !== "boolean") throw bad(fieldName, "a boolean", v);
  return v;
}

/** A byte string no longer than `maxLength`. */
export function expectBytes(v: unknown, fieldName: string, maxLength = 64 * 1024): Uint8Array {
  if (!(v instanceof Uint8Array)) throw bad(fieldName, "bytes", v);
  if (v.length > maxLength) {
    throw new MrkvError("BadRequest", `${fieldName} is longer than ${maxLength} bytes`);
  }
  return v;
}

/** An array of at most `maxItems`, each item checked by `item` (named `field[i]`). */
export function expectArray<T>(
  v: unknown,
  fieldName: string,
  item: (x: unknown, name: string) => T,
  maxItems = 100_000,
): T[] {
  if (!Array.isArray(v)) throw bad(fieldName, "an array", v);
  if (v.length > maxItems) {
    throw new MrkvError("BadRequest", `${fieldName} has more than ${maxItems} items`);
  }
  // Items are checked under the name `field[]`; only a failing item's message gets its index,
  // so large arrays do not build a name string per item.
  const generic = `${fieldName}[]`;
  const out: T[] = new Array(v.length);
  for (let i = 0; i < v.length; i++) {
    try {
      out[i] = item(v[i], generic);
    } catch (e) {
      if (!(e instanceof MrkvError)) throw e;
      throw new MrkvError(e.code, e.message.replaceAll(generic, `${fieldName}[${i}]`), e.details);
    }
  }
  return out;
}

/** `undefined`/`null` become `fallback`; anything else goes through `check`. */
export function optional<T, F>(
  v: unknown,
  fieldName: string,
  check: (x: unknown, name: string) => T,
  fallback: F,
): T | F {
  return v === undefined || v === null ? fallback : check(v, fieldName);
}

/** Percent-encodes every byte of a key for a URL path segment (the inverse of the below). */
export function percentEncodeBytes(key: Uint8Array): string {
  let out = "";
  for (const b of key) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9_.~-]/.test(c) ? c : `%${b.toString(16).padStart(2, "0").toUpperCase()}`;
  }
  return out;
}

/**
 * Percent-decodes a URL path segment to raw bytes (`%ff` is byte 0xff, not UTF-8 text), as the
 * KV API and the admin API's `/region/key/{key}` define keys.
 */
export function percentDecodeBytes(segment: string, fieldName = "key"): Uint8Array {
  const out: number[] = [];
  const utf8 = new TextEncoder();
  for (let i = 0; i < segment.length; i++) {
    const ch = segment[i]!;
    if (ch === "%") {
      const hex = segment.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) {
        throw new MrkvError("BadRequest", `${fieldName} has a malformed percent escape at ${i}`);
      }
      out.push(parseInt(hex, 16));
      i += 2;
    } else {
      const cp = segment.codePointAt(i)!;
      const s = String.fromCodePoint(cp);
      for (const b of utf8.encode(s)) out.push(b);
      i += s.length - 1;
    }
  }
  return new Uint8Array(out);
}
