import assert from "node:assert/strict";
import { generateSecret, Security, STORE_ID_HEADER, tokenFromSecret } from "./security.ts";

const enc = new TextEncoder();

/** Headers carrying `token` as a bearer credential. */
const bearer = (token: string) => new Headers({ authorization: `Bearer ${token}` });

/** The kinds `security` grants a request with these headers claiming `storeId`, or undefined. */
function kinds(security: Security, headers: Headers, storeId = 0): string[] | undefined {
  const c = security.authenticate(headers, undefined, storeId);
  return c ? [...c.kinds].sort() : undefined;
}

Deno.test("secret mode: node tokens are bound to their store ID; admin and client tokens grant their kinds", () => {
  const secret = enc.encode(generateSecret());
  const s = new Security({ secret });
  assert.deepEqual(kinds(s, bearer(tokenFromSecret(secret, "node", 4)), 4), ["client", "node"]);
  assert.equal(kinds(s, bearer(tokenFromSecret(secret, "node", 4)), 5), undefined, "store 5");
  assert.deepEqual(kinds(s, bearer(tokenFromSecret(secret, "admin"))), ["admin", "client"]);
  assert.deepEqual(kinds(s, bearer(tokenFromSecret(secret, "client"))), ["client"]);
  assert.equal(kinds(s, new Headers()), undefined, "no credential");
  assert.equal(kinds(s, bearer("ab".repeat(32))), undefined, "a made-up token");
  const other = enc.encode(generateSecret());
  assert.equal(kinds(s, bearer(tokenFromSecret(other, "admin"))), undefined, "another secret");
  const sent = s.fetcherHeaders(4, 9);
  assert.equal(sent.authorization, `Bearer ${tokenFromSecret(secret, "node", 4)}`);
  assert.equal(sent[STORE_ID_HEADER], "4");
});

Deno.test("secret rotation: an accepted secret's credentials work too, but only the cluster secret is sent", () => {
  const oldSecret = enc.encode(generateSecret());
  const newSecret = enc.encode(generateSecret());
  // The three steps of a rolling rotation (docs/security.md).
  const step1 = new Security({ secret: oldSecret, acceptedSecret: newSecret });
  const step2 = new Security({ secret: newSecret, acceptedSecret: oldSecret });
  const step3 = new Security({ secret: newSecret });
  const before = new Security({ secret: oldSecret });
  const nodeHeaders = (s: Security) => new Headers(s.fetcherHeaders(7, 1));
  // Neighbouring steps understand each other in both directions, so a rolling restart never
  // splits the cluster.
  for (const [a, b] of [[before, step1], [step1, step2], [step2, step3]] as const) {
    assert.deepEqual(kinds(a, nodeHeaders(b), 7), ["client", "node"]);
    assert.deepEqual(kinds(b, nodeHeaders(a), 7), ["client", "node"]);
  }
  assert.equal(
    nodeHeaders(step1).get("authorization"),
    `Bearer ${tokenFromSecret(oldSecret, "node", 7)}`,
  );
  assert.equal(
    nodeHeaders(step2).get("authorization"),
    `Bearer ${tokenFromSecret(newSecret, "node", 7)}`,
  );
  // Operators' tokens from either secret work until the old one is dropped.
  for (const secret of [oldSecret, newSecret]) {
    assert.deepEqual(kinds(step2, bearer(tokenFromSecret(secret, "admin"))), ["admin", "client"]);
  }
  // After the last step the old secret opens nothing, and the binding to store IDs holds for
  // both secrets.
  assert.equal(kinds(step3, bearer(tokenFromSecret(oldSecret, "admin"))), undefined);
  assert.equal(kinds(step3, nodeHeaders(before), 7), undefined);
  assert.equal(kinds(step2, nodeHeaders(step1), 8), undefined, "old token, another store ID");
  assert.throws(() => new Security({ acceptedSecret: newSecret }), /needs a cluster secret/);
});

Deno.test("Security.fromConfig reads the cluster secret and the accepted one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-security-" });
  try {
    const [a, b] = [generateSecret(), generateSecret()];
    await Deno.writeTextFile(`${dir}/a`, a + "\n");
    await Deno.writeTextFile(`${dir}/b`, b);
    await Deno.writeTextFile(`${dir}/short`, "too short");
    const s = await Security.fromConfig({
      clusterSecretFile: `${dir}/a`,
      acceptClusterSecretFile: `${dir}/b`,
    });
    assert.equal(s.mode, "cluster secret");
    assert.equal(s.token("admin"), tokenFromSecret(enc.encode(a), "admin"), "sends with the first");
    assert.ok(s.authenticate(bearer(tokenFromSecret(enc.encode(b), "client")), undefined, 0));
    await assert.rejects(
      Security.fromConfig({
        clusterSecretFile: `${dir}/a`,
        acceptClusterSecretFile: `${dir}/short`,
      }),
      /at least 32 are needed/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fetcher: its own identity headers replace the caller's, whatever form and case the caller used", async () => {
  const secret = enc.encode(generateSecret());
  const s = new Security({ secret });
  const identity = { clusterId: 0, storeId: 0 };
  const seen: Headers[] = [];
  const fetch = s.fetcher(identity, (_url, init) => {
    seen.push(new Headers(init.headers));
    return Promise.resolve(new Response(null, { status: 204 }));
  });
  // IDs learned after the fetcher was made are the ones sent.
  identity.clusterId = 9;
  identity.storeId = 4;
  const forged = `Bearer ${"ab".repeat(32)}`;
  await fetch("http://x/", { headers: { "content-type": "a/b", authorization: forged } });
  await fetch("http://x/", { headers: { "Content-Type": "a/b", Authorization: forged } });
  await fetch("http://x/", {
    headers: new Headers({ "content-type": "a/b", authorization: forged }),
  });
  await fetch("http://x/", { headers: [["content-type", "a/b"], [STORE_ID_HEADER, "5"]] });
  await fetch("http://x/", {});
  const token = `Bearer ${tokenFromSecret(secret, "node", 4)}`;
  for (const [i, h] of seen.entries()) {
    assert.equal(h.get("authorization"), token, `request ${i}`);
    assert.equal(h.get(STORE_ID_HEADER), "4", `request ${i}`);
    assert.equal(h.get("x-mrkv-cluster-id"), "9", `request ${i}`);
    if (i < 4) assert.equal(h.get("content-type"), "a/b", `request ${i}`);
  }
  assert.equal(seen.length, 5);
});
