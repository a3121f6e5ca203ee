// The hub console: plain JavaScript, no build step. Every value shown comes from the API and may be hostile,
// so text goes in through textContent (el() below) and never as HTML. The server decides what a user may
// do; the page only hides what the session's permissions lack.
"use strict";

const LIMIT = 25;
const state = { session: null, csrf: "", currency: null, refresh: null, rendering: 0 };
const $ = id => document.getElementById(id);

// ---- building the page, safely -------------------------------------------------------------------------
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "value" || key === "checked") node[key] = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

const card = (title, ...children) => el("div", { class: "card" }, el("h2", { text: title }), ...children);
const field = (label, input) => el("label", {}, label, input);
const can = permission => !!state.session && state.session.permissions.includes(permission);

function problem(message) {
  const box = $("problem");
  box.textContent = message || "";
  box.hidden = !message;
  if (message) box.scrollIntoView({ block: "nearest" });  // a refusal is seen, wherever the form was
}

function status(message) {
  $("status").textContent = message || "";
  if (message) $("status").scrollIntoView({ block: "nearest" });
}

// ---- values as a person reads them ---------------------------------------------------------------------
const MINOR_DIGITS = { JPY: 0, KRW: 0, ISK: 0, CLP: 0, VND: 0, BHD: 3, KWD: 3, JOD: 3, OMR: 3, TND: 3 };
const digitsOf = currency => MINOR_DIGITS[currency] ?? 2;

function money(minor, currency) {
  if (minor === null || minor === undefined) return "";
  const digits = digitsOf(currency);
  const negative = minor < 0;
  const text = String(Math.abs(minor)).padStart(digits + 1, "0");
  const units = digits ? text.slice(0, -digits) + "." + text.slice(-digits) : text;
  return `${negative ? "-" : ""}${units}${currency ? " " + currency : ""}`;
}

function parseAmount(text, currency) {
  // "4.99" -> 499 in integer arithmetic (never through a float); null when it is not an amount.
  const digits = digitsOf(currency);
  const match = /^\s*(\d{1,9})(?:[.,](\d+))?\s*$/.exec(text);
  if (!match || (match[2] || "").length > digits) return null;
  return Number(match[1]) * 10 ** digits + Number((match[2] || "").padEnd(digits, "0") || "0");
}

function when(value) {
  if (!value) return "";
  const date = new Date(value);
  return isNaN(date) ? String(value) : date.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.round(Number(seconds));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function skew(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Number(seconds);
  return Math.abs(s) < 1 ? "in step" : `${Math.abs(s).toFixed(0)} s ${s > 0 ? "behind" : "ahead"}`;
}

function plain(value) {
  // Any value of an unknown shape, as text: money objects as money, times as times.
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return value.map(plain).join(", ");
  if (typeof value === "object") {
    if ("minor" in value && "currency" in value) return money(value.minor, value.currency);
    return JSON.stringify(value);
  }
  if (typeof value === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(value)) return when(value);
  return String(value);
}

const roleText = r => r.role.replace(/_/g, " ") + (r.region ? ` of region ${r.region}` : "") +
  (r.store ? ` at ${r.store}` : "");

// ---- the API -------------------------------------------------------------------------------------------
class Refused extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body, contentType, headers = {}) {
  const options = { method, credentials: "same-origin", headers: { ...headers } };
  if (method !== "GET") {
    options.headers["X-CSRF-Token"] = state.csrf;
    options.headers["Content-Type"] = contentType || "application/json";
    options.body = contentType ? body : JSON.stringify(body || {});
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (exc) {
    throw new Refused(0, "the hub did not answer: check the network, then try again");
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (exc) { data = null; }
  const sentence = data && typeof data.error === "string" ? data.error : `${response.status} ${response.statusText}`;
  if (response.status === 401 && path !== "/api/login") {
    signedOut(sentence);
    const ended = new Refused(401, sentence);
    ended.signedOut = true;  // the sign-in form says why; nothing more to report
    throw ended;
  }
  if (!response.ok) throw new Refused(response.status, sentence);
  return data;
}

function query(path, params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && String(value).trim() !== "") search.set(key, String(value).trim());
  }
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}

function page(answer, cursorOf) {
  // New lists answer {items, next}; older ones a bare array (the next page starts after its last item).
  if (Array.isArray(answer)) {
    return { items: answer, next: answer.length >= LIMIT && cursorOf ? cursorOf(answer[answer.length - 1]) : null };
  }
  return { items: (answer && answer.items) || [], next: answer ? answer.next ?? null : null };
}

// ---- tables and lists ----------------------------------------------------------------------------------
function fill(table, columns, rows, open) {
  table.replaceChildren();
  const head = el("tr", {}, columns.map(c => el("th", { scope: "col", text: c.label })));
  table.append(el("thead", {}, head));
  const body = el("tbody");
  for (const row of rows) {
    const tr = el("tr");
    for (const column of columns) {
      const value = column.value(row);
      tr.append(el("td", { class: column.wrap ? "wrap" : null }, value instanceof Node ? value : plain(value)));
    }
    if (open) {
      tr.className = "clickable";
      tr.tabIndex = 0;
      tr.addEventListener("click", event => { if (!event.target.closest("button")) open(row); });
      tr.addEventListener("keydown", event => { if (event.key === "Enter" && event.target === tr) open(row); });
    }
    body.append(tr);
  }
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: columns.length, class: "note", text: "none" })));
  table.append(body);
}

function listing(title, columns, fetchPage, options = {}) {
  // A card with a table paged by keyset: "Next page" follows the answer's cursor, "First page" starts over.
  const table = el("table", { id: options.id, "aria-label": title });
  const next = el("button", { type: "button", class: "secondary", text: options.nextLabel || "Next page", hidden: true });
  const first = el("button", { type: "button", class: "secondary", text: "First page", hidden: true });
  const box = card(title, options.before || null, el("div", { class: "scroll" }, table), el("div", { class: "pager" }, first, next));
  let cursor = null;
  let asked = 0;
  async function show(at) {
    const mine = ++asked;
    const answer = page(await fetchPage(at), options.cursorOf);
    if (mine !== asked) return;  // a newer search or page was asked for meanwhile: its answer wins
    const rows = options.order ? options.order(answer.items) : answer.items;
    fill(table, columns, rows, options.open);
    if (options.after) options.after(rows);
    cursor = answer.next;
    next.hidden = cursor === null || cursor === undefined;
    first.hidden = at === null;
    box.dataset.page = at === null ? "first" : "later";
  }
  const guarded = at => show(at).catch(report);
  next.addEventListener("click", () => guarded(cursor));
  first.addEventListener("click", () => guarded(null));
  box.reload = () => show(null);
  box.refresh = () => (box.dataset.page === "first" ? show(null) : Promise.resolve());
  return box;
}

function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.flatMap(([label, value]) =>
    [el("dt", { text: label }), el("dd", {}, value instanceof Node ? value : plain(value))]));
}

function generic(title, rows, currency) {
  // A table of rows whose shape this page does not fix (lines, tenders, diffs): one column per key, amounts
  // in minor units (*_minor) shown as money.
  const list = Array.isArray(rows) ? rows : [];
  const keys = [...new Set(list.flatMap(row => (row && typeof row === "object" ? Object.keys(row) : [])))];
  const table = el("table", { "aria-label": title });
  fill(table, keys.map(key => ({
    label: key.replace(/_minor$/, "").replace(/_/g, " "),
    value: row => (key.endsWith("_minor") && currency ? money(row[key], currency) : row[key]),
  })), list);
  return card(title, el("div", { class: "scroll" }, table));
}

function form(fields, label, submit, options = {}) {
  const button = el("button", { type: "submit", text: label });
  const node = el("form", { class: "form", id: options.id }, fields, button);
  node.addEventListener("submit", async event => {
    event.preventDefault();
    button.disabled = true;
    problem("");
    try {
      await submit(node);
    } catch (exc) {
      report(exc);
    } finally {
      button.disabled = false;
    }
  });
  return node;
}

function report(exc) {
  if (exc instanceof Refused && exc.signedOut) return;  // back at the sign-in form, which says why
  problem(exc instanceof Refused ? exc.message : `the page failed: ${exc && exc.message}`);
}

const input = (name, props = {}) => el("input", { name, id: `f-${name}`, ...props });
const select = (name, choices, props = {}) =>
  el("select", { name, id: `f-${name}`, ...props }, choices.map(([value, label]) => el("option", { value, text: label })));
const back = (hash, text) => el("p", {}, el("a", { href: hash, text }));

// ---- signing in and out --------------------------------------------------------------------------------
function signedIn(session) {
  state.session = session;
  state.csrf = session.csrf;
  $("who").textContent = `${session.name} (${session.user}) · ${session.tenant} · ` +
    (session.roles.map(roleText).join(", ") || "no role");
  $("signout").hidden = false;
  $("nav").hidden = false;
  $("menu").hidden = false;
  for (const link of document.querySelectorAll("#nav a")) link.hidden = !can(link.dataset.permission);
  $("signin").hidden = true;
  $("view").hidden = false;
}

