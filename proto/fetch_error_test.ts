/** A failed fetch is described by address and cause, not as "fetch failed". */
import assert from "node:assert/strict";
import { describeFetchError } from "./fetch_error.ts";

Deno.test("a refused connection and a timeout are named with the address", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const url = `http://127.0.0.1:${port}/status`;
  const refused = await fetch(url).then(() => undefined, (e) => e);
  assert.equal(
    describeFetchError(refused, url),
    `cannot reach http://127.0.0.1:${port}: connection refused`,
  );
  const timeout = new DOMException("Signal timed out.", "TimeoutError");
  assert.equal(
    describeFetchError(timeout, url, 5000),
    `no answer from http://127.0.0.1:${port} within 5000 ms`,
  );
  assert.equal(describeFetchError(new Error("boom"), "x"), "cannot reach x: boom");
});
