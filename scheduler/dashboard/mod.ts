/**
 * The dashboard at the scheduler's `GET /`: one static page (`index.html`, `app.js`,
 * `app.css`) that reads the admin API from the browser and refreshes itself. The files are
 * read once, on first request, from beside this module (`deno compile` needs
 * `--include scheduler/dashboard`, which the `compile` task passes).
 *
 * @module
 */
import { Hono } from "hono";

/** The dashboard's routes and the files they serve. */
export const DASHBOARD_FILES: Readonly<Record<string, string>> = {
  "/": "index.html",
  "/dashboard/app.js": "app.js",
  "/dashboard/app.css": "app.css",
};

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
};

const cache = new Map<string, string>();

async function load(file: string): Promise<string> {
  let text = cache.get(file);
  if (text === undefined) {
    text = await Deno.readTextFile(new URL(file, import.meta.url));
    cache.set(file, text);
  }
  return text;
}

/** Routes serving the dashboard's files. */
export function dashboardRoutes(): Hono {
  const app = new Hono();
  for (const [path, file] of Object.entries(DASHBOARD_FILES)) {
    app.get(path, async (c) =>
      c.body(await load(file), 200, {
        "content-type": TYPES[file.split(".").pop()!]!,
        // The page is small and changes only with the binary; the data comes from the API.
        "cache-control": "no-cache",
      }));
  }
  return app;
}
