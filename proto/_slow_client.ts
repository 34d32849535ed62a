/**
 * Test helpers playing a slow or silent HTTP client against a listener (plain or TLS), for the
 * tests of the listener's timeouts.
 *
 * @module
 */

const enc = new TextEncoder();

/** Reads from `conn` until it closes; returns what arrived and how long it took (or "open"). */
export async function untilClosed(
  conn: Deno.Conn,
  waitMs: number,
): Promise<{ text: string; ms: number }> {
  const t0 = Date.now();
  const buf = new Uint8Array(4096);
  let text = "";
  for (;;) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      conn.read(buf).catch(() => null),
      new Promise<"open">((r) => timer = setTimeout(() => r("open"), waitMs - (Date.now() - t0))),
    ]);
    clearTimeout(timer);
    if (n === "open") return { text: text + "<still open>", ms: Date.now() - t0 };
    if (n === null) return { text, ms: Date.now() - t0 };
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
}

/**
 * Writes `text` a byte at a time, `gapMs` apart (each gap shorter than an idle timeout, so only
 * a limit on the whole headers catches it); stops quietly once the server closes.
 */
export async function trickle(conn: Deno.Conn, text: string, gapMs = 100): Promise<void> {
  for (const ch of text) {
    try {
      await conn.write(enc.encode(ch));
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, gapMs));
  }
}
