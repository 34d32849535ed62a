/**
 * Who may talk to a server, and how a server talks to others (docs/security.md).
 *
 * Two modes, which can be combined. **Secret mode**: a cluster secret read from a file; every
 * credential is an HMAC of it, sent as `authorization: Bearer <hex>`. A node's token is bound to
 * its store ID, so a request that claims to come from store 4 must carry store 4's token.
 * **TLS mode**: HTTPS with a cluster CA; servers require a client certificate signed by it (and
 * with an allowed CN), clients verify the server against it. With neither, the cluster is open
 * (only allowed on loopback or with `--insecure`, enforced by the config parser).
 *
 * {@link Security} authenticates incoming requests (used by the guard middleware) and builds the
 * one outgoing `fetch` every internal request goes through ({@link Security.fetcher}).
 *
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { MrkvError } from "./errors.ts";

/** Sender's cluster ID (0: not known yet). */
export const CLUSTER_ID_HEADER = "x-mrkv-cluster-id";
/** Sender's store ID (0: the scheduler, or a store before it has an ID). */
export const STORE_ID_HEADER = "x-mrkv-store-id";

/** The kinds of credential. A node token also names its store ID. */
export type CredentialKind = "node" | "admin" | "client";

/** Shortest cluster secret accepted, in bytes (after trimming whitespace). */
export const MIN_SECRET_BYTES = 32;

/** The security settings of one process, as flags give them. */
export interface SecurityConfig {
  readonly clusterSecretFile?: string;
  /** A second secret whose credentials are accepted too, never sent (rotation). */
  readonly acceptClusterSecretFile?: string;
  readonly cacert?: string;
  readonly cert?: string;
  readonly key?: string;
  /** Comma-separated CNs; empty or absent: any certificate the CA signed. */
  readonly certAllowedCn?: string;
}

/** PEM material for TLS. */
export interface TlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** What a server's listener knows of the peer: the verified client certificate, if any. */
export interface PeerInfo {
  readonly certificateCn?: string;
  readonly certificateFingerprint?: string;
}

/** An authenticated caller. `storeId` is set for node credentials (0: scheduler or new store). */
export interface Credential {
  readonly kinds: ReadonlySet<CredentialKind>;
  readonly storeId?: number;
}

/** The sender identity a process puts on its internal requests; filled in once known. */
export interface Identity {
  clusterId: number;
  storeId: number;
}

/** How requests are sent (`fetch`'s shape), so tests can route them to an app in-process. */
export type FetchFn = (url: string, init: RequestInit) => Promise<Response>;

const ALL_KINDS: ReadonlySet<CredentialKind> = new Set(["node", "admin", "client"]);

/** Derives the token for a credential from the cluster secret. */
export function tokenFromSecret(
  secret: Uint8Array,
  kind: CredentialKind,
  storeId = 0,
): string {
  const label = kind === "node" ? `mrkv-node/${storeId}` : `mrkv-${kind}`;
  return createHmac("sha256", secret).update(label).digest("hex");
}