function signedOut(why) {
  state.rendering++;  // a section still loading is dropped, not shown to the next user
  state.session = null;
  state.csrf = "";
  state.currency = null;
  state.refresh = null;
  $("who").textContent = "";
  $("signout").hidden = $("nav").hidden = $("menu").hidden = true;
  $("view").hidden = true;
  $("view").replaceChildren();
  $("signin").hidden = false;
  status("");
  problem(why || "");
  $("signin-form").elements.login.focus();
}

async function signIn(event) {
  event.preventDefault();
  const fields = event.target.elements;
  problem("");
  try {
    const session = await api("POST", "/api/login", { login: fields.login.value.trim(), password: fields.password.value });
    fields.password.value = "";
    signedIn(session);
    if (!location.hash || location.hash === "#") location.hash = firstSection();
    else render();
  } catch (exc) {
    report(exc);
  }
}

async function signOut() {
  try { await api("POST", "/api/logout"); } catch (exc) { /* the session is gone either way */ }
  signedOut("You are signed out.");
}

// ---- sections ------------------------------------------------------------------------------------------
const SECTIONS = {
  fleet: { permission: "fleet.view", list: fleet, item: fleetStore },
  catalog: { permission: "catalog.view", list: catalog, item: product },
  stock: { permission: "stock.view", list: stock },
  orders: { permission: "sales.view", list: orders, item: order },
  drawers: { permission: "sales.view", list: drawers, item: drawer },
  "dead-letters": { permission: "dead_letters.view", list: deadLetters },
  users: { permission: "users.view", list: users, item: user },
  audit: { permission: "audit.view", list: audit },
  payments: { permission: "payments.view", list: payments, item: paymentsItem },
  customers: { permission: "customers.view", list: customers, item: customer360 },
  loyalty: { permission: "customers.view", list: loyalty, item: loyaltyAccount },
};

function firstSection() {
  const found = Object.entries(SECTIONS).find(([, section]) => can(section.permission));
  return found ? `#${found[0]}` : "#";
}

async function render() {
  if (!state.session) return;
  const token = ++state.rendering;
  const [name, ...rest] = location.hash.slice(1).split("/");
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : null;
  const section = SECTIONS[name];
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === `#${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if ($("nav").classList.contains("open")) toggleMenu(false);
  problem("");
  status("");
  state.refresh = null;
  const view = $("view");
  if (!section) {
    location.replace(firstSection());
    return;
  }
  if (!can(section.permission)) {
    view.replaceChildren();
    problem(`your roles do not include ${section.permission}: ask a tenant admin`);
    return;
  }
  const parts = [];
  let failure = null;
  try {
    await (arg === null ? section.list(parts) : section.item(arg, parts));
  } catch (exc) {
    failure = exc;
  }
  if (token !== state.rendering) return;  // the user moved on meanwhile
  view.replaceChildren(...parts);
  view.dataset.section = name;
  view.dataset.item = arg || "";
  view.dataset.refused = failure ? String(failure.status ?? "") : "";
  if (failure) report(failure);
  const heading = view.querySelector("h2");
  if (heading) { heading.tabIndex = -1; }
}

// Fleet: alerts first, each store's health; a store's detail with its day of history.
async function fleet(parts) {
  const region = input("region", { maxlength: 64, placeholder: "all" });
  const which = select("status", [["", "all"], ["online", "online"], ["offline", "offline"]]);
  const alerts = el("ul", { class: "alerts", id: "fleet-alerts" });
  const alertCard = card("Alerts", alerts);
  const devices = d => {  // the ones that need attention by name; the store's page lists them all
    const down = (d || []).filter(x => x.down);
    return down.length ? down.map(x => `${x.name}: ${x.state}`).join(", ") : `${(d || []).length} ok`;
  };
  const tills = t => (Array.isArray(t) ? t.join(", ") || "none" : t);
  const list = listing("Stores", [
    { label: "Store", value: s => s.store },
    { label: "Name", value: s => s.name },
    { label: "Region", value: s => s.region },
    { label: "Status", value: s => el("span", { class: s.online ? "online" : "offline", text: s.online ? "online" : "offline" }) },
    { label: "Last seen", value: s => when(s.last_seen) },
    { label: "Outbox", value: s => (s.outbox ? `${s.outbox.depth} unsent` : "") },
    { label: "Oldest unsent", value: s => (s.outbox ? age(s.outbox.oldest_age_s) : "") },
    { label: "Devices", value: s => devices(s.devices), wrap: true },
    { label: "Version", value: s => s.version },
    { label: "Clock", value: s => skew(s.clock_skew_s) },
    { label: "Open tills", value: s => tills(s.open_tills) },
    { label: "Last sale", value: s => lastSale(s.last_sale) },
    { label: "Alerts", value: s => (s.alerts || []).length },
  ], after => api("GET", query("/api/fleet", { region: region.value, status: which.value, after, limit: LIMIT })), {
    id: "fleet",
    cursorOf: s => s.store,
    order: rows => [...rows].sort((a, b) => ((b.alerts || []).length > 0) - ((a.alerts || []).length > 0)),
    open: s => { location.hash = `#fleet/${encodeURIComponent(s.store)}`; },
    after: rows => {
      const found = rows.flatMap(s => (s.alerts || []).map(a => el("li", {}, `${s.store}: `, a)));
      alerts.replaceChildren(...(found.length ? found : [el("li", { class: "note", text: "no alerts on this page" })]));
    },
    before: form([field("Region", region), field("Status", which)], "Show", () => list.reload(), { id: "fleet-filter" }),
  });
  parts.push(alertCard, list);
  const loads = [list.reload()];
  if (can("sales.view")) {
    const sequence = listing("Sequence gaps and reused numbers", [
      { label: "Tenant", value: q => q.tenant }, { label: "Store", value: q => q.store },
      { label: "Missing", value: q => q.missing },
      { label: "Gaps (newest first)", value: q => q.gaps.map(g => (g.first === g.last ? `${g.first}` : `${g.first}-${g.last}`)).join(", "), wrap: true },
      { label: "Reused", value: q => q.reused },
      { label: "Reused numbers (event id)", value: q => q.reuses.map(r => `${r.seq} (${r.event_id})`).join(", "), wrap: true },
    ], after => api("GET", query("/api/sequence-issues", { after })), { id: "sequence", cursorOf: q => q.store });
    parts.push(sequence);
    loads.push(sequence.reload());
  }
  await Promise.all(loads);
  state.refresh = () => list.refresh();
}

function lastSale(sale) {
  if (!sale) return "";
  return typeof sale === "object" ? `#${sale.seq} at ${when(sale.at)}` : when(sale);
}

async function fleetStore(store, parts) {
  parts.push(back("#fleet", "← all stores"));
  const path = `/api/fleet/${encodeURIComponent(store)}`;
  const s = await api("GET", path);
  parts.push(card(`Store ${s.store || store}${s.name ? " · " + s.name : ""}`, facts([
    ["Status", el("span", { class: s.online ? "online" : "offline",
                            text: s.online ? "online" : `offline${s.offline_since ? " since " + when(s.offline_since) : ""}` })],
    ["Region", s.region], ["Last seen", when(s.last_seen)], ["Version", s.version],
    ["Outbox", s.outbox ? `${s.outbox.depth} unsent, oldest ${age(s.outbox.oldest_age_s) || "none"}` : ""],
    ["Clock", skew(s.clock_skew_s)], ["Open tills", Array.isArray(s.open_tills) ? s.open_tills.join(", ") || "none" : s.open_tills],
    ["Last sale", lastSale(s.last_sale)],
  ]), el("ul", { class: "alerts", id: "store-alerts" }, (s.alerts || []).map(a => el("li", { text: a })))));
  const devices = el("table", { id: "store-devices" });
  fill(devices, [{ label: "Device", value: d => d.name }, { label: "Kind", value: d => d.kind },
                 { label: "State", value: d => el("span", { class: d.down ? "bad" : "ok", text: d.state }) },
                 { label: "Detail", value: d => d.detail, wrap: true }], s.devices || []);
  parts.push(card("Devices", el("div", { class: "scroll" }, devices)));
  let first = true;
  const history = listing("The last day, newest first", [
    { label: "When", value: h => when(h.at) }, { label: "What", value: h => h.kind },
    { label: "Details", value: h => (h.details && typeof h.details === "object" ? JSON.stringify(h.details) : h.details), wrap: true },
  ], async before => {
    const answer = first ? s : await api("GET", query(path, { before }));
    first = false;
    return { items: answer.history || [], next: answer.next ?? null };
  }, { id: "store-history", nextLabel: "Older" });
  parts.push(history);
  await history.reload();
}

// Catalog and prices: search, a product's detail with its edit and price forms, the CSV import.
async function tenantCurrency() {
  if (state.currency === null) state.currency = (await api("GET", "/api/catalog/settings")).currency;
  return state.currency;
}

