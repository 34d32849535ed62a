/**
 * How keys appear in JSON for people (docs/api.md, Conventions): a key that is valid UTF-8 is a
 * string; one that is not is given hex-encoded under the field name suffixed `_hex`. Both
 * servers render keys this way.
 *
 * @module
 */

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** `bytes` as UTF-8 text, or `null` if they are not valid UTF-8. */
export function utf8OrNull(bytes: Uint8Array): string | null {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}

/** `{[name]: text}` for a UTF-8 key, else `{[name + "_hex"]: hex}`. */
export function keyJson(name: string, key: Uint8Array): Record<string, string> {
  const s = utf8OrNull(key);
  return s === null ? { [`${name}_hex`]: key.toHex() } : { [name]: s };
}
