// The mrkv dashboard: reads the scheduler's admin API and redraws every REFRESH_MS.
// Every request goes through api(), the one place a credential is attached when the cluster
// requires one. Everything from the API is inserted as text, never as HTML.

const params = new URLSearchParams(location.search);
const REFRESH_MS = Math.max(200, Number(params.get("refresh") ?? 1000) || 1000);
const MAX_REGION_ROWS = 500;

// The admin credential. A secure cluster's admin API needs it (docs/security.md): it comes from
// the address's fragment (`/#token=…`, which browsers never send to the server; the playground
// prints such an address) or from the form the page shows on a 401, and lives in this tab's
// session storage only.
const TOKEN_KEY = "mrkv-admin-token";
const TOKEN_RE = /^(?:authorization:\s*bearer\s+)?([0-9a-f]{64})$/i;
{
  const m = /^#token=([0-9a-f]{64})$/i.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, m[1].toLowerCase());
    history.replaceState(null, "", location.pathname + location.search);
  }
}

/** Headers every request carries: the credential, if one was given. */
function credentialHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** Longest one admin API request may take before the page says the scheduler is unreachable. */
const API_TIMEOUT_MS = 10_000;

/** An API error, with the HTTP status (401 and 403 ask for a credential). */
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls the admin API; resolves with the parsed JSON or throws an Error with its message. */
export async function api(path, init = {}) {
  let res;
  try {
    res = await fetch(path, {
      ...init,
      headers: { accept: "application/json", ...credentialHeaders(), ...(init.headers ?? {}) },
      // A request that never ends would freeze the refresh loop while "updated" went stale.
      signal: AbortSignal.timeout(API_TIMEOUT_MS),
    });
  } catch (e) {
    if (e.name === "TimeoutError") {
      throw new Error(`no answer from ${path} in ${API_TIMEOUT_MS / 1000} s`);
    }
    throw e;
  }
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  if (!res.ok) {
    const e = body && body.error;
    throw new ApiError(
      res.status,
      e ? `${e.code}: ${e.message}` : `HTTP ${res.status} from ${path}`,
    );
  }
  return body;
}

// ---- small DOM helpers ----

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("data")) {
      node.setAttribute(k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase()), v);
    } else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function replace(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== undefined && c !== null));
}