async function catalog(parts) {
  const q = input("q", { type: "search", maxlength: 200, placeholder: "name, id, SKU or barcode" });
  const list = listing("Products", [
    { label: "Product", value: p => p.product },
    { label: "Name", value: p => p.name, wrap: true },
    { label: "Tax class", value: p => p.tax_class },
    { label: "Variants", value: p => p.variants },
    { label: "Active", value: p => (p.active ? "yes" : "no") },
  ], after => api("GET", query("/api/catalog/products", { q: q.value, after, limit: LIMIT })), {
    id: "products",
    cursorOf: p => p.product,
    open: p => { location.hash = `#catalog/${encodeURIComponent(p.product)}`; },
    before: form([field("Search", q)], "Search", () => list.reload(), { id: "product-search" }),
  });
  parts.push(list);
  if (can("catalog.edit")) parts.push(importer());
  await list.reload();
}

function importer() {
  const file = el("input", { type: "file", name: "file", id: "f-file", accept: ".csv,text/csv", required: true });
  const bar = el("progress", { id: "import-progress", max: 1, value: 0, hidden: true, "aria-label": "import progress" });
  const said = el("p", { id: "import-status", "aria-live": "polite" });
  const refused = el("div", { class: "scroll" });
  const upload = form([field("Catalog CSV (up to 50 MiB)", file)], "Import", async () => {
    const chosen = file.files[0];
    if (!chosen) throw new Refused(0, "choose a CSV file first");
    bar.hidden = false;
    bar.removeAttribute("value");  // indeterminate while the file travels
    said.textContent = `uploading ${chosen.name} (${Math.ceil(chosen.size / 1024)} KiB)…`;
    let job = await api("POST", query("/api/catalog/imports", { name: chosen.name }), chosen, "text/csv");
    while (job.state === "queued" || job.state === "importing") {
      showJob(job);
      await new Promise(resolve => setTimeout(resolve, 300));
      job = await api("GET", `/api/catalog/imports/${job.id}`);
    }
    showJob(job);
  }, { id: "import-form" });
  function showJob(job) {
    bar.max = Math.max(job.rows_total, 1);
    bar.value = job.rows_done;
    said.dataset.state = job.state;
    said.className = job.state === "failed" ? "bad" : "";
    said.textContent = job.state === "done"
      ? `Imported: catalog version ${job.version}, ${job.landed} rows landed, ${job.changed_variants} variant(s) changed, ${job.refused} refused`
      : `${job.state}: ${job.rows_done} of ${job.rows_total} rows · ${job.step}`;
    refused.replaceChildren();
    if (job.errors && job.errors.length) {
      const table = el("table", { id: "import-errors" });
      fill(table, [{ label: "Line", value: e => e.line }, { label: "Column", value: e => e.column },
                   { label: "Why refused", value: e => e.reason, wrap: true }], job.errors);
      refused.append(table);
    }
  }
  return card("Import a catalog CSV", el("p", { class: "note", text:
    "One row per variant: product, product_name, tax_class, sku, price, and optionally attributes, barcodes, " +
    "price_overrides. Bad rows are refused and listed; the others land in one catalog version." }),
    upload, bar, said, refused);
}

async function product(id, parts) {
  parts.push(back("#catalog", "← all products"));
  const [p, currency] = await Promise.all([api("GET", `/api/catalog/products/${encodeURIComponent(id)}`), tenantCurrency()]);
  const prices = v => (v.prices || []).map(x => `${x.scope}${x.scope_id ? " " + x.scope_id : ""}: ` +
    `${money(x.amount_minor, currency)} from ${when(x.effective_from)}`).join("; ");
  const variants = el("table", { id: "variants" });
  fill(variants, [
    { label: "SKU", value: v => v.sku }, { label: "Name", value: v => v.name, wrap: true },
    { label: "Values", value: v => v.values }, { label: "Barcodes", value: v => v.barcodes },
    { label: "Prices", value: v => prices(v), wrap: true }, { label: "Active", value: v => (v.active ? "yes" : "no") },
  ], p.variants || []);
  parts.push(card(`${p.name} (${p.product})`, facts([["Tax class", p.tax_class], ["Attributes", p.attributes],
    ["Active", p.active ? "yes" : "no"], ["Catalog version", p.version]]),
    el("h3", { text: "Variants" }), el("div", { class: "scroll" }, variants)));
  if (can("prices.set") && (p.variants || []).length) parts.push(priceForm(p, currency));
  if (can("catalog.edit")) parts.push(productForm(p));
}

function priceForm(p, currency) {
  const sku = select("sku", p.variants.map(v => [v.sku, `${v.sku} · ${v.name}`]));
  const amount = input("amount", { inputmode: "decimal", required: true, maxlength: 16, placeholder: "4.99" });
  const scope = select("scope", [["tenant", "whole tenant"], ["region", "a region"], ["store", "a store"]]);
  const where = input("scope_id", { maxlength: 64, placeholder: "region or store id" });
  const from = input("effective_from", { type: "datetime-local" });
  const regional = state.session.roles.find(r => r.region || r.store);
  if (!can("catalog.edit") && regional) {  // not a tenant admin: offer their own scope first
    scope.value = regional.region ? "region" : "store";
    where.value = regional.region || regional.store;
  }
  return card("Set or schedule a price", el("p", { class: "note", text:
    `In ${currency}. Leave "from" empty for now; a later time schedules the price, and tills switch to it then.` }),
  form([field("Variant", sku), field(`Price (${currency})`, amount), field("For", scope), field("Region or store", where),
        field("From (your local time)", from)], "Set price", async () => {
    const minor = parseAmount(amount.value, currency);
    if (minor === null) throw new Refused(0, `the price must be an amount like 4.99 (${currency})`);
    const body = { sku: sku.value, amount_minor: minor, scope: scope.value };
    if (scope.value !== "tenant") body.scope_id = where.value.trim();
    if (from.value) body.effective_from = new Date(from.value).toISOString();
    const answer = await api("POST", "/api/catalog/price-changes", body);
    await render();
    status(`Price ${money(minor, currency)} set for ${body.sku}${from.value ? " from " + when(body.effective_from) : ""}: ` +
           `catalog version ${answer.version}`);
  }, { id: "price-form" }));
}

function productForm(p) {
  const name = input("name", { value: p.name, required: true, maxlength: 200 });
  const taxClass = input("tax_class", { value: p.tax_class, required: true, maxlength: 64 });
  const active = select("active", [["true", "active"], ["false", "inactive"]]);
  active.value = String(!!p.active);
  return card("Edit the product", form([field("Name", name), field("Tax class", taxClass), field("State", active)],
    "Save", async () => {
      const answer = await api("POST", "/api/catalog/product-changes", { product: p.product, name: name.value,
        tax_class: taxClass.value.trim(), attributes: p.attributes || [], active: active.value === "true" });
      await render();
      status(`Saved ${p.product}: catalog version ${answer.version}`);
    }, { id: "product-form" }));
}

// Stock: low stock first, balances, the ledger; an adjustment needs a reason.
async function stock(parts) {
  const location = input("location", { maxlength: 64, placeholder: "all" });
  const sku = input("sku", { maxlength: 64, placeholder: "all" });
  const filters = () => ({ location: location.value, sku: sku.value, limit: LIMIT });
  const low = listing("Low stock", [
    { label: "Location", value: r => r.location }, { label: "SKU", value: r => r.sku },
    { label: "Available", value: r => r.available }, { label: "Threshold", value: r => r.low_threshold },
    { label: "Low since", value: r => when(r.low_since) },
  ], after => api("GET", query("/api/stock/low", { after, limit: LIMIT })), { id: "low-stock" });
  const balances = listing("Stock on hand", [
    { label: "Location", value: r => r.location }, { label: "SKU", value: r => r.sku },
    { label: "On hand", value: r => r.on_hand }, { label: "Reserved", value: r => r.reserved },
    { label: "Available", value: r => r.available }, { label: "Threshold", value: r => r.low_threshold },
    { label: "Flags", value: r => [r.low ? "low" : "", r.negative_since ? "negative: review" : ""].filter(Boolean).join(", ") },
  ], after => api("GET", query("/api/stock", { ...filters(), after })), {
    id: "stock",
    before: form([field("Location", location), field("SKU", sku)], "Show", () => Promise.all([balances.reload(), movements.reload()]),
      { id: "stock-filter" }),
  });
  const movements = listing("Movements, newest first", [
    { label: "Id", value: m => m.id }, { label: "When", value: m => when(m.at || m.created_at) },
    { label: "Location", value: m => m.location }, { label: "SKU", value: m => m.sku },
    { label: "Kind", value: m => m.kind }, { label: "Change", value: m => m.on_hand_change },
    { label: "Reason", value: m => m.reason, wrap: true }, { label: "Flags", value: m => m.flags },
  ], after => api("GET", query("/api/stock/movements", { ...filters(), after })), { id: "movements" });
  if (can("stock.adjust")) parts.push(adjustment(() => Promise.all([low.reload(), balances.reload(), movements.reload()])));
  parts.push(low, balances, movements);
  await Promise.all([low.reload(), balances.reload(), movements.reload()]);
}

