/**
 * mrkv's single entry point: `--role scheduler`, `--role store`, or `ctl …` (the command-line
 * client, here so that the compiled binary has it too).
 *
 * This file only composes: parse flags, start the chosen role, stop it on SIGINT/SIGTERM.
 * Exit codes (docs/configuration.md): 0 clean shutdown, 2 bad flags, 1 fatal error.
 *
 * @module
 */
import { type Config, ConfigError, parseCommandLine, type Role, usage } from "./config/config.ts";
import { processEnv, runCtl } from "./ctl/mod.ts";
import { versionLine } from "./telemetry/mod.ts";
import { startScheduler } from "./scheduler/mod.ts";
import { startStoreNode } from "./raftstore/mod.ts";

/** A running server: `stop()` resolves once it has shut down cleanly. */
export interface Server {
  stop(): Promise<void>;
  /** Resolves (or rejects with the reason) if the server dies on its own. */
  readonly finished: Promise<void>;
}

/** How each role starts. */
const ROLES: Record<Role, (config: Config) => Promise<Server>> = {
  scheduler: (config) => startScheduler(config),
  store: (config) => startStoreNode({ config }),
};

async function main(args: string[]): Promise<number> {
  if (args[0] === "ctl") return await runCtl(args.slice(1), processEnv());
  let config: Config;
  try {
    const parsed = parseCommandLine(args);
    if (parsed.help) {
      console.log(parsed.version ? versionLine() : usage());
      return 0;
    }
    config = parsed.config;
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`mrkv: ${e.message}`);
      return 2;
    }
    throw e;
  }

  let server: Server;
  try {
    server = await ROLES[config.role](config);
  } catch (e) {
    console.error(`mrkv: ${(e as Error).message}`);
    return 1;
  }

  const stopped = new Promise<void>((resolve) => {
    const onSignal = () => {
      Deno.removeSignalListener("SIGINT", onSignal);
      Deno.removeSignalListener("SIGTERM", onSignal);
      server.stop().then(resolve, (e) => {
        console.error(`mrkv: error while stopping: ${(e as Error).message}`);
        resolve();
      });
    };
    Deno.addSignalListener("SIGINT", onSignal);
    Deno.addSignalListener("SIGTERM", onSignal);
  });
  try {
    await Promise.race([stopped, server.finished]);
  } catch (e) {
    console.error(`mrkv: fatal: ${(e as Error).message}`);
    return 1;
  }
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