function bytes(n) {
  if (!Number.isFinite(n) || n <= 0) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : Number(n.toFixed(1))} ${units[i]}`;
}

function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 60
    ? `${s} s ago`
    : s < 3600
    ? `${Math.round(s / 60)} min ago`
    : `${Math.round(s / 3600)} h ago`;
}

function keyText(obj, field) {
  if (obj[`${field}_hex`] !== undefined) return `0x${obj[`${field}_hex`]}`;
  const k = obj[field];
  if (k === "" || k === undefined) return field === "start_key" ? "−∞" : "+∞";
  return JSON.stringify(k);
}

function stepText(s) {
  return s.desc ?? s.type;
}

// ---- rendering ----

function renderSummary(d) {
  const up = d.stores.filter((s) => s.store.state_name === "Up").length;
  const leaders = d.regions.filter((r) => r.leader).length;
  const cards = [
    ["stores", `${up} / ${d.stores.length}`, "Up / registered"],
    ["regions", d.regions.length, `${leaders} with a leader`],
    ["operators", d.operators.length, "running"],
    ["scheduler", d.diagnose.idle ? "idle" : "busy", `max ${d.cluster.max_peer_count} replicas`],
  ];
  replace(
    document.getElementById("summary"),
    cards.map(([name, value, note]) =>
      el(
        "div",
        { class: "card", dataTestid: `summary-${name}` },
        el("div", { class: "card-name" }, name),
        el("div", { class: "card-value", dataTestid: `summary-${name}-value` }, value),
        el("div", { class: "card-note" }, note),
      )
    ),
  );
}

function renderChecks(d) {
  replace(
    document.getElementById("checks"),
    d.diagnose.checks.map((c) =>
      el(
        "div",
        { class: `check ${c.state}`, dataTestid: "check", dataName: c.name, dataState: c.state },
        el("span", { class: "badge" }, c.state),
        el("strong", {}, c.name),
        el("ul", {}, c.reasons.map((r) => el("li", {}, r))),
      )
    ),
  );
}

function renderStores(d) {
  const drains = new Map(d.diagnose.drains.map((x) => [x.store_id, x]));
  const rows = d.stores.map((s) => {
    const st = s.status;
    const drain = drains.get(s.store.id);
    const note = drain
      ? drain.blocked
        ? `draining, ${drain.regions_left} regions left — blocked: ${drain.blocked}`
        : `draining, ${drain.regions_left} regions left`
      : "";
    return el(
      "tr",
      { dataTestid: "store-row", dataStoreId: s.store.id },
      el("td", { dataField: "id" }, s.store.id),
      el("td", {}, s.store.address),
      el(
        "td",
        {},
        el(
          "span",
          { class: `state ${s.store.state_name}`, dataField: "state" },
          s.store.state_name,
        ),
      ),
      el("td", { class: "num", dataField: "region_count" }, st.region_count),
      el("td", { class: "num", dataField: "leader_count" }, st.leader_count),
      el("td", { class: "num" }, `${st.region_size} MiB`),
      el("td", {}, st.capacity ? `${bytes(st.available)} / ${bytes(st.capacity)}` : "—"),
      el("td", {}, ago(st.last_heartbeat_ts)),
      el("td", { class: drain && drain.blocked ? "warn" : "" }, note),
    );
  });
  replace(document.querySelector("#stores tbody"), rows);
}

function renderKeyspace(d) {
  const stores = d.stores.filter((s) => s.store.state_name !== "Tombstone");
  const bars = stores.map((s) => {
    const id = s.store.id;
    const cells = d.regions.map((r) => {
      const peer = r.peers.find((p) => p.store_id === id);
      const role = !peer
        ? "none"
        : r.leader && r.leader.id === peer.id
        ? "leader"
        : peer.role === "Learner"
        ? "learner"
        : "follower";
      return el("span", {
        class: `cell ${role}`,
        dataRegionId: r.id,
        dataRole: role,
        title: `region ${r.id} [${keyText(r, "start_key")}, ${keyText(r, "end_key")}): ${role}`,
      });
    });
    return el(
      "div",
      { class: "bar-row", dataTestid: "keyspace-bar", dataStoreId: id },
      el("span", { class: "bar-label" }, `store ${id}`),
      el("div", { class: "bar" }, cells),
    );
  });
  replace(document.getElementById("keyspace"), bars);
}

function operatorBlock(op) {
  return el(
    "div",
    { class: `operator ${op.status}`, dataTestid: "operator", dataRegionId: op.region_id },
    el(
      "div",
      { class: "op-head" },
      el("strong", {}, `region ${op.region_id}`),
      ` ${op.desc} `,
      el("span", { class: "badge" }, op.status),
      ` ${op.kind}, created ${ago(op.created_at)}`,
      op.reason ? el("span", { class: "reason" }, ` — ${op.reason}`) : null,
    ),
    el(
      "ol",
      { class: "steps" },
      op.steps.map((s, i) =>
        el(
          "li",
          {
            class: op.status !== "Running" && op.status !== "Created"
              ? ""
              : i < op.current_step
              ? "done"
              : i === op.current_step
              ? "current"
              : "",
          },
          stepText(s),
        )
      ),
    ),
  );
}

function renderOperators(d) {
  const running = d.operators;
  replace(
    document.getElementById("operators"),
    running.length
      ? running.map(operatorBlock)
      : el("p", { class: "hint" }, "No operator is running."),
  );
  const recent = d.history.slice(-10).reverse();
  replace(
    document.getElementById("history"),
    recent.length ? recent.map(operatorBlock) : el("p", { class: "hint" }, "None yet."),
  );
}

function renderRegions(d) {
  const flow = (hot) => {
    const m = new Map();
    for (const s of Object.values(hot.as_leader ?? {})) {
      for (const x of s.statistics) m.set(x.region_id, x.flow_bytes);
    }
    return m;
  };
  const writes = flow(d.hotWrite);
  const reads = flow(d.hotRead);
  const rows = d.regions.slice(0, MAX_REGION_ROWS).map((r) =>
    el(
      "tr",
      { dataTestid: "region-row", dataRegionId: r.id },
      el("td", {}, r.id),
      el("td", { class: "key" }, keyText(r, "start_key")),
      el("td", { class: "key" }, keyText(r, "end_key")),
      el("td", { dataField: "leader_store" }, r.leader ? r.leader.store_id : "none"),
      el(
        "td",
        {},
        r.peers.map((p) => `${p.store_id}${p.role === "Learner" ? " (learner)" : ""}`).join(", "),
      ),
      el("td", { class: "num" }, bytes(r.approximate_size_bytes)),
      el("td", { class: "num" }, r.approximate_keys),
      el("td", { class: "num" }, writes.has(r.id) ? `${bytes(writes.get(r.id))}` : ""),
      el("td", { class: "num" }, reads.has(r.id) ? `${bytes(reads.get(r.id))}` : ""),
    )
  );
  if (d.regions.length > MAX_REGION_ROWS) {
    rows.push(
      el(
        "tr",
        {},
        el("td", { colspan: 9 }, `… ${d.regions.length - MAX_REGION_ROWS} more regions`),
      ),
    );
  }
  replace(document.querySelector("#regions tbody"), rows);
}

/** Sets a select's options, keeping the user's choice if it is still offered. */
function setOptions(select, values) {
  const current = select.value;
  const same = select.options.length === values.length &&
    [...select.options].every((o, i) => o.value === String(values[i][0]));
  if (!same) {
    replace(select, values.map(([v, label]) => el("option", { value: v }, label)));
  }
  if (values.some(([v]) => String(v) === current)) select.value = current;
}

let latest = null;

function renderForms(d) {
  const regionOptions = d.regions.map((
    r,
  ) => [r.id, `${r.id} [${keyText(r, "start_key")}, ${keyText(r, "end_key")})`]);
  const tl = document.getElementById("transfer-leader");
  setOptions(tl.region_id, regionOptions);
  updateTransferTargets();
  setOptions(document.getElementById("split-region").region_id, regionOptions);
}

/** The transfer target list: the chosen region's voters other than its leader. */
function updateTransferTargets() {
  if (!latest) return;
  const tl = document.getElementById("transfer-leader");
  const r = latest.regions.find((x) => String(x.id) === tl.region_id.value);
  const targets = r
    ? r.peers.filter((p) => p.role !== "Learner" && (!r.leader || p.id !== r.leader.id)).map((
      p,
    ) => [p.store_id, `store ${p.store_id}`])
    : [];
  setOptions(tl.to_store_id, targets);
}

function showResult(text, ok) {
  const p = document.getElementById("result");
  p.textContent = text;
  p.className = ok ? "ok" : "error";
}

async function submitOperator(body) {
  try {
    const op = await api("/pd/api/v1/operators", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    showResult(
      `operator added: ${op.desc} on region ${op.region_id} (${
        op.steps.map(stepText).join(" → ")
      })`,
      true,
    );
    refresh();
  } catch (e) {
    showResult(`refused: ${e.message}`, false);
  }
}

function wireLogin() {
  const form = document.getElementById("login-form");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const m = TOKEN_RE.exec(form.token.value.trim());
    if (!m) {
      document.getElementById("login-why").textContent =
        "that is not a token: 64 hex digits, or the line of data/admin.header";
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, m[1].toLowerCase());
    form.token.value = "";
    refresh();
  });
}

function wireForms() {
  const tl = document.getElementById("transfer-leader");
  tl.region_id.addEventListener("change", updateTransferTargets);
  tl.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submitOperator({
      name: "transfer-leader",
      region_id: Number(tl.region_id.value),
      to_store_id: Number(tl.to_store_id.value),
    });
  });
  const split = document.getElementById("split-region");
  split.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = { name: "split-region", region_id: Number(split.region_id.value) };
    if (split.key.value !== "") body.keys = [split.key.value];
    submitOperator(body);
  });
}

// ---- the refresh loop ----

let refreshing = false;

async function refresh() {
  if (refreshing) return;
  refreshing = true;
  const live = document.getElementById("live");
  try {
    const d = await load();
    latest = d;
    document.getElementById("login").hidden = true;
    try {
      render(d);
    } catch (e) {
      // A bug of this page, not the cluster's: say so, and let it reach the console.
      live.textContent = `cannot show the cluster's state: ${e.message}`;
      live.className = "live error";
      reportError(e);
      return;
    }
    live.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    live.className = "live ok";
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed ?? 0) + 1);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      document.getElementById("login").hidden = false;
      document.getElementById("login-why").textContent = e.message;
      live.textContent = "needs the admin credential";
    } else {
      live.textContent = `cannot reach the scheduler: ${e.message}`;
    }
    live.className = "live error";
  } finally {
    refreshing = false;
  }
}

/** Everything the page shows, read from the admin API at once. */
async function load() {
  const [cluster, version, stores, regions, operators, history, diagnose, hotWrite, hotRead] =
    await Promise.all([
      api("/pd/api/v1/cluster"),
      api("/pd/api/v1/version"),
      api("/pd/api/v1/stores"),
      api("/pd/api/v1/regions"),
      api("/pd/api/v1/operators"),
      api("/pd/api/v1/operators/records"),
      api("/pd/api/v1/diagnose"),
      api("/pd/api/v1/hotspot/regions/write"),
      api("/pd/api/v1/hotspot/regions/read"),
    ]);
  return {
    cluster,
    version,
    stores: stores.stores,
    regions: regions.regions,
    operators: operators.operators,
    history: history.operators,
    diagnose,
    hotWrite,
    hotRead,
  };
}

function render(d) {
  document.getElementById("cluster").textContent =
    `cluster ${d.cluster.id} · version ${d.version.version}`;
  renderSummary(d);
  renderChecks(d);
  renderStores(d);
  renderKeyspace(d);
  renderOperators(d);
  renderRegions(d);
  renderForms(d);
}

wireLogin();
wireForms();
refresh();
setInterval(refresh, REFRESH_MS);