function adjustment(after) {
  const location = input("adj-location", { required: true, maxlength: 64 });
  const sku = input("adj-sku", { required: true, maxlength: 64 });
  const quantity = input("adj-quantity", { type: "number", required: true, step: 1, placeholder: "-2 or 5" });
  const reason = input("adj-reason", { required: true, maxlength: 200, placeholder: "count, damage, theft…" });
  return card("Adjust stock", form([field("Location", location), field("SKU", sku), field("Change (units, − takes off)", quantity),
    field("Reason (required)", reason)], "Adjust", async () => {
    const change = Number(quantity.value);
    if (!Number.isInteger(change) || change === 0) throw new Refused(0, "the change must be a whole number of units, not 0");
    if (!reason.value.trim()) throw new Refused(0, "say why: an adjustment needs a reason");
    const balance = await api("POST", "/api/stock/adjustments", { location: location.value.trim(), sku: sku.value.trim(),
      quantity: change, reason: reason.value.trim() });
    quantity.value = reason.value = "";
    await after();
    status(`Adjusted ${balance.sku} at ${balance.location}: ${balance.on_hand} on hand, ${balance.available} available`);
  }, { id: "adjust-form" }));
}

// Orders: filtered by store and time; one order's lines, tenders and replay diffs.
async function orders(parts) {
  const store = input("store", { maxlength: 64, placeholder: "all" });
  const from = input("from", { type: "datetime-local" });
  const to = input("to", { type: "datetime-local" });
  const iso = value => (value ? new Date(value).toISOString() : "");
  const list = listing("Orders, newest first", [
    { label: "Completed", value: o => when(o.completed_at) }, { label: "Store", value: o => o.store },
    { label: "Till", value: o => o.till }, { label: "Seq", value: o => o.seq }, { label: "Cashier", value: o => o.cashier },
    { label: "Total", value: o => money(o.total_minor, o.currency) },
    { label: "Clock", value: o => (o.clock_suspect ? "implausible time: check the till's clock" : "ok") },
    { label: "Event id", value: o => o.event_id },
  ], before => api("GET", query("/api/orders", { store: store.value, from: iso(from.value), to: iso(to.value), before, limit: LIMIT })), {
    id: "orders",
    open: o => { location.hash = `#orders/${encodeURIComponent(o.event_id)}`; },
    before: form([field("Store", store), field("From", from), field("To", to)], "Show", () => list.reload(),
      { id: "orders-filter" }),
  });
  const stores = listing("Takings by store", [
    { label: "Store", value: t => t.store }, { label: "Sales", value: t => t.sales },
    { label: "Takings", value: t => (t.totals || []).map(x => money(x.minor, x.currency)).join(", ") },
    { label: "Last sale", value: t => when(t.last_sale) }, { label: "Clock", value: t => skew(t.clock_skew_s) },
  ], () => api("GET", "/api/stores"), { id: "takings" });
  parts.push(list, stores);
  await Promise.all([list.reload(), stores.reload()]);
}

async function order(id, parts) {
  parts.push(back("#orders", "← all orders"));
  const o = await api("GET", `/api/orders/${encodeURIComponent(id)}`);
  const skip = new Set(["lines", "tenders", "price_diffs"]);
  parts.push(card(`Order ${o.store || ""} #${o.seq ?? ""}`, facts(Object.entries(o).filter(([key]) => !skip.has(key))
    .map(([key, value]) => [key.replace(/_minor$/, "").replace(/_/g, " "), key.endsWith("_minor") ? money(value, o.currency) : value]))));
  parts.push(generic("Lines", o.lines, o.currency), generic("Tenders", o.tenders, o.currency),
             generic("Replay diffs (the hub's catalog against what the till charged)", o.price_diffs, o.currency));
}

// Drawers: the tills' drawer sessions per store and day; one session's Z report, moves and late sales.
async function drawers(parts) {
  const store = input("drawer-store", { maxlength: 64, placeholder: "all" });
  const day = input("drawer-day", { type: "date" });
  const list = listing("Drawer sessions, newest opened first", [
    { label: "Opened", value: d => when(d.opened_ms) }, { label: "Store", value: d => d.store },
    { label: "Till", value: d => d.till }, { label: "Opened by", value: d => d.opened_by },
    { label: "Float", value: d => money(d.float_minor, d.currency) },
    { label: "Z", value: d => (d.z_number === null ? "open" : `#${d.z_number}`) },
    { label: "Expected", value: d => money(d.expected_minor, d.currency) },
    { label: "Counted", value: d => money(d.counted_minor, d.currency) },
    { label: "Over/short", value: d => money(d.difference_minor, d.currency) },
    { label: "Approved by", value: d => d.approver || "" },
    { label: "Sales", value: d => d.sales },
    { label: "Late", value: d => (d.late_sales ? `${d.late_sales} after the Z` : "") },
  ], after => api("GET", query("/api/drawer-sessions", { store: store.value.trim(), day: day.value, after, limit: LIMIT })), {
    id: "drawer-sessions",
    open: d => { location.hash = `#drawers/${encodeURIComponent(d.session)}`; },
    before: form([field("Store", store), field("Day", day)], "Show", () => list.reload(), { id: "drawers-filter" }),
  });
  parts.push(list);
  await list.reload();
}

async function drawer(id, parts) {
  parts.push(back("#drawers", "← all drawer sessions"));
  const d = await api("GET", `/api/drawer-sessions/${encodeURIComponent(id)}`);
  const m = minor => money(minor, d.currency);
  const r = d.z;
  const pairs = [["Store", d.store], ["Till", d.till], ["Opened by", d.opened_by],
    ["Opened", when(d.opened_ms)], ["Float", m(d.float_minor)]];
  if (r) {
    pairs.push(["Z number", r.number], ["Closed by", d.closed_by], ["Closed", when(d.closed_ms)],
      ["Sales", `${r.sales.count}: ${m(r.sales.total.minor)}`], ["Returns", `${r.returns.count}: ${m(r.returns.total.minor)}`],
      ["Change given", m(r.change.minor)], ["Discounts", m(r.discounts.minor)], ["Voids", r.voids], ["No-sales", r.no_sales],
      ["Pay-ins", `${r.pay_ins.count}: ${m(r.pay_ins.total.minor)}`], ["Pay-outs", `${r.pay_outs.count}: ${m(r.pay_outs.total.minor)}`],
      ["Drops", `${r.drops.count}: ${m(r.drops.total.minor)}`], ["Expected", m(d.expected_minor)],
      ["Counted", m(d.counted_minor)], ["Over/short", m(d.difference_minor)], ["Approved by", d.approver || "not needed"]);
  } else {
    pairs.push(["Z report", "the session is still open"]);
  }
  parts.push(card(r ? `Z report #${r.number}` : "Open drawer session", facts(pairs)));
  if (r) {
    const method = t => `${t.method}${t.scheme ? " " + t.scheme : ""}`;
    parts.push(generic("Tenders", r.tenders.map(t => ({ method: method(t), count: t.count, amount_minor: t.amount.minor })), d.currency),
      generic("Refunds", r.refunds.map(t => ({ method: method(t), count: t.count, amount_minor: t.amount.minor })), d.currency),
      generic("Tax per rate", r.tax.map(t => ({ rate: `${t.rate_ppm / 10000} %`, amount_minor: t.amount.minor })), d.currency));
  }
  parts.push(generic("Pay-ins, pay-outs, drops and no-sales", d.moves, d.currency),
    generic("Sales that reached the hub after this Z report (late)", d.late, d.currency));
}

// Dead letters: why each was refused, and a re-drive.
async function deadLetters(parts) {
  const list = listing("Dead letters", [
    { label: "Id", value: d => d.id }, { label: "Received", value: d => when(d.received_at) },
    { label: "Subject", value: d => d.subject }, { label: "Reason", value: d => d.reason, wrap: true },
    { label: "Re-driven", value: d => (d.redriven_at ? `${when(d.redriven_at)}: ${d.redrive_outcome}` : "no") },
    { label: "", value: d => (can("dead_letters.redrive") && !d.redriven_at
      ? el("button", { type: "button", class: "secondary", "data-redrive": d.id, text: "Re-drive",
                       "aria-label": `Re-drive dead letter ${d.id}`, onclick: () => redrive(d.id, list) })
      : "") },
  ], after => api("GET", query("/api/dead-letters", { after })), { id: "dead-letters" });
  parts.push(list);
  await list.reload();
}

async function redrive(id, list) {
  problem("");
  try {
    const done = await api("POST", `/api/dead-letters/${encodeURIComponent(id)}/redrive`);
    await list.reload();
    status(`Dead letter ${done.id} re-driven: ${done.outcome}`);
  } catch (exc) {
    report(exc);
  }
}

