import assert from "node:assert/strict";
import { classifyAnswer, NO_ANSWER, NOT_APPLIED_CODES } from "./outcome.ts";

Deno.test("successes are ok, a read's KeyNotFound included", () => {
  assert.equal(classifyAnswer("write", 204, undefined), "ok");
  assert.equal(classifyAnswer("write", 200, undefined), "ok");
  assert.equal(classifyAnswer("read", 200, undefined), "ok");
  assert.equal(classifyAnswer("read", 404, "KeyNotFound"), "ok");
});

Deno.test("codes that promise nothing was applied are fail", () => {
  for (const code of NOT_APPLIED_CODES) {
    assert.equal(classifyAnswer("write", code === "BadRequest" ? 400 : 503, code), "fail", code);
  }
  assert.equal(classifyAnswer("write", 409, "EpochNotMatch"), "fail");
  assert.equal(classifyAnswer("read", 404, "RegionNotFound"), "fail");
});

Deno.test("timeouts, internal errors, odd answers and no answer are unknown", () => {
  assert.equal(classifyAnswer("write", 503, "Timeout"), "unknown");
  assert.equal(classifyAnswer("write", 500, "Internal"), "unknown");
  assert.equal(classifyAnswer("write", 502, undefined), "unknown");
  assert.equal(classifyAnswer("write", 404, "KeyNotFound"), "unknown");
  assert.equal(classifyAnswer("write", 418, "SomethingNew"), "unknown");
  assert.equal(NO_ANSWER, "unknown");
});
