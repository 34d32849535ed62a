/** Tables align their columns (numbers to the right); sizes read in binary units. */
import assert from "node:assert/strict";
import { formatBytes, formatFields, formatTable } from "./table.ts";

Deno.test("columns are aligned, numbers right-aligned, missing cells shown as -", () => {
  const t = formatTable(["id", "address", "regions"], [
    [1, "127.0.0.1:20161", 12],
    [10, "host:1", null],
  ]);
  assert.equal(
    t,
    [
      "ID  ADDRESS          REGIONS",
      " 1  127.0.0.1:20161       12",
      "10  host:1                 -",
    ].join("\n"),
  );
  assert.equal(formatTable(["a"], []), "A");
});

Deno.test("bytes and fields", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(96 * 1024 * 1024), "96 MiB");
  assert.equal(formatBytes(200 * 1024 ** 3), "200 GiB");
  assert.equal(formatFields([["id", 4], ["address", "x"]]), "id       4\naddress  x");
});