// Users: search, create, a user's roles and store assignments.
async function users(parts) {
  const q = input("q", { type: "search", maxlength: 64, placeholder: "login or name" });
  const list = listing("Users", [
    { label: "Login", value: u => u.login }, { label: "Name", value: u => u.name },
    { label: "Active", value: u => (u.active ? "yes" : "deactivated") },
    { label: "Locked", value: u => (u.locked ? "locked" : "") },
    { label: "Signs in at", value: u => [u.console ? "console" : "", u.till ? "till" : ""].filter(Boolean).join(", ") },
    { label: "Roles", value: u => (u.roles || []).map(roleText).join(", ") +
      (u.roles_elsewhere ? ` (+${u.roles_elsewhere} out of your reach)` : ""), wrap: true },
  ], after => api("GET", query("/api/users", { q: q.value, after, limit: LIMIT })), {
    id: "users",
    cursorOf: u => u.login,
    open: u => { location.hash = `#users/${encodeURIComponent(u.login)}`; },
    before: form([field("Search", q)], "Search", () => list.reload(), { id: "user-search" }),
  });
  if (can("users.manage")) {
    const login = input("new-login", { required: true, maxlength: 64 });
    const name = input("new-name", { required: true, maxlength: 200 });
    const password = input("new-password", { type: "password", autocomplete: "new-password", maxlength: 256 });
    const pin = input("new-pin", { type: "password", inputmode: "numeric", autocomplete: "off", maxlength: 12 });
    const [role, where] = roleFields("new");
    parts.push(card("New user", form([field("Login", login), field("Name", name), field("Console password (optional)", password),
      field("Till PIN (optional)", pin), field("First role", role), field("Its region or store", where)], "Create", async () => {
      const body = { login: login.value.trim(), name: name.value.trim(), roles: [grantOf(role, where)] };
      if (password.value) body.password = password.value;
      if (pin.value) body.pin = pin.value;
      await api("POST", "/api/users", body);
      location.hash = `#users/${encodeURIComponent(body.login)}`;
    }, { id: "new-user" })));
  }
  parts.push(list);
  await list.reload();
}

const ROLES = ["tenant_admin", "regional_admin", "store_manager", "supervisor", "cashier"];

function roleFields(prefix) {
  const role = select(`${prefix}-role`, ROLES.map(r => [r, r.replace(/_/g, " ")]));
  role.value = "cashier";
  const where = input(`${prefix}-where`, { maxlength: 64, placeholder: "region (regional admin) or store" });
  return [role, where];
}

function grantOf(role, where) {
  // A tenant admin holds the whole tenant; a regional admin a region; every other role a store.
  const grant = { role: role.value };
  const at = where.value.trim();
  if (role.value === "regional_admin") grant.region = at;
  else if (role.value !== "tenant_admin") grant.store = at;
  return grant;
}

async function user(login, parts) {
  parts.push(back("#users", "← all users"));
  const u = await api("GET", `/api/users/${encodeURIComponent(login)}`);
  const path = `/api/users/${encodeURIComponent(u.login)}`;
  const roles = el("table", { id: "user-roles" });
  fill(roles, [
    { label: "Role", value: r => r.role.replace(/_/g, " ") }, { label: "Region", value: r => r.region },
    { label: "Store", value: r => r.store },
    { label: "", value: r => (can("users.manage") ? el("button", { type: "button", class: "secondary", text: "Revoke",
      "aria-label": `Revoke ${roleText(r)}`,
      onclick: () => change(`${path}/roles/revoke`, { role: r.role, region: r.region || undefined, store: r.store || undefined },
                            `revoked ${roleText(r)}`) }) : "") },
  ], u.roles || []);
  parts.push(card(`${u.name} (${u.login})`, facts([["Active", u.active ? "yes" : "deactivated"],
    ["Locked", u.locked ? "yes: unlock below" : "no"], ["Console password", u.console ? "set" : "none"],
    ["Till PIN", u.till ? "set" : "none"],
    ["Roles out of your reach", u.roles_elsewhere || 0]]), el("h3", { text: "Roles and stores" }), el("div", { class: "scroll" }, roles)));
  if (!can("users.manage")) return;
  const [role, where] = roleFields("grant");
  parts.push(card("Grant a role", form([field("Role", role), field("Region or store", where)], "Grant", () => {
    const body = grantOf(role, where);
    return change(`${path}/roles`, body, `granted ${roleText(body)}`);
  }, { id: "grant-form" })));
  const name = input("edit-name", { value: u.name, maxlength: 200 });
  const active = select("edit-active", [["true", "active"], ["false", "deactivated"]]);
  active.value = String(!!u.active);
  const password = input("edit-password", { type: "password", autocomplete: "new-password", maxlength: 256 });
  const pin = input("edit-pin", { type: "password", inputmode: "numeric", autocomplete: "off", maxlength: 12 });
  const unlock = el("input", { type: "checkbox", name: "unlock", id: "f-unlock" });
  parts.push(card("Change the user", form([field("Name", name), field("State", active), field("New password", password),
    field("New till PIN", pin), field("Unlock", unlock)], "Save", () => {
    const body = {};
    if (name.value.trim() && name.value.trim() !== u.name) body.name = name.value.trim();
    if ((active.value === "true") !== !!u.active) body.active = active.value === "true";
    if (password.value) body.password = password.value;
    if (pin.value) body.pin = pin.value;
    if (unlock.checked) body.unlock = true;
    if (!Object.keys(body).length) throw new Refused(0, "nothing to change: edit a field first");
    return change(`${path}/changes`, body, "saved");
  }, { id: "user-form" })));
}

async function change(path, body, done) {
  problem("");
  try {
    await api("POST", path, body);
    await render();
    status(`${done}.`);
  } catch (exc) {
    report(exc);
  }
}

// Audit: search the tenant's chain, and verify it.
async function audit(parts) {
  const store = input("store", { maxlength: 64, placeholder: "any" });
  const actor = input("actor", { maxlength: 64, placeholder: "any" });
  const action = input("action", { maxlength: 64, placeholder: "e.g. price.set" });
  const from = input("from", { type: "datetime-local" });
  const to = input("to", { type: "datetime-local" });
  const iso = value => (value ? new Date(value).toISOString() : "");
  if (can("audit.verify")) {
    const result = el("p", { id: "verify-result", "aria-live": "polite" });
    const button = el("button", { type: "button", id: "verify", text: "Verify the chain" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      result.className = "";
      result.textContent = "verifying…";
      try {
        const v = await api("GET", "/api/audit/verify");
        result.dataset.ok = String(!!v.ok);
        result.className = v.ok ? "ok" : "bad";
        const why = v.why ?? v.reason;
        result.textContent = v.ok
          ? `The chain is intact: ${v.length} records verified` +
            (v.checkpoint ? `, holding against the signed checkpoint at record ${v.checkpoint.length}` : "")
          : v.broken_at !== null && v.broken_at !== undefined
            ? `The chain is broken at record ${v.broken_at}: ${why}`
            : `The chain does not hold against its checkpoint: ${v.checkpoint_problem || why}`;
      } catch (exc) {
        result.textContent = "";
        report(exc);
      } finally {
        button.disabled = false;
      }
    });
    parts.push(card("Verify", el("p", { class: "note", text:
      "Recomputes every record's hash from the first; a record edited, removed or rewritten is named here." }), button, result));
  }
  const list = listing("Audit records, newest first", [
    { label: "#", value: r => r.seq }, { label: "When", value: r => when(r.at) }, { label: "Who", value: r => r.actor },
    { label: "Action", value: r => r.action }, { label: "Store", value: r => r.store }, { label: "Target", value: r => r.target },
    { label: "Details", value: r => (r.details && typeof r.details === "object" ? JSON.stringify(r.details) : r.details), wrap: true },
  ], before => api("GET", query("/api/audit", { store: store.value, actor: actor.value, action: action.value,
    from: iso(from.value), to: iso(to.value), before, limit: LIMIT })), {
    id: "audit",
    cursorOf: r => r.seq,
    before: form([field("Store", store), field("Who", actor), field("Action", action), field("From", from), field("To", to)],
      "Search", () => list.reload(), { id: "audit-search" }),
  });
  parts.push(list);
  await list.reload();
}

// Payments: the intents (store and state filters), the follow-ups a person must look at, the offline card limits;
// one intent's detail with capture, void and refund (payments.manage), each sent with an Idempotency-Key.
const INTENT_STATES = ["awaiting_payment_method", "processing", "authorized", "captured", "refunded", "cancelled", "failed"];
const intentColumns = [
  { label: "Created", value: i => when(i.created_at) }, { label: "Store", value: i => i.store },
  { label: "Till", value: i => i.till || "" }, { label: "Method", value: i => i.method },
  { label: "Amount", value: i => money(i.amount_minor, i.currency) },
  { label: "Captured", value: i => money(i.captured_minor, i.currency) },
  { label: "Refunded", value: i => money(i.refunded_minor, i.currency) },
  { label: "State", value: i => el("span", { class: i.state === "failed" ? "bad" : i.state === "captured" ? "ok" : null,
                                            text: i.pending ? `${i.state} (${i.pending})` : i.state }) },
  { label: "Card", value: i => [i.scheme, i.masked].filter(Boolean).join(" ") },
  { label: "Offline", value: i => (i.offline ? "offline approval" : "") },
  { label: "Attention", value: i => i.attention || "", wrap: true },
];
function paymentsItem(arg, parts) {
  // #payments/<intent id>, #payments/reconciliations, #payments/reconciliations/<run id>
  const [first, ...rest] = arg.split("/");
  if (first !== "reconciliations") return payment(arg, parts);
  return rest.length ? reconciliationRun(rest.join("/"), parts) : reconciliations(parts);
}
const openIntent = i => { location.hash = `#payments/${encodeURIComponent(i.id)}`; };

