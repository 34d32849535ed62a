/**
 * docs/configuration.md lists exactly the keys of {@link CONFIG_KEYS}, each with its roles and,
 * where the code has one, its default as `--help` prints it.
 */
import assert from "node:assert/strict";
import { CONFIG_KEYS, type ConfigKey, formatDefault, type KeySpec } from "./config.ts";

const DOC = new URL("../docs/configuration.md", import.meta.url);

/** The rows of the "Keys" table: key → [role cell, default cell]. */
async function documentedKeys(): Promise<Map<string, [string, string]>> {
  const text = await Deno.readTextFile(DOC);
  const section = text.slice(text.indexOf("## Keys"));
  const rows = new Map<string, [string, string]>();
  for (const line of section.split("\n")) {
    const m = /^\|\s*`([a-z-]+)`\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|/.exec(line);
    if (m) rows.set(m[1]!, [m[2]!, m[3]!]);
    if (rows.size > 0 && line.trim() === "") break; // the table ended
  }
  return rows;
}

Deno.test("docs/configuration.md documents every config key, with its roles and default", async () => {
  const rows = await documentedKeys();
  assert.deepEqual([...rows.keys()].sort(), Object.keys(CONFIG_KEYS).sort(), "the same keys");
  for (const [key, spec] of Object.entries(CONFIG_KEYS) as [ConfigKey, KeySpec][]) {
    const [role, dflt] = rows.get(key)!;
    const roles = spec.roles.length === 2 ? "both" : spec.roles[0];
    assert.equal(role, roles, `${key}: role`);
    const want = formatDefault(spec);
    if (want !== undefined) assert.equal(dflt, `\`${want}\``, `${key}: default`);
  }
});
