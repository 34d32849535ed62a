/**
 * Length-prefixed frames on a byte stream (a connection after an HTTP upgrade): a 4-byte
 * big-endian length, then that many bytes.
 *
 * @module
 */

/** Bytes of a frame's length prefix. */
export const FRAME_HEADER_BYTES = 4;
const HEADER_BYTES = FRAME_HEADER_BYTES;

/** A frame: `payload` behind its 4-byte length. */
export function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, HEADER_BYTES);
  return out;
}

/** Splits a byte stream into frames of at most `maxFrameBytes`. */
export class FrameReader {
  #buf = new Uint8Array(0);
  #len = 0;

  constructor(readonly maxFrameBytes: number) {}

  /** Bytes received but not yet part of a whole frame. */
  get pendingBytes(): number {
    return this.#len;
  }

  /** Adds received bytes; returns the frames they complete. Throws on an oversized frame. */
  push(chunk: Uint8Array): Uint8Array[] {
    this.#append(chunk);
    const frames: Uint8Array[] = [];
    let at = 0;
    while (this.#len - at >= HEADER_BYTES) {
      const size = new DataView(this.#buf.buffer, this.#buf.byteOffset + at, HEADER_BYTES)
        .getUint32(0);
      if (size > this.maxFrameBytes) {
        throw new Error(`frame of ${size} bytes; at most ${this.maxFrameBytes} are accepted`);
      }
      if (this.#len - at - HEADER_BYTES < size) break;
      frames.push(this.#buf.slice(at + HEADER_BYTES, at + HEADER_BYTES + size));
      at += HEADER_BYTES + size;
    }
    if (at > 0) {
      this.#buf.copyWithin(0, at, this.#len);
      this.#len -= at;
    }
    return frames;
  }

  #append(chunk: Uint8Array): void {
    if (this.#len + chunk.length > this.#buf.length) {
      const grown = new Uint8Array(Math.max(this.#len + chunk.length, this.#buf.length * 2, 4096));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
    }
    this.#buf.set(chunk, this.#len);
    this.#len += chunk.length;
  }
}