async function payments(parts) {
  const store = input("pay-store", { maxlength: 64, placeholder: "all" });
  const which = select("pay-state", [["", "all"], ...INTENT_STATES.map(s => [s, s.replace(/_/g, " ")])]);
  const followUps = listing("Follow-ups: payments a person must look at", intentColumns,
    after => api("GET", query("/api/payments/intents", { attention: "true", after, limit: LIMIT })),
    { id: "payment-follow-ups", open: openIntent });
  const list = listing("Payment intents, newest first", intentColumns,
    after => api("GET", query("/api/payments/intents", { store: store.value.trim(), state: which.value, after, limit: LIMIT })), {
      id: "payment-intents", open: openIntent,
      before: form([field("Store", store), field("State", which)], "Show", () => list.reload(), { id: "payments-filter" }),
    });
  parts.push(el("p", {}, el("a", { href: "#payments/reconciliations", id: "to-reconciliations",
    text: "Reconciliation with the provider's settlement reports →" })), followUps, list);
  const waits = [followUps.reload(), list.reload()];
  parts.push(await offlineLimits());
  await Promise.all(waits);
  state.refresh = () => Promise.all([followUps.refresh(), list.refresh()]);
}

async function offlineLimits() {
  // The tenant's offline card limits: what a store may accept by card while the hub is out of reach. Changing them
  // needs payments.manage across the tenant: the hub refuses anyone else with a sentence saying who may.
  const settings = await api("GET", "/api/payments/settings");
  const currency = await tenantCurrency();
  const note = el("p", { class: "note", text:
    "While a store cannot reach the hub it accepts a card only under the per-payment limit, and only while its " +
    "approvals not yet sent stay under the store total; a restart of the store does not reset them." });
  if (!can("payments.manage")) {
    return card("Offline card limits", note, facts([["Per payment", money(settings.offline_per_payment_minor, currency)],
      ["Store total", money(settings.offline_store_total_minor, currency)]]));
  }
  const perPayment = input("offline-per-payment", { inputmode: "decimal", required: true,
    value: money(settings.offline_per_payment_minor, null) });
  const storeTotal = input("offline-store-total", { inputmode: "decimal", required: true,
    value: money(settings.offline_store_total_minor, null) });
  return card("Offline card limits", note,
    form([field(`Per payment (${currency})`, perPayment), field(`Store total (${currency})`, storeTotal)], "Save limits", async () => {
      const per = parseAmount(perPayment.value, currency);
      const total = parseAmount(storeTotal.value, currency);
      if (per === null || total === null) throw new Refused(0, `write each limit as an amount, e.g. 50.00 (${currency})`);
      const saved = await api("PUT", "/api/payments/settings", { offline_per_payment_minor: per, offline_store_total_minor: total });
      status(`Offline card limits saved: ${money(saved.offline_per_payment_minor, currency)} per payment, ` +
        `${money(saved.offline_store_total_minor, currency)} per store`);
    }, { id: "offline-limits" }));
}

async function payment(id, parts) {
  parts.push(back("#payments", "← all payments"));
  const answer = await api("GET", `/api/payments/intents/${encodeURIComponent(id)}`);
  const i = answer.intent;
  const m = minor => money(minor, i.currency);
  parts.push(card(`Payment ${i.tender_id || i.id}`, facts([
    ["State", i.pending ? `${i.state}, waiting for the provider's answer to ${i.pending}` : i.state],
    ["Attention", i.attention || "none"], ["Store", i.store], ["Till", i.till || ""], ["Method", i.method],
    ["Amount", m(i.amount_minor)], ["Authorized", m(i.authorized_minor)], ["Captured", m(i.captured_minor)],
    ["Refunded", m(i.refunded_minor)], ["Card", [i.scheme, i.masked].filter(Boolean).join(" ")],
    ["Offline approval", i.offline ? "yes" : "no"], ["Capture before", when(i.capture_before)],
    ["Provider", `${i.provider || ""} ${i.provider_ref || ""}`.trim()], ["Authorization code", i.auth_code || ""],
    ["Order", i.order_id || ""], ["Created", when(i.created_at)], ["Updated", when(i.updated_at)], ["Intent id", i.id],
  ])));
  parts.push(generic("Refunds", answer.refunds, i.currency));
  if (can("payments.manage")) parts.push(paymentActions(i));
}

function paymentActions(i) {
  // Only the actions the intent's state allows are offered; the hub refuses any other with the state it is in.
  const path = action => `/api/payments/intents/${encodeURIComponent(i.id)}/${action}`;
  // One Idempotency-Key per action and body on this page: sending the same again (the answer was lost, a double
  // click) is answered with the first answer, never done twice; a corrected amount is a new request.
  const keys = new Map();
  const keyOf = (action, body) => {
    const asked = `${action} ${JSON.stringify(body)}`;
    if (!keys.has(asked)) keys.set(asked, crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`);
    return keys.get(asked);
  };
  const done = async (action, body, what) => {
    const answer = await api("POST", path(action), body, undefined, { "Idempotency-Key": keyOf(action, body) });
    await render();
    const after = answer && answer.intent ? answer.intent : answer;
    status(`${what}: the payment is ${after && after.state ? after.state : "updated"}`);
  };
  const boxes = [];
  if (i.state === "authorized") {
    const amount = input("capture-amount", { inputmode: "decimal", value: money(i.authorized_minor, null) });
    boxes.push(form([field(`Capture (${i.currency}, at most ${money(i.authorized_minor, i.currency)})`, amount)], "Capture",
      () => {
        const minor = parseAmount(amount.value, i.currency);
        if (minor === null || minor <= 0) throw new Refused(0, `write the amount to capture, e.g. ${money(i.authorized_minor, null)}`);
        return done("capture", { amount_minor: minor }, "Captured");
      }, { id: "capture-form" }));
  }
  if (i.state === "authorized" || i.state === "awaiting_payment_method") {
    const reason = input("void-reason", { required: true, maxlength: 200, placeholder: "why (required)" });
    boxes.push(form([field("Void: reason", reason)], "Void", () => {
      if (!reason.value.trim()) throw new Refused(0, "say why: a void needs a reason");
      return done("cancel", { reason: reason.value.trim() }, "Voided");
    }, { id: "void-form" }));
  }
  if (i.state === "captured") {
    const left = i.captured_minor - i.refunded_minor;
    const amount = input("refund-amount", { inputmode: "decimal", value: money(left, null) });
    const reason = input("refund-reason", { required: true, maxlength: 200, placeholder: "why (required)" });
    boxes.push(form([field(`Refund (${i.currency}, at most ${money(left, i.currency)})`, amount), field("Reason", reason)],
      "Refund", () => {
        const minor = parseAmount(amount.value, i.currency);
        if (minor === null || minor <= 0) throw new Refused(0, `write the amount to refund, e.g. ${money(left, null)}`);
        if (!reason.value.trim()) throw new Refused(0, "say why: a refund needs a reason");
        return done("refund", { amount_minor: minor, reason: reason.value.trim() }, "Refunded");
      }, { id: "refund-form" }));
  }
  if (!boxes.length) boxes.push(el("p", { class: "note", text: `Nothing can be done with a payment that is ${i.state}.` }));
  return card("Capture, void or refund", ...boxes);
}

// Reconciliation: each run held the hub's captures and refunds of a day against the provider's settlement report.
const runStatus = r => el("span", { class: r.status === "clean" ? "ok" : r.status === "running" ? null : "bad",
  text: r.status === "drift" ? `${r.items} drift item(s)` : r.status });

async function reconciliations(parts) {
  parts.push(back("#payments", "← payments"));
  const list = listing("Reconciliation runs, newest first", [
    { label: "Day", value: r => r.day }, { label: "Result", value: runStatus },
    { label: "Hub movements", value: r => r.hub_movements }, { label: "Settlement lines", value: r => r.provider_lines },
    { label: "Run", value: r => r.trigger }, { label: "By", value: r => r.actor },
    { label: "Started", value: r => when(r.started_at) }, { label: "Error", value: r => r.error || "", wrap: true },
  ], after => api("GET", query("/api/payments/reconciliations", { after, limit: LIMIT })), {
    id: "reconciliation-runs",
    open: r => { location.hash = `#payments/reconciliations/${encodeURIComponent(r.id)}`; },
  });
  if (can("payments.manage")) {
    const day = input("reconcile-day", { type: "date", required: true,
      value: new Date(Date.now() - 86400000).toISOString().slice(0, 10) });
    parts.push(card("Reconcile now", el("p", { class: "note", text:
      "Reads the provider's settlement report of the day (UTC) and compares it with the hub's captures and refunds. " +
      "The hub does this every night for the day before." }),
      form([field("Day", day)], "Reconcile", async () => {
        const run = await api("POST", "/api/payments/reconciliations", { day: day.value });
        location.hash = `#payments/reconciliations/${encodeURIComponent(run.id)}`;  // the run's page says what differed
      }, { id: "reconcile-form" })));
  }
  parts.push(list);
  await list.reload();
}

