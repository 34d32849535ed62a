/**
 * The attack suite (`security_attacks.ts`) against a real cluster in the default configuration:
 * a cluster secret over plain HTTP, as `deno task start` runs it.
 *
 * @module
 */
import { runAttackSuite } from "./security_attacks.ts";

Deno.test("security e2e (cluster secret): every known attack is refused without a valid credential, and with one for the wrong store or cluster", async (t) => {
  await runAttackSuite(t, "secret");
});
