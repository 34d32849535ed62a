/**
 * Output for people: aligned tables (numbers right-aligned) and sizes in binary units.
 *
 * @module
 */

/** A cell: text, or a number (right-aligned). */
export type Cell = string | number | null | undefined;

/** Renders `rows` under `headers`, columns padded to their widest cell, two spaces apart. */
export function formatTable(
  headers: readonly string[],
  rows: readonly (readonly Cell[])[],
): string {
  const text = rows.map((r) => headers.map((_, i) => cellText(r[i])));
  const numeric = headers.map((_, i) =>
    rows.length > 0 && rows.every((r) => typeof r[i] === "number" || r[i] == null)
  );
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ").trimEnd();
  return [line(headers.map((h) => h.toUpperCase())), ...text.map(line)].join("\n");
}

function cellText(c: Cell): string {
  if (c === null || c === undefined) return "-";
  return String(c);
}

/** `123 B`, `4.5 KiB`, `96 MiB`. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n <= 0) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 || n >= 100 ? Math.round(n) : Number(n.toFixed(1))} ${units[i]}`;
}

/** `key: value` lines, keys padded (for one object, such as `store show`). */
export function formatFields(fields: readonly (readonly [string, Cell])[]): string {
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${k.padEnd(width)}  ${cellText(v)}`).join("\n");
}