async function reconciliationRun(id, parts) {
  parts.push(back("#payments/reconciliations", "← all reconciliation runs"));
  const r = await api("GET", `/api/payments/reconciliations/${encodeURIComponent(id)}`);
  parts.push(card(`Reconciliation of ${r.day}`, facts([
    ["Result", runStatus(r)], ["Provider", r.provider], ["Hub movements", r.hub_movements],
    ["Settlement lines", r.provider_lines], ["Run", `${r.trigger} by ${r.actor}`], ["Started", when(r.started_at)],
    ["Finished", when(r.finished_at)], ["Error", r.error || "none"],
    ...(r.hidden ? [["Not shown", `${r.hidden} item(s) at stores outside your reach`]] : []),
  ])));
  const table = el("table", { id: "drift-items", "aria-label": "Drift items" });
  fill(table, [
    { label: "Kind", value: d => d.kind }, { label: "Movement", value: d => d.movement },
    { label: "Provider reference", value: d => (d.refund_ref ? `${d.provider_ref} / ${d.refund_ref}` : d.provider_ref) },
    { label: "Store", value: d => d.store || "" },
    { label: "Hub", value: d => [money(d.hub_amount_minor, d.currency), d.hub_state].filter(Boolean).join(", ") },
    { label: "Provider", value: d => [money(d.provider_amount_minor, d.currency), d.provider_state].filter(Boolean).join(", ") },
    { label: "What differs", value: d => d.message, wrap: true },
  ], r.drift, d => { if (d.intent_id) location.hash = `#payments/${encodeURIComponent(d.intent_id)}`; });
  parts.push(card(r.drift.length ? "Drift items" : "Drift items: none, the provider agrees", el("div", { class: "scroll" }, table)));
}

// ---- customers (hub/customers) -------------------------------------------------------------------------
// Search, create, the 360 (profile, points, recent orders, preferences), edit, and the data subject requests
// (export as a JSON download; erase after typing the customer's name as confirmation).
async function customers(parts) {
  const q = input("customer-q", { type: "search", maxlength: 254, placeholder: "name, phone, email or card number" });
  const list = listing("Customers, newest first", [
    { label: "Name", value: c => c.name }, { label: "Card", value: c => c.card_number },
    { label: "Phone", value: c => c.phone }, { label: "Email", value: c => c.email },
    { label: "Home store", value: c => c.home_store }, { label: "Since", value: c => when(c.created_at) },
  ], () => api("GET", query("/api/customers", { q: q.value, limit: LIMIT })), {
    id: "customers",
    open: c => { location.hash = `#customers/${encodeURIComponent(c.id)}`; },
    before: form([field("Search", q)], "Search", () => list.reload(), { id: "customers-search" }),
  });
  parts.push(list);
  if (can("customers.manage")) {
    const name = input("customer-name", { required: true, maxlength: 120 });
    const phone = input("customer-phone", { type: "tel", maxlength: 40 });
    const email = input("customer-email", { type: "email", maxlength: 254 });
    parts.push(card("New customer", form([field("Name", name), field("Phone", phone), field("Email", email)], "Create",
      async () => {
        const body = { name: name.value };
        if (phone.value.trim()) body.phone = phone.value;
        if (email.value.trim()) body.email = email.value;
        const made = await api("POST", "/api/customers", body);
        location.hash = `#customers/${encodeURIComponent(made.id)}`;
      }, { id: "customer-create" })));
  }
  await list.reload();
}

async function customer360(id, parts) {
  parts.push(back("#customers", "← all customers"));
  const path = `/api/customers/${encodeURIComponent(id)}`;
  const [v, currency] = await Promise.all([api("GET", path), tenantCurrency().catch(() => null)]);
  const c = v.customer;
  const l = v.loyalty || {};
  parts.push(card(c.erased ? "Erased customer" : c.name, facts([
    ["Card number", c.card_number], ["Phone", c.phone], ["Email", c.email], ["Birthday", c.birthday],
    ["Home store", c.home_store], ["Created", `${when(c.created_at)} by ${c.created_by}`],
    ["Erased", c.erased ? when(c.erased_at) : "no"],
  ])));
  const expiring = (l.expiring || []).map(x => `${x.points} on ${when(x.expires_at)}`).join(", ");
  parts.push(card("Loyalty", facts([
    ["Points", l.points], ["Tier", l.tier], ["Spend, last 12 months", money(l.spend_12m_minor, currency)],
    ["Next tier", l.next_tier ? `${l.next_tier.name}` : "top tier"], ["Expiring soon", expiring || "none"],
  ]), el("p", {}, el("a", { href: `#loyalty/${encodeURIComponent(c.id)}`, id: "customer-ledger",
    text: "the ledger and adjustments" }))));
  const orders = el("table", { id: "customer-orders", "aria-label": "Recent orders" });
  fill(orders, [
    { label: "At", value: o => when(o.at) }, { label: "Store", value: o => o.store_name || o.store },
    { label: "Till", value: o => o.till }, { label: "Total", value: o => money(o.total_minor, o.currency) },
  ], v.orders || [], o => { location.hash = `#orders/${encodeURIComponent(o.order)}`; });
  parts.push(card("Recent orders, all stores you may see", el("div", { class: "scroll" }, orders),
    v.orders_elsewhere ? el("p", { class: "note", text: `${v.orders_elsewhere} more at stores outside your reach` }) : null));
  parts.push(card("Preferences", facts(Object.entries(v.preferences || {}))));
  if (can("customers.manage") && !c.erased) {
    const name = input("edit-name", { value: c.name, required: true, maxlength: 120 });
    const phone = input("edit-phone", { value: c.phone || "", type: "tel", maxlength: 40 });
    const email = input("edit-email", { value: c.email || "", type: "email", maxlength: 254 });
    parts.push(card("Edit", form([field("Name", name), field("Phone", phone), field("Email", email)], "Save", async () => {
      await api("PATCH", path, { name: name.value, phone: phone.value.trim() || null, email: email.value.trim() || null });
      status("Saved.");
      await render();
    }, { id: "customer-edit" })));
  }
  if (can("customers.privacy")) {
    const download = form([], "Export everything (JSON)", async () => {
      const document_ = await api("POST", `${path}/export`, {});
      const link = el("a", { href: URL.createObjectURL(new Blob([JSON.stringify(document_, null, 2)],
        { type: "application/json" })), download: `customer-${c.id}.json`, id: "customer-export-link", text: "download" });
      $("view").append(link);
      link.click();
      status("Exported: the download holds the record, loyalty, orders, gift cards, coupons and audit records.");
    }, { id: "customer-export" });
    const confirm = input("erase-confirm", { maxlength: 120, placeholder: c.erased ? "" : c.name || "" });
    const reason = input("erase-reason", { required: true, maxlength: 200, placeholder: "the request's reference" });
    const erase = form([field("Type the customer's name to confirm", confirm), field("Reason", reason)],
      "Erase personal data", async () => {
        if (!c.erased && confirm.value.trim() !== c.name) {
          throw new Refused(0, "type the customer's name exactly to confirm the erasure");
        }
        const done = await api("POST", `${path}/erase`, { reason: reason.value });
        status(`Erased: ${done.audit_values_erased} personal values removed from the audit log.`);
        await render();
      }, { id: "customer-erase" });
    parts.push(card("Data subject requests", download, erase));
  }
}

// ---- the frame -----------------------------------------------------------------------------------------
// Loyalty: the tenant's program (earn rules, tiers, expiry, what a store may redeem offline), and one customer's
// account (#loyalty/<customer id>): points, tier, what expires soon, the ledger, and adjustments with a reason.
// Changing needs customers.manage (the program: across the tenant); the hub refuses anyone else with a sentence.
const multiplier = ppm => `×${(ppm / 1_000_000).toFixed(2).replace(/\.?0+$/, "")}`;

function tiersText(tiers) {
  return tiers.map(t => `${t.name}; ${money(t.min_spend_minor, null)}; ${(t.multiplier_ppm / 1_000_000)}`).join("\n");
}