/** Reads and checks a cluster secret file. */
export async function readSecretFile(path: string): Promise<Uint8Array> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`cannot read the cluster secret file ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const secret = new TextEncoder().encode(text.trim());
  if (secret.length < MIN_SECRET_BYTES) {
    throw new Error(
      `the cluster secret in ${path} is ${secret.length} bytes; at least ${MIN_SECRET_BYTES} are needed`,
    );
  }
  return secret;
}

/** A fresh random secret, as the playground and tests write it (64 hex digits). */
export function generateSecret(): string {
  return crypto.getRandomValues(new Uint8Array(32)).toHex();
}

/** One process's security: how it authenticates requests and sends its own. */
export class Security {
  readonly #secret: Uint8Array | undefined;
  /** Every secret whose credentials are accepted: the one sent first, then the rotation's. */
  readonly #secrets: readonly Uint8Array[];
  readonly #fixedTokens = new Map<string, CredentialKind>();
  /** Per store ID, its node token under each of {@link #secrets}. */
  readonly #nodeTokens = new Map<number, readonly string[]>();
  readonly #allowedCn: ReadonlySet<string> | undefined;
  #client: Deno.HttpClient | undefined;

  /**
   * `secret` signs this process's requests; credentials made from it or from `acceptedSecret`
   * are accepted. During a rotation the two secrets swap places, so old and new members
   * understand each other (docs/security.md, "Rotating the secret").
   */
  constructor(
    opts: {
      secret?: Uint8Array;
      acceptedSecret?: Uint8Array;
      tls?: TlsFiles;
      allowedCn?: readonly string[];
    } = {},
  ) {
    if (opts.acceptedSecret && !opts.secret) {
      throw new Error("an accepted secret needs a cluster secret to send");
    }
    this.#secret = opts.secret;
    this.#secrets = [opts.secret, opts.acceptedSecret].filter((s) => s !== undefined);
    this.tls = opts.tls;
    const cns = (opts.allowedCn ?? []).map((s) => s.trim()).filter((s) => s !== "");
    this.#allowedCn = cns.length > 0 ? new Set(cns) : undefined;
    for (const secret of this.#secrets) {
      for (const kind of ["admin", "client"] as const) {
        this.#fixedTokens.set(tokenFromSecret(secret, kind), kind);
      }
    }
  }

  /** TLS material, when TLS is on. */
  readonly tls: TlsFiles | undefined;

  /** An open cluster: no secret and no TLS (every caller has every right). */
  static insecure(): Security {
    return new Security();
  }

  /** Reads the files the flags name. */
  static async fromConfig(config: SecurityConfig): Promise<Security> {
    const secret = config.clusterSecretFile === undefined
      ? undefined
      : await readSecretFile(config.clusterSecretFile);
    const acceptedSecret = config.acceptClusterSecretFile === undefined
      ? undefined
      : await readSecretFile(config.acceptClusterSecretFile);
    let tls: TlsFiles | undefined;
    if (config.cacert !== undefined && config.cert !== undefined && config.key !== undefined) {
      const read = async (what: string, path: string) => {
        try {
          return await Deno.readTextFile(path);
        } catch (e) {
          throw new Error(`cannot read ${what} ${path}: ${(e as Error).message}`, { cause: e });
        }
      };
      tls = {
        ca: await read("--cacert", config.cacert),
        cert: await read("--cert", config.cert),
        key: await read("--key", config.key),
      };
    }
    return new Security({
      secret,
      acceptedSecret,
      tls,
      allowedCn: config.certAllowedCn?.split(","),
    });
  }

  /** Whether requests are authenticated at all. */
  get secured(): boolean {
    return this.#secret !== undefined || this.tls !== undefined;
  }

  /** A short description for the start-up log line. */
  get mode(): string {
    if (this.#secret && this.tls) return "TLS + cluster secret";
    if (this.tls) return "TLS";
    if (this.#secret) return "cluster secret";
    return "insecure (no authentication)";
  }

  /** `http` or `https`. */
  get scheme(): "http" | "https" {
    return this.tls ? "https" : "http";
  }

  /** The token of one credential (tests and tools; needs secret mode). */
  token(kind: CredentialKind, storeId = 0): string {
    if (!this.#secret) throw new Error("no cluster secret: tokens exist only in secret mode");
    return kind === "node" ? this.#nodeTokensOf(storeId)[0]! : tokenFromSecret(this.#secret, kind);
  }

  /** Store `storeId`'s node token under every accepted secret, the one sent first. */
  #nodeTokensOf(storeId: number): readonly string[] {
    let t = this.#nodeTokens.get(storeId);
    if (t === undefined) {
      t = this.#secrets.map((s) => tokenFromSecret(s, "node", storeId));
      // Bounded: IDs come from headers, so an attacker could otherwise fill the map.
      if (this.#nodeTokens.size > 4096) this.#nodeTokens.clear();
      this.#nodeTokens.set(storeId, t);
    }
    return t;
  }

  /**
   * Who sent a request: its credential, or undefined if it has none that this process accepts.
   * `storeId` is the sender's claimed store ID (from {@link STORE_ID_HEADER}; 0 if absent).
   * In an insecure cluster everyone holds every credential.
   */
  authenticate(
    headers: Headers,
    peer: PeerInfo | undefined,
    storeId: number,
  ): Credential | undefined {
    if (!this.secured) return { kinds: ALL_KINDS, storeId };
    if (this.tls) {
      const cn = peer?.certificateCn;
      // The listener only hands over certificates the CA verified.
      if (cn === undefined || (this.#allowedCn && !this.#allowedCn.has(cn))) return undefined;
      if (!this.#secret) return { kinds: ALL_KINDS, storeId };
    }
    const auth = headers.get("authorization") ?? "";
    const m = /^Bearer ([0-9a-f]{64})$/.exec(auth);
    if (!m) return undefined;
    const token = m[1]!;
    const fixed = [...this.#fixedTokens].find(([t]) => equalTokens(t, token));
    if (fixed) return { kinds: new Set(fixed[1] === "admin" ? ["admin", "client"] : ["client"]) };
    if (this.#nodeTokensOf(storeId).some((t) => equalTokens(t, token))) {
      return { kinds: NODE_KINDS, storeId };
    }
    return undefined;
  }

  /**
   * The one `fetch` for internal requests: adds the sender's credential, cluster ID and store
   * ID (read from `identity` at each call, so a node can fill them in as it learns them) and
   * uses the TLS client. `base` sends the request elsewhere (tests: an app's `request`).
   */
  fetcher(identity: Identity, base?: FetchFn): FetchFn {
    return (url, init) => {
      // Per request: the identity's IDs are filled in after this fetcher is made.
      const own = this.fetcherHeaders(identity.storeId, identity.clusterId);
      const given = init.headers;
      let headers: HeadersInit;
      if (given === undefined || isLowerCaseRecord(given)) {
        // The common case (every internal request): a plain object, ours last, so ours win.
        // Cheaper than a Headers object, which fetch copies again anyway.
        headers = { ...given, ...own };
      } else {
        const h = new Headers(given);
        for (const [k, v] of Object.entries(own)) h.set(k, v);
        headers = h;
      }
      const withAuth: RequestInit = { ...init, headers };
      return base ? base(url, withAuth) : this.fetch(url, withAuth);
    };
  }

  /**
   * `fetch` over this process's TLS client (verifying servers against the cluster CA and
   * presenting its certificate), or plain `fetch` without TLS. Adds no headers: tools add
   * {@link credentialHeaders}, internal requests go through {@link fetcher}.
   */
  fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const client = this.#httpClient();
    return fetch(url, client ? { ...init, client } as RequestInit : init);
  }

  /** The headers {@link fetcher} adds for store `storeId` of cluster `clusterId`. */
  fetcherHeaders(storeId: number, clusterId: number): Record<string, string> {
    const out: Record<string, string> = {
      [CLUSTER_ID_HEADER]: String(clusterId),
      [STORE_ID_HEADER]: String(storeId),
    };
    if (this.#secret) out.authorization = `Bearer ${this.#nodeTokensOf(storeId)[0]}`;
    return out;
  }

  /** Headers a tool or test sends to use the admin or client API. */
  credentialHeaders(kind: "admin" | "client"): Record<string, string> {
    return this.#secret ? { authorization: `Bearer ${this.token(kind)}` } : {};
  }

  /** The TLS-aware HTTP client (undefined without TLS). */
  #httpClient(): Deno.HttpClient | undefined {
    if (!this.tls) return undefined;
    this.#client ??= Deno.createHttpClient({
      caCerts: [this.tls.ca],
      cert: this.tls.cert,
      key: this.tls.key,
    });
    return this.#client;
  }

  /** Releases the TLS client's pooled connections. */
  close(): void {
    this.#client?.close();
    this.#client = undefined;
  }
}

const NODE_KINDS: ReadonlySet<CredentialKind> = new Set(["node", "client"]);

function equalTokens(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A plain header object whose names are all lower case (so a spread cannot duplicate one). */
function isLowerCaseRecord(h: HeadersInit): h is Record<string, string> {
  if (h instanceof Headers || Array.isArray(h)) return false;
  for (const k in h) if (k !== k.toLowerCase()) return false;
  return true;
}

/** Parses an ID header: a whole number, 0 if absent; anything else is refused. */
export function idHeader(headers: Headers, name: string): number {
  const raw = headers.get(name);
  if (raw === null || raw === "") return 0;
  if (!/^\d{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new MrkvError("BadRequest", `${name} must be a whole number, got "${raw.slice(0, 20)}"`);
  }
  return Number(raw);
}
