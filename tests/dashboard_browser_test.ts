/**
 * The dashboard in a real browser (Debian's `chromium`, driven by `playwright-core`) against a
 * live secure cluster on real HTTP: without the admin credential the page asks for it, and takes
 * it from a form or from the address's fragment; then the page's numbers match the admin API, the key-space bars show who
 * leads what, a split submitted from the page's form changes the region count without a reload,
 * and a leader transfer from the page moves leadership. `.ci/run` installs chromium.
 *
 * `MRKV_SCREENSHOTS=1` also writes `docs/dashboard.png` and `docs/dashboard-blocked.png`.
 */
import assert from "node:assert/strict";
import { chromium, type Page } from "playwright-core";
import { waitFor } from "./cluster.ts";
import { startHttpCluster } from "./http_cluster.ts";

const CHROMIUM = "/usr/bin/chromium";
/** Flags for a root, sandbox-less, offline machine (no background traffic to Google). */
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const opts = { sanitizeOps: false, sanitizeResources: false };

// deno-lint-ignore no-explicit-any
type Json = any;
/**
 * The page's `document`, inside `page.evaluate` callbacks (they run in the browser). Declared
 * here rather than through the DOM library, which would clash with Deno's types repo-wide.
 */
// deno-lint-ignore no-explicit-any
declare const document: any;

/** The admin credential of the cluster under test. */
let adminHeaders: Record<string, string> = {};

async function api(base: string, path: string, init: RequestInit = {}): Promise<Json> {
  const res = await fetch(`${base}/pd/api/v1${path}`, { ...init, headers: adminHeaders });
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return await res.json();
}

/** What the page shows now, read from its DOM. */
function readPage(page: Page) {
  return page.evaluate(() => {
    const text = (sel: string) => document.querySelector(sel)?.textContent ?? "";
    const stores = [...document.querySelectorAll("[data-testid=store-row]")].map((tr) => ({
      id: Number(tr.getAttribute("data-store-id")),
      state: tr.querySelector("[data-field=state]")?.textContent,
      regions: Number(tr.querySelector("[data-field=region_count]")?.textContent),
      leaders: Number(tr.querySelector("[data-field=leader_count]")?.textContent),
    }));
    const bars = [...document.querySelectorAll("[data-testid=keyspace-bar]")].map((bar) => ({
      store: Number(bar.getAttribute("data-store-id")),
      cells: [...bar.querySelectorAll(".cell")].map((c) => ({
        region: Number(c.getAttribute("data-region-id")),
        role: c.getAttribute("data-role"),
      })),
    }));
    const regionLeaders = Object.fromEntries(
      [...document.querySelectorAll("[data-testid=region-row]")].map((tr) => [
        tr.getAttribute("data-region-id"),
        tr.querySelector("[data-field=leader_store]")?.textContent,
      ]),
    );
    const checks = [...document.querySelectorAll("[data-testid=check]")].map((c) => ({
      name: c.getAttribute("data-name") as string,
      state: c.getAttribute("data-state") as string,
      text: c.textContent as string,
    }));
    const notes = [...document.querySelectorAll("[data-testid=store-row]")].map((tr) =>
      (tr.lastElementChild?.textContent ?? "") as string
    );
    return {
      refreshed: Number(document.body.dataset.refreshed ?? 0),
      regions: Number(text("[data-testid=summary-regions-value]")),
      operators: Number(text("[data-testid=summary-operators-value]")),
      live: text("[data-testid=live]"),
      result: text("[data-testid=result]"),
      stores,
      bars,
      regionLeaders,
      checks,
      notes,
    };
  });
}

/** True if the page shows exactly what the admin API says now. */
async function pageMatchesApi(page: Page, base: string): Promise<string | true> {
  const shown = await readPage(page);
  const stores = (await api(base, "/stores")).stores;
  const regions = (await api(base, "/regions")).regions;
  const want = {
    regions: regions.length,
    stores: stores.map((s: Json) => ({
      id: s.store.id,
      state: s.store.state_name,
      regions: s.status.region_count,
      leaders: s.status.leader_count,
    })),
    bars: stores.map((s: Json) => ({
      store: s.store.id,
      cells: regions.map((r: Json) => {
        const peer = r.peers.find((p: Json) => p.store_id === s.store.id);
        const role = !peer
          ? "none"
          : r.leader?.id === peer.id
          ? "leader"
          : peer.role === "Learner"
          ? "learner"
          : "follower";
        return { region: r.id, role };
      }),
    })),
  };
  const got = { regions: shown.regions, stores: shown.stores, bars: shown.bars };
  const a = JSON.stringify(got), b = JSON.stringify(want);
  return a === b ? true : `page ${a}\n api ${b}`;
}

async function eventuallyMatches(page: Page, base: string, what: string): Promise<void> {
  let last: string | true = "";
  await waitFor(`the page to match the admin API (${what})`, async () => {
    last = await pageMatchesApi(page, base);
    return last === true;
  }, 20_000).catch((e) => {
    throw new Error(`${(e as Error).message}\n${last}`);
  });
}

