/**
 * The release version, read from `deno.json` so there is one place to bump it.
 *
 * @module
 */
import denoJson from "../deno.json" with { type: "json" };

/** mrkv's version (`deno.json`'s `version`). */
export const VERSION: string = denoJson.version;

/** The line `--version` prints for `program`, e.g. `mrkv 0.1.0 (deno 2.9.6)`. */
export function versionLine(program = "mrkv"): string {
  return `${program} ${VERSION} (deno ${Deno.version.deno}, v8 ${Deno.version.v8})`;
}
