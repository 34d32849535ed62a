/**
 * The attack suite (`security_attacks.ts`) against a real cluster in TLS mode, with and without
 * the cluster secret: certificates from a test CA made with `openssl`.
 *
 * @module
 */
import { runAttackSuite } from "./security_attacks.ts";

Deno.test("security e2e (TLS + cluster secret): every known attack is refused without a certificate, with a foreign or disallowed one, and with a valid one for the wrong store or cluster", async (t) => {
  await runAttackSuite(t, "tls+secret");
});

Deno.test("security e2e (TLS only): every known attack is refused without a certificate, with a foreign or disallowed one, and with a valid one for the wrong cluster or store", async (t) => {
  await runAttackSuite(t, "tls");
});
