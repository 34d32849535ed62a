/**
 * How the ctl proves who it is to a secure cluster (docs/security.md): the admin token, from the
 * cluster secret or from a token file, in an `Authorization` header; and, in TLS mode, a client
 * certificate with the cluster CA. With nothing given, the playground's `./data/cluster.secret`
 * is used if it exists, so `deno task ctl` works against `deno task start` out of the box.
 *
 * @module
 */
import { readSecretFile, tokenFromSecret } from "../proto/security.ts";
import { CtlError } from "./client.ts";

/** Where the credential comes from (flags or environment). */
export interface CredentialOptions {
  readonly clusterSecretFile?: string;
  readonly tokenFile?: string;
  readonly cacert?: string;
  readonly cert?: string;
  readonly key?: string;
}

/** What every request carries. */
export interface Credentials {
  readonly headers: Record<string, string>;
  /** The TLS client (client certificate, cluster CA), in TLS mode. */
  readonly httpClient?: Deno.HttpClient;
}

/** The playground's secret, used when no credential is named. */
export const PLAYGROUND_SECRET = "./data/cluster.secret";

const TOKEN = /^(?:authorization:\s*bearer\s+)?([0-9a-f]{64})\s*$/i;

/** Reads the files `opts` names; refuses incomplete or unreadable ones with a usage error. */
export async function loadCredentials(opts: CredentialOptions): Promise<Credentials> {
  const tls = [opts.cacert, opts.cert, opts.key].filter((f) => f !== undefined).length;
  if (tls !== 0 && tls !== 3) {
    throw new CtlError("Usage", "TLS needs all of --cacert, --cert and --key");
  }
  const read = async (flag: string, path: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      throw new CtlError("Usage", `cannot read ${flag} ${path}: ${(e as Error).message}`);
    }
  };
  const headers: Record<string, string> = {};
  if (opts.tokenFile !== undefined) {
    const m = TOKEN.exec((await read("--token-file", opts.tokenFile)).trim());
    if (!m) {
      throw new CtlError(
        "Usage",
        `--token-file ${opts.tokenFile} holds neither a token (64 hex digits) nor "Authorization: Bearer <token>"`,
      );
    }
    headers.authorization = `Bearer ${m[1]!.toLowerCase()}`;
  } else {
    const secretFile = opts.clusterSecretFile ?? await existing(PLAYGROUND_SECRET);
    if (secretFile !== undefined) {
      let secret: Uint8Array;
      try {
        secret = await readSecretFile(secretFile);
      } catch (e) {
        throw new CtlError("Usage", (e as Error).message);
      }
      headers.authorization = `Bearer ${tokenFromSecret(secret, "admin")}`;
    }
  }
  if (tls === 0) return { headers };
  const httpClient = Deno.createHttpClient({
    caCerts: [await read("--cacert", opts.cacert!)],
    cert: await read("--cert", opts.cert!),
    key: await read("--key", opts.key!),
  });
  return { headers, httpClient };
}

async function existing(path: string): Promise<string | undefined> {
  try {
    return (await Deno.stat(path)).isFile ? path : undefined;
  } catch {
    return undefined;
  }
}
