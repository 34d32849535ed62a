/**
 * Logging and randomness are injected into the core (it does no I/O and owns no clock or
 * global random source), so that a seed replays a run exactly.
 *
 * @module
 */

/** Where the core reports what it does. Every method receives one preformatted line. */
export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/** A logger that discards everything: the default. */
export const SILENT_LOGGER: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/**
 * A small, fast, seeded PRNG (mulberry32). Returns a function yielding floats in [0, 1).
 * The same seed always yields the same sequence; seeds are reduced to 32 bits.
 */
export function seededRandom(seed: number): () => number {
  let a = (seed >>> 0) ^ 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