function parseTiers(text, currency) {
  // One tier a line: "name; spend over 12 months; multiplier", e.g. "Gold; 1500.00; 1.5"
  return text.split("\n").map(line => line.trim()).filter(Boolean).map((line, index) => {
    const [name, spend, times] = line.split(";").map(part => (part || "").trim());
    const min = parseAmount(spend, currency);
    const ppm = Math.round(Number(times) * 1_000_000);
    if (!name || min === null || !Number.isFinite(ppm)) {
      throw new Refused(0, `tier line ${index + 1}: write "name; spend; multiplier", e.g. "Gold; 1500.00; 1.5"`);
    }
    return { name, min_spend_minor: min, multiplier_ppm: ppm };
  });
}

function parseBonuses(text) {
  // One bonus a line: "sku COF-250 3" or "category food/dairy 5" (points per unit sold)
  return text.split("\n").map(line => line.trim()).filter(Boolean).map((line, index) => {
    const [kind, target, points] = line.split(/\s+/);
    if (!["sku", "category"].includes(kind) || !target || !/^\d+$/.test(points || "")) {
      throw new Refused(0, `bonus line ${index + 1}: write "sku COF-250 3" or "category food/dairy 5"`);
    }
    return { [kind]: target, points_per_unit: Number(points) };
  });
}

async function loyalty(parts) {
  const p = await api("GET", "/api/loyalty/program");
  const c = p.currency;
  const find = input("loyalty-customer", { required: true, placeholder: "customer id", size: 38 });
  parts.push(card("A customer's points", form([field("Customer id", find)], "Open account", () => {
    location.hash = `#loyalty/${encodeURIComponent(find.value.trim())}`;
  }, { id: "loyalty-find" })));
  const rules = [
    ["A point is worth", money(p.point_value_minor, c)],
    ["Earn", `${p.earn_points_per_unit} point(s) per ${money(p.earn_unit_minor, c)} spent, + ${p.earn_per_order_points} per order`],
    ["Bonuses", p.earn_bonuses.map(b => `${b.sku ? "sku " + b.sku : "category " + b.category}: +${b.points_per_unit} per unit`).join("; ") || "none"],
    ["Tiers (12-month spend)", p.tiers.map(t => `${t.name} from ${money(t.min_spend_minor, c)} ${multiplier(t.multiplier_ppm)}`).join(", ")],
    ["Points expire", p.expiry_months ? `${p.expiry_months} months after they were earned (notice ${p.notice_days} days before)` : "never"],
    ["Offline, per store", `${p.offline_store_budget_points} points until it reaches the hub again`],
    ["Offline, per customer", `${p.offline_customer_cap_points} points`],
  ];
  parts.push(card("Loyalty program", facts(rules)));
  if (!can("customers.manage")) return;
  const number = (name, value) => input(name, { inputmode: "numeric", required: true, value: String(value) });
  const f = {
    value: input("point-value", { inputmode: "decimal", required: true, value: money(p.point_value_minor, null) }),
    per: number("earn-points", p.earn_points_per_unit),
    unit: input("earn-unit", { inputmode: "decimal", required: true, value: money(p.earn_unit_minor, null) }),
    order: number("earn-order", p.earn_per_order_points),
    expiry: number("expiry-months", p.expiry_months), notice: number("notice-days", p.notice_days),
    budget: number("offline-budget", p.offline_store_budget_points), cap: number("offline-cap", p.offline_customer_cap_points),
    bonuses: el("textarea", { name: "bonuses", id: "f-bonuses", rows: 3 }),
    tiers: el("textarea", { name: "tiers", id: "f-tiers", rows: 4 }),
  };
  f.bonuses.value = p.earn_bonuses.map(b => `${b.sku ? "sku " + b.sku : "category " + b.category} ${b.points_per_unit}`).join("\n");
  f.tiers.value = tiersText(p.tiers);
  const whole = (value, what) => {
    if (!/^\d+$/.test(value.trim())) throw new Refused(0, `${what}: write a whole number`);
    return Number(value.trim());
  };
  parts.push(card("Change the program", el("p", { class: "note", text:
    "Tiers: one a line, \"name; spend over 12 months; multiplier\", the first from 0.00. Bonuses: one a line, " +
    "\"sku COF-250 3\" or \"category food/dairy 5\" (points per unit sold). Saved changes apply to the next sales." }),
    form([field(`A point is worth (${c})`, f.value), field("Points earned", f.per), field(`per (${c})`, f.unit),
      field("Points per order", f.order), field("Bonuses", f.bonuses), field("Tiers", f.tiers),
      field("Expire after (months, 0 = never)", f.expiry), field("Notice (days)", f.notice),
      field("Offline budget per store (points)", f.budget), field("Offline cap per customer (points)", f.cap)],
    "Save program", async () => {
      const value = parseAmount(f.value.value, c);
      const unit = parseAmount(f.unit.value, c);
      if (value === null || unit === null) throw new Refused(0, `write amounts like 0.01 (${c})`);
      await api("PUT", "/api/loyalty/program", {
        point_value_minor: value, earn_points_per_unit: whole(f.per.value, "points earned"), earn_unit_minor: unit,
        earn_per_order_points: whole(f.order.value, "points per order"), earn_bonuses: parseBonuses(f.bonuses.value),
        tiers: parseTiers(f.tiers.value, c), expiry_months: whole(f.expiry.value, "expiry"),
        notice_days: whole(f.notice.value, "notice"), offline_store_budget_points: whole(f.budget.value, "offline budget"),
        offline_customer_cap_points: whole(f.cap.value, "offline cap"),
      });
      await render();
      status("Loyalty program saved");
    }, { id: "loyalty-program" })));
}

async function loyaltyAccount(id, parts) {
  parts.push(back("#loyalty", "← loyalty program"));
  const a = await api("GET", `/api/loyalty/accounts/${encodeURIComponent(id)}`);
  const s = a.summary;
  const next = s.next_tier ? `${s.next_tier.name} after ${money(s.next_tier.spend_to_go_minor, await tenantCurrency())} more` : "top tier";
  parts.push(card(`Loyalty account of ${a.customer}`, facts([
    ["Points", String(s.points)], ["Tier", `${s.tier} ${multiplier(s.multiplier_ppm)}`],
    ["Spend, last 12 months", money(s.spend_12m_minor, await tenantCurrency())], ["Next tier", next],
    ["Expiring soon", s.expiring.map(e => `${e.points} on ${when(e.expires_at)}`).join(", ") || "nothing"],
  ])));
  const table = el("table", { id: "loyalty-ledger", "aria-label": "Ledger" });
  fill(table, [
    { label: "When", value: e => when(e.at) }, { label: "What", value: e => e.kind.replace(/_/g, " ") },
    { label: "Points", value: e => (e.points > 0 ? `+${e.points}` : String(e.points)) },
    { label: "Balance", value: e => String(e.balance) }, { label: "Store", value: e => e.store || "" },
    { label: "Order", value: e => e.order || "" }, { label: "By", value: e => e.actor },
    { label: "Reason", value: e => e.reason || "", wrap: true },
  ], a.ledger);
  parts.push(card("Ledger (newest first)", el("div", { class: "scroll" }, table)));
  if (!can("customers.manage")) return;
  const points = input("adjust-points", { inputmode: "numeric", required: true, placeholder: "+100 or -50" });
  const why = input("adjust-reason", { required: true, maxlength: 200 });
  const adjustKeys = new Map();
  parts.push(card("Adjust points", el("p", { class: "note", text: "Added or taken with a reason; audited. " +
    "Taking more than the account holds is refused." }),
    form([field("Points", points), field("Reason", why)], "Adjust", async () => {
      const n = points.value.trim();
      if (!/^[+-]?\d+$/.test(n)) throw new Refused(0, "points: a whole number, + to add, - to take");
      // One Idempotency-Key per body on this page: a double click or a lost answer never adjusts twice.
      const body = { points: Number(n), reason: why.value.trim() };
      const asked = JSON.stringify(body);
      if (!adjustKeys.has(asked)) adjustKeys.set(asked, crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`);
      const done = await api("POST", `/api/loyalty/accounts/${encodeURIComponent(id)}/adjust`, body, undefined,
        { "Idempotency-Key": adjustKeys.get(asked) });
      await render();
      status(`Adjusted: ${done.summary.points} points now`);
    }, { id: "loyalty-adjust" })));
}

function toggleMenu(open) {
  const nav = $("nav");
  const opened = open === undefined ? !nav.classList.contains("open") : open;
  nav.classList.toggle("open", opened);
  nav.classList.toggle("collapsed", !opened);
  $("menu").setAttribute("aria-expanded", String(opened));
}

async function start() {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("menu").addEventListener("click", () => toggleMenu());
  toggleMenu(false);
  window.addEventListener("hashchange", render);
  setInterval(() => { if (state.refresh && !document.hidden) state.refresh().catch(report); }, 5000);
  try {
    signedIn(await api("GET", "/api/session"));
  } catch (exc) {
    if (exc instanceof Refused && exc.signedOut) problem("");  // a first visit: just the form
    else { signedOut(); report(exc); }
    return;
  }
  if (!location.hash || location.hash === "#") location.replace(firstSection());
  else render();
}

document.addEventListener("DOMContentLoaded", start);
