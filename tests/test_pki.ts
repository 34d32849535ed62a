/**
 * Certificates for tests that run a cluster in TLS mode: a throw-away CA and certificates signed
 * by it, made with the `openssl` command (as docs/security.md tells operators to). Elliptic-curve
 * P-256 keys, valid for a day, every certificate usable both to serve and as a client.
 *
 * @module
 */

/** The files of one certificate. */
export interface CertFiles {
  readonly cert: string;
  readonly key: string;
}

/** What a certificate names: its common name and the addresses it may serve. */
export interface CertRequest {
  /** The subject's common name (what `--cert-allowed-cn` matches). */
  readonly cn: string;
  /** IP addresses for the subject alternative name (default 127.0.0.1). */
  readonly ips?: readonly string[];
}

/** A CA in a directory, and the certificates it has signed. */
export class TestPki {
  private constructor(
    readonly dir: string,
    /** The CA's certificate (`--cacert`). */
    readonly caFile: string,
    readonly caKeyFile: string,
  ) {}

  /** Makes a new CA in `dir` (created if missing). `name` keeps two CAs in one dir apart. */
  static async create(dir: string, name = "ca"): Promise<TestPki> {
    await Deno.mkdir(dir, { recursive: true });
    const pki = new TestPki(dir, `${dir}/${name}.crt`, `${dir}/${name}.key`);
    await openssl([
      "req",
      "-x509",
      ...EC_KEY,
      "-days",
      "1",
      "-keyout",
      pki.caKeyFile,
      "-out",
      pki.caFile,
      "-subj",
      `/CN=mrkv-test-${name}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    return pki;
  }

  /** Issues a certificate named `file` (files `<file>.crt`, `<file>.key`) signed by this CA. */
  async issue(file: string, req: CertRequest): Promise<CertFiles> {
    const base = `${this.dir}/${file}`;
    const sans = (req.ips ?? ["127.0.0.1"]).map((ip) => `IP:${ip}`).join(",");
    await Deno.writeTextFile(
      `${base}.ext`,
      `subjectAltName=${sans}\nextendedKeyUsage=serverAuth,clientAuth\n` +
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
    );
    await openssl([
      "req",
      "-new",
      ...EC_KEY,
      "-keyout",
      `${base}.key`,
      "-out",
      `${base}.csr`,
      "-subj",
      `/CN=${req.cn}`,
    ]);
    await openssl([
      "x509",
      "-req",
      "-in",
      `${base}.csr`,
      "-CA",
      this.caFile,
      "-CAkey",
      this.caKeyFile,
      // A random serial: no serial file shared between concurrent signings.
      "-set_serial",
      `0x${crypto.getRandomValues(new Uint8Array(16)).toHex()}`,
      "-days",
      "1",
      "-extfile",
      `${base}.ext`,
      "-out",
      `${base}.crt`,
    ]);
    return { cert: `${base}.crt`, key: `${base}.key` };
  }
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

async function openssl(args: string[]): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    throw new Error(
      `cannot run openssl (TLS tests need it; .ci/run installs it): ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (!out.success) {
    throw new Error(
      `openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr).slice(0, 2000)}`,
    );
  }
}
