/**
 * Flag parsing shared by the tools: `--help` and `--version` always work, and a bad flag is one
 * line naming it (exit 2), never a stack trace.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { versionLine } from "../telemetry/mod.ts";

/** A tool's name, usage text and flags (node:util `parseArgs` options). */
export interface ToolSpec<O extends NonNullable<ParseArgsConfig["options"]>> {
  readonly name: string;
  readonly usage: string;
  readonly options: O;
  /** Whether positional arguments are allowed (default false). */
  readonly positionals?: boolean;
}

/** Prints `message` as the tool's one-line error and exits 2. */
export function usageExit(name: string, message: string): never {
  console.error(`${name}: ${message} (see --help)`);
  Deno.exit(2);
}

/** Parses `args`, answering `--help`/`--version` and refusing bad flags; exits when it must. */
export function parseToolArgs<O extends NonNullable<ParseArgsConfig["options"]>>(
  spec: ToolSpec<O>,
  args: readonly string[] = Deno.args,
) {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(spec.usage);
    Deno.exit(0);
  }
  if (args.includes("--version") || args.includes("-V")) {
    console.log(versionLine(spec.name));
    Deno.exit(0);
  }
  try {
    return parseArgs({
      args: [...args],
      options: spec.options,
      strict: true,
      allowPositionals: spec.positionals ?? false,
    });
  } catch (e) {
    usageExit(spec.name, (e as Error).message.replace(/^Unknown option/, "unknown flag"));
  }
}

/** A whole number flag within `[min, max]`, or a one-line error and exit 2. */
export function intFlag(
  name: string,
  flag: string,
  text: string,
  min: number,
  max: number,
): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    usageExit(name, `${flag} must be a whole number from ${min} to ${max}, got "${text}"`);
  }
  return n;
}