Deno.test(
  "dashboard: a real browser sees the admin API's numbers, splits a region and moves a leader from the page",
  opts,
  async () => {
    try {
      await Deno.stat(CHROMIUM);
    } catch {
      assert.fail(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does this)`);
    }
    const c = await startHttpCluster(3);
    try {
      adminHeaders = c.adminHeaders;
      const base = c.schedulerUrl;
      for (let i = 0; i < 40; i++) {
        const put = await fetch(`${c.storeUrls[i % 3]}/kv/user%2F${String(i).padStart(3, "0")}`, {
          method: "PUT",
          body: "x".repeat(200),
        });
        assert.equal(put.status, 204, await put.text());
      }
      const profile = await Deno.makeTempDir({ prefix: "mrkv-chromium-" });
      const browser = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_FLAGS,
        viewport: { width: 1280, height: 1400 },
      });
      try {
        const page = await browser.newPage();
        const errors: string[] = [];
        page.on("pageerror", (e) => errors.push(e.message));
        // Without a credential the page loads (its files are public) and asks for one.
        await page.goto(`${base}/?refresh=300`);
        await page.waitForSelector("[data-testid=login]:not([hidden])");
        assert.match(await page.textContent("#login-why") ?? "", /^Unauthenticated: /);
        const header = (await Deno.readTextFile(`${c.dir}/admin.header`)).trim();
        await page.fill("#login-form input[name=token]", header);
        await page.click("#login-form button[type=submit]");
        await page.waitForFunction(() => Number(document.body.dataset.refreshed ?? 0) >= 1);
        assert.ok(await page.isHidden("[data-testid=login]"));
        await eventuallyMatches(page, base, "three stores, one region");
        const first = await readPage(page);
        assert.match(
          first.live,
          /^live · updated/,
          `the page is not live: "${first.live}"; page errors: ${errors.join("; ") || "none"}`,
        );
        assert.deepEqual(first.checks.map((x) => x.name), [
          "replica-checker",
          "balance-region-scheduler",
          "balance-leader-scheduler",
          "hot-region-scheduler",
        ]);

        // Split region 1 at "m" from the page's form; the page updates on its own.
        await page.selectOption("#split-region select[name=region_id]", "1");
        await page.fill("#split-region input[name=key]", "m");
        await page.click("#split-region button[type=submit]");
        await waitForResult(page, /^operator added: admin-split-region on region 1/);
        await waitFor(
          "the page to show two regions",
          async () => (await readPage(page)).regions === 2,
        );
        await eventuallyMatches(page, base, "after the split");

        // Move region 1's leadership to a follower's store from the page, with balance-leader
        // stopped so that the page's operator is what moves it.
        await api(base, "/schedulers/balance-leader-scheduler", { method: "DELETE" });
        await waitFor(
          "the page to show balance-leader disabled",
          async () =>
            (await readPage(page)).checks.some((x) =>
              x.name === "balance-leader-scheduler" && x.state === "disabled"
            ),
        );
        await waitFor(
          "no running operator",
          async () => (await api(base, "/operators")).count === 0,
        );
        const r1 = await api(base, "/region/id/1");
        const target = r1.peers.find((p: Json) => p.id !== r1.leader.id).store_id;
        await page.selectOption("#transfer-leader select[name=region_id]", "1");
        await page.selectOption("#transfer-leader select[name=to_store_id]", String(target));
        await page.click("#transfer-leader button[type=submit]");
        await waitForResult(page, /^operator added: admin-transfer-leader on region 1/);
        await waitFor(
          `the page to show store ${target} leading region 1`,
          async () => (await readPage(page)).regionLeaders["1"] === String(target),
          20_000,
        );
        await eventuallyMatches(page, base, "after the leader transfer");
        await screenshot(page, "dashboard.png");

        // A store taken offline with nowhere for its replicas to go: the page says why
        // nothing moves, in the scheduler's checks and on the store's row.
        // In a fresh tab, from an address carrying the token in its fragment (as the playground
        // prints it): the page takes it and drops it from the address bar.
        const token = c.adminHeaders.authorization!.slice("Bearer ".length);
        const second = await browser.newPage();
        second.on("pageerror", (e) => errors.push(e.message));
        await second.goto(`${base}/?refresh=300#token=${token}`);
        await second.waitForFunction(() => Number(document.body.dataset.refreshed ?? 0) >= 1);
        assert.equal(new URL(second.url()).hash, "");
        await second.close();

        await api(base, `/store/${c.nodes[2]!.store.storeId}`, { method: "DELETE" });
        await waitFor("the page to show the replica checker blocked", async () => {
          const p = await readPage(page);
          const replica = p.checks.find((x) => x.name === "replica-checker");
          return replica?.state === "blocked" &&
            /store \d+ is offline: no Up store without a replica of region/.test(replica.text) &&
            p.notes.some((n) => /blocked: no Up store without a replica/.test(n));
        });
        await screenshot(page, "dashboard-blocked.png");
        assert.deepEqual(errors, [], "no script errors on the page");
      } finally {
        await browser.close();
        await Deno.remove(profile, { recursive: true }).catch(() => {});
      }
    } finally {
      await c.close();
    }
  },
);

/** Waits until the page's action result line matches `re`. */
async function waitForResult(page: Page, re: RegExp): Promise<void> {
  let last = "";
  await waitFor(`the page's result line to match ${re}`, async () => {
    last = (await readPage(page)).result;
    return re.test(last);
  }).catch((e) => {
    throw new Error(`${(e as Error).message} (it says "${last}")`);
  });
}

/** With `MRKV_SCREENSHOTS=1`, saves the whole page as `docs/<name>`. */
async function screenshot(page: Page, name: string): Promise<void> {
  if (Deno.env.get("MRKV_SCREENSHOTS") !== "1") return;
  const path = new URL(`../docs/${name}`, import.meta.url).pathname;
  await page.screenshot({ path, fullPage: true });
}
