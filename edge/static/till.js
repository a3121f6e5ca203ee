/* The web till: login by PIN, the sale, tenders, returns, the drawer, reports, the lock screen.
 *
 * The page holds no business rule: every change is a request to the edge, whose answer (or its live
 * "till" event) is the till's state, drawn by render(). A refusal's sentence is shown as the edge wrote
 * it. A 401 brings the login screen back, a 423 the lock screen, and a 403 (the role may not) or a 409 that asks
 * for a manager (a close beyond the drawer's tolerance) offers a manager's PIN for that one action, then sends
 * the same request again with body.override = {login, pin}.
 * KPIs (P0-04): from a cart's first scan to its completion the page counts the cashier's taps (each scan,
 * each button) and the time, and reports them once per sale (POST /api/tills/{till}/kpis).
 */
"use strict";

const $ = (id) => document.getElementById(id);
let state = null;     /* the till's state, as last answered or published */
let currency = "EUR";

/* ---------- money: integer minor units only, never floating point ---------- */
const money = (m) => (m.minor < 0 ? "-" : "") + Math.floor(Math.abs(m.minor) / 100) + "."
  + String(Math.abs(m.minor) % 100).padStart(2, "0") + " " + m.currency;
const decimal = (minor) => Math.floor(minor / 100) + "." + String(minor % 100).padStart(2, "0");
const isMoney = (v) => v !== null && typeof v === "object" && Number.isInteger(v.minor) && typeof v.currency === "string";
/* "20", "20.5", "20,50" -> 2050 minor units, exactly; null if not an amount. */
function toMinor(text) {
  const match = /^\s*(\d{1,9})(?:[.,](\d{1,2}))?\s*$/.exec(text);
  return match ? Number(match[1]) * 100 + Number((match[2] || "0").padEnd(2, "0")) : null;
}
/* "10", "12.5" per cent -> basis points (1000, 1250), exactly: the same two decimals as an amount. */
const toBasisPoints = toMinor;
const percent = (bp) => (bp / 100).toFixed(bp % 100 ? 2 : 0) + " %";

/* A random (version 4) UUID: crypto.randomUUID exists only on https or localhost, and a till page is
   often plain http on the store network. */
function newId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const till = () => $("till").value;
const api = (path) => `/api/tills/${encodeURIComponent(till())}${path}`;
const button = (text, onclick, className) => {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = text; if (className) b.className = className; b.onclick = onclick;
  return b;
};

function say(text, ok) { $("message").textContent = text; $("message").className = ok ? "ok" : "error"; }

/* ---------- overlays: the login and lock screens and the dialogs ---------- */
const OVERLAYS = ["login", "locked", "approve", "line-edit", "order-edit", "returns", "drawer"];
const overlayOpen = () => OVERLAYS.some((id) => !$(id).hidden);
function open(id) { $(id).hidden = false; const first = $(id).querySelector("input:not([type=hidden])"); if (first) first.focus(); }
function close(id) { $(id).hidden = true; focusScan(); }
for (const id of OVERLAYS) for (const b of $(id).querySelectorAll("button.close")) b.onclick = () => close(id);

/* The scanner is a keyboard: its field has the focus whenever nothing else needs typing. */
function focusScan() {
  if (overlayOpen()) return;
  const active = document.activeElement;
  if (active && active !== $("scan") && active.matches("input, select, textarea, summary")) return;
  $("scan").focus();
}
document.addEventListener("click", () => setTimeout(focusScan, 0));
setInterval(focusScan, 1500);

/* ---------- the edge ---------- */
async function call(method, path, body) {
  let response, data;
  try {
    response = await fetch(path, {method, credentials: "same-origin", headers: {"content-type": "application/json"},
                                  body: body === undefined ? undefined : JSON.stringify(body)});
    data = await response.json();
  } catch (error) {
    return {ok: false, status: 0, error: "The till server did not answer: check the network cable or Wi-Fi and try again"};
  }
  const error = response.ok ? null : (data && data.error) || response.statusText;
  /* A PIN's own refusal (wrong, locked out) is said on its screen; anything else switches screens. */
  const pinCheck = /\/(login|unlock|whoami)$/.test(path);
  if (response.status === 401 && !pinCheck) showLogin(error);
  if (response.status === 423 && !pinCheck) showLocked(error);
  return {ok: response.ok, status: response.status, data, error};
}

/* A change to the till: one at a time, every button disabled until the answer is in, so a double tap
   cannot take cash twice. A 403 asks for a manager's PIN and sends the same request again with it. */
let busy = false;
let lastFailure = null;  /* the last change's failure {status, error}, null once one succeeds (redemptionId) */
function setBusy(value) {
  busy = value;
  for (const b of document.querySelectorAll("main button, header button")) b.disabled = value;
}
async function act(method, path, body) {
  if (busy) return null;
  setBusy(true);
  try {
    let answer = await call(method, path, body);
    if (method !== "GET" && (answer.status === 403 || (answer.status === 409 && /manager/i.test(answer.error || "")))) {
      const override = await approval(answer.error);
      if (!override) { say("Not approved: nothing was changed", false); return null; }
      answer = await call(method, path, {...(body || {}), override});
    }
    lastFailure = answer.ok ? null : {status: answer.status, error: answer.error};
    if (!answer.ok) { if (answer.status !== 401 && answer.status !== 423) say(answer.error, false); return null; }
    return answer.data;
  } finally { setBusy(false); }
}

/* ---------- PIN pads ---------- */
const pins = {login: "", unlock: "", approve: ""};
const pinDone = {login: () => logIn(), unlock: () => unlock(), approve: () => approved()};
function showPin(which) { $(`${which}-pin`).textContent = "•".repeat(pins[which].length); }
function pinKey(which, key) {
  if (key === "clear") pins[which] = "";
  else if (key === "back") pins[which] = pins[which].slice(0, -1);
  else if (key === "ok") { pinDone[which](); return; }
  else if (pins[which].length < 12) pins[which] += key;
  showPin(which);
}
for (const pad of document.querySelectorAll(".pinpad")) {
  const which = pad.dataset.for;
  for (const key of ["1", "2", "3", "4", "5", "6", "7", "8", "9", "clear", "0", "ok"]) {
    const b = button(key === "clear" ? "Clear" : key === "ok" ? "OK" : key, () => pinKey(which, key), key === "ok" ? "ok" : "");
    b.dataset.key = key;
    pad.append(b);
  }
}
/* A keyboard's digits go to the PIN pad on screen (not while a login is being typed). */
document.addEventListener("keydown", (e) => {
  const which = !$("approve").hidden ? "approve" : !$("locked").hidden ? "unlock" : !$("login").hidden ? "login" : null;
  if (!which || (document.activeElement && document.activeElement.matches("input"))) return;
  if (/^\d$/.test(e.key)) pinKey(which, e.key);
  else if (e.key === "Backspace") pinKey(which, "back");
  else if (e.key === "Enter") { e.preventDefault(); pinKey(which, "ok"); }
});
for (const [form, which] of [["login-form", "login"], ["unlock-form", "unlock"], ["approve-form", "approve"]]) {
  $(form).onsubmit = (e) => { e.preventDefault(); pinKey(which, "ok"); };
}

/* ---------- login, lock, switch ---------- */
const recentKey = "novapos.recent-logins";
function recentLogins() { try { return JSON.parse(localStorage.getItem(recentKey)) || []; } catch { return []; } }
function showLogin(why) {
  $("login-error").textContent = why && !/log in/i.test(why) ? why : "";
  $("recent").innerHTML = "";
  for (const name of recentLogins()) {
    const b = button(name, () => { $("login-name").value = name; pins.login = ""; showPin("login"); });
    b.dataset.login = name; $("recent").append(b);
  }
  $("login-title").textContent = `Log in at ${till()}`;
  $("locked").hidden = true;
  if ($("login").hidden) { pins.login = ""; showPin("login"); open("login"); }
}
async function logIn() {
  const login = $("login-name").value.trim();
  if (!login) { $("login-error").textContent = "Type your login, then your PIN"; return; }
  if (!pins.login) { $("login-error").textContent = "Type your PIN on the pad"; return; }
  const answer = await call("POST", api("/login"), {login, pin: pins.login});
  pins.login = ""; showPin("login");
  if (!answer.ok) { $("login-error").textContent = answer.error; return; }
  localStorage.setItem(recentKey, JSON.stringify([login, ...recentLogins().filter((n) => n !== login)].slice(0, 6)));
  $("login-error").textContent = "";
  close("login");
  listen();
  await refresh();
  if (!$("products").children.length && $("catalog").open) showProducts("");
  say(`Welcome, ${state && state.session ? state.session.name || state.session.cashier : login}`, true);
}
async function showLocked(why) {
  const session = state && state.session;
  let name = session ? session.name || session.cashier : null;
  if (!name) { const me = await call("GET", api("/whoami")); name = me.ok ? me.data.name || me.data.login : ""; }
  $("locked-who").textContent = name ? `${name}: type your PIN to carry on` : "Type your PIN to carry on";
  $("unlock-error").textContent = why && !/locked/i.test(why) ? why : "";
  if ($("locked").hidden) { pins.unlock = ""; showPin("unlock"); open("locked"); }
}
async function unlock() {
  const answer = await call("POST", api("/unlock"), {pin: pins.unlock});
  pins.unlock = ""; showPin("unlock");
  if (!answer.ok) { $("unlock-error").textContent = answer.error; return; }
  close("locked");
  listen();
  await refresh();
}
$("lock").onclick = async () => { const s = await act("POST", api("/lock"), {}); if (s) { showLocked(); refresh(); } };
async function switchCashier() {
  const answer = await call("POST", api("/logout"), {});
  if (!answer.ok && answer.status !== 401) { say(answer.error, false); return; }
  say("Logged out: the cart stays with this till for the next cashier", true);
  $("locked").hidden = true;
  showLogin();
}
$("switch").onclick = switchCashier;
$("locked-switch").onclick = switchCashier;

/* A manager's approval for one action: resolves {login, pin}, or null when cancelled. */
let approvalDone = null;
function approval(why) {
  $("approve-why").textContent = why || "This needs a manager's approval";
  pins.approve = ""; showPin("approve");
  open("approve");
  return new Promise((resolve) => { approvalDone = resolve; });
}
function approved() {
  const login = $("approve-login").value.trim();
  if (!login || !pins.approve) { $("approve-why").textContent = "The manager types their login and PIN"; return; }
  const override = {login, pin: pins.approve};
  pins.approve = ""; showPin("approve");
  $("approve").hidden = true;
  if (approvalDone) approvalDone(override);
  approvalDone = null;
}
$("approve").querySelector("button.close").onclick = () => {
  $("approve").hidden = true; if (approvalDone) approvalDone(null); approvalDone = null; focusScan(); };

/* ---------- KPIs: the time and taps of a sale, from its first scan ---------- */
let kpi = {cart: null, start: 0, taps: 0};
window.novaposLastKpi = null;
document.addEventListener("click", (e) => {
  const b = e.target.closest && e.target.closest("button");
  if (e.isTrusted && b && !b.dataset.scan && state && kpi.cart === state.cart) kpi.taps += 1;
}, true);
function reportKpi(cart) {
  if (kpi.cart !== cart) return;
  const figures = {cart, latency_ms: Math.max(0, Math.round(performance.now() - kpi.start)), taps: Math.max(1, kpi.taps)};
  window.novaposLastKpi = figures;
  kpi = {cart: null, start: 0, taps: 0};
  call("POST", api("/kpis"), figures);  /* best effort: the sale is done whatever the answer */
}

/* ---------- the sale ---------- */
const STAGE_TEXT = {starting: "Starting the terminal…", waiting_for_card: "Insert or tap card", insert_or_tap: "Insert or tap card", processing: "Processing…",
                    pin: "Customer is entering their PIN", remove_card: "Remove card"};
const paid = (s) => s.paid || s.tendered || {minor: 0, currency: s.total.currency};
const pending = (s) => (s.tenders || []).filter((t) => t.state === "pending");
const lineId = (line) => line.line || line.sku;
let autoComplete = null;  /* the cart to complete as soon as it is paid (the cashier tendered its last part) */

function describeLine(line) {
  const notes = [];
  if (line.override) notes.push(`price ${money(line.unit_price)}, was ${money(line.list_price)}: ${line.override.reason}`);
  for (const p of line.promotions || []) notes.push(`${p.name} -${money(p.amount)}`);
  if (line.discount) notes.push(`discount ${line.discount.kind === "percent" ? percent(line.discount.value) : money(line.discount.amount)}`
                                + ` (-${money(line.discount.amount)}): ${line.discount.reason}`);
  if (line.order_discount && line.order_discount.minor) notes.push(`order discount -${money(line.order_discount)}`);
  if (line.tax && !line.tax.included) notes.push(`+ tax ${money(line.tax.amount)}`);
  return notes;
}

function renderLines(s) {
  $("lines").innerHTML = "";
  const frozen = paid(s).minor > 0 || pending(s).length > 0;
  for (const line of s.lines) {
    const li = document.createElement("li");
    li.dataset.line = lineId(line); li.dataset.sku = line.sku;
    const name = document.createElement("span"); name.className = "name"; name.textContent = line.name;
    if (line.attributes && line.attributes.length) {
      const variant = document.createElement("span"); variant.className = "variant";
      variant.textContent = line.attributes.map(([k, v]) => `${k} ${v}`).join(" · ");
      name.append(variant);
    }
    for (const note of describeLine(line)) {
      const n = document.createElement("span"); n.className = "note"; n.textContent = note; name.append(n);
    }
    const qty = document.createElement("span"); qty.className = "qty"; qty.textContent = `${line.quantity} ×`;
    const amount = document.createElement("span"); amount.className = "amount"; amount.textContent = money(line.amount);
    const less = button("−", () => setQuantity(line, line.quantity - 1), "less");
    const more = button("+", () => setQuantity(line, line.quantity + 1), "more");
    const edit = button("⋯", () => editLine(line), "edit");
    const remove = button("×", () => removeLine(line), "remove");
    less.setAttribute("aria-label", `one less ${line.name}`); more.setAttribute("aria-label", `one more ${line.name}`);
    edit.setAttribute("aria-label", `price or discount for ${line.name}`); remove.setAttribute("aria-label", `remove ${line.name}`);
    for (const b of [less, more, edit, remove]) b.disabled = busy || frozen;
    li.append(name, less, qty, more, amount, edit, remove);
    $("lines").append(li);
  }
  const returned = s.returned || [];
  $("returned").hidden = !returned.length;
  $("returned").innerHTML = "";
  for (const r of returned) {
    const li = document.createElement("li");
    const name = document.createElement("span"); name.className = "name";
    name.textContent = `Returned: ${r.quantity} × ${r.name}` + (r.condition ? ` (${r.condition})` : "");
    const amount = document.createElement("span"); amount.className = "amount";
    amount.textContent = r.amount ? "-" + money(r.amount) : "";
    li.append(name, amount);
    $("returned").append(li);
  }
}

function renderTenders(s) {
  $("tenders").innerHTML = "";
  for (const t of s.tenders || []) {
    const li = document.createElement("li"); li.dataset.state = t.state; li.dataset.method = t.method;
    const what = t.method === "card" ? `Card${t.card ? ` ${t.card.scheme || ""} ${t.card.masked || ""}` : ""}`
      : t.method === "qr" ? `QR${t.qr && t.qr.provider_ref ? ` ${t.qr.provider_ref}` : ""}`
      : t.method === "points" ? `Points${t.points ? ` ${t.points.points}${t.points.offline ? " (offline)" : ""}` : ""}`
      : t.method === "gift_card" ? `Gift card${t.gift_card ? ` ${t.gift_card.card}` : ""}` : "Cash";
    const left = document.createElement("span"); left.textContent = `${what} · ${t.state}` + (t.message ? `: ${t.message}` : "");
    const right = document.createElement("span"); right.textContent = money(t.amount);
    li.append(left, right); $("tenders").append(li);
  }
  const waiting = pending(s).find((t) => t.method === "card");
  $("card-stage").hidden = !waiting;
  if (waiting) {
    $("card-stage").dataset.tender = waiting.id;
    $("card-stage").dataset.stage = waiting.stage || "";
    $("card-stage-text").textContent = STAGE_TEXT[waiting.stage] || waiting.message || "Follow the terminal";
  }
  renderQr(pending(s).find((t) => t.method === "qr"));
}

/* A pending QR payment: its code (an SVG the edge draws from the hub's pay URL), the amount, and Cancel. The result
   comes with the till's state (the hub's payment event, or the till asking the hub). */
function renderQr(t) {
  $("qr-stage").hidden = !t;
  if (!t) { $("qr-code").removeAttribute("src"); return; }
  const src = api(`/tenders/${encodeURIComponent(t.id)}/qr.svg`);
  if ($("qr-stage").dataset.tender !== t.id) { $("qr-code").src = src; $("qr-stage").dataset.tender = t.id; }
  $("qr-amount").textContent = money(t.amount);
  $("qr-text").textContent = t.message || "Scan the code with the phone to pay";
}

/* Exact, the next whole unit, the next notes up: what a customer usually hands over. */
function quickAmounts(due) {
  const amounts = [due];
  const whole = Math.ceil(due / 100) * 100; if (whole > due) amounts.push(whole);
  for (const note of [500, 1000, 2000, 5000, 10000, 20000]) if (note > due && amounts.length < 5) amounts.push(note);
  return [...new Set(amounts)];
}
function renderQuick(s) {
  $("quick").innerHTML = "";
  if (s.due.minor <= 0) { $("quick").hidden = true; return; }
  quickAmounts(s.due.minor).forEach((amount, i) => {
    const b = button(i === 0 ? `Exact ${decimal(amount)}` : decimal(amount), () => tender("cash", amount));
    b.dataset.amount = String(amount); if (i === 0) b.id = "exact";
    $("quick").append(b);
  });
}

/* Renders so far: a state read that was under way while something newer was rendered (the card poll answering
   after the cashier's tender) must not put the older state back on the screen. */
let renders = 0;
function render(s) {
  renders += 1;
  state = s;
  currency = s.total.currency;
  const session = s.session;
  $("who").textContent = session ? session.name || session.cashier : "";
  if (!session) showLogin();
  else if (session.locked) showLocked();
  else { $("login").hidden = true; $("locked").hidden = true; }
  showOffline();
  $("mode").hidden = s.mode !== "return";
  $("mode").textContent = s.original ? `Return of order ${s.original.order}: scan new items for an exchange`
    : "Return without a receipt: scan the items coming back";
  renderLines(s);
  renderTenders(s);
  renderPromotions(s);
  renderCustomer(s);  /* till-customer.js */
  $("sum-total").textContent = money(s.total);
  const included = s.lines.length > 0 && s.lines.every((l) => l.tax && l.tax.included);
  $("sum-tax-label").textContent = included ? "incl. tax" : "Tax";
  $("sum-tax").textContent = money(s.tax_total);
  const discount = s.order_discount;
  $("sum-discount-label").hidden = $("sum-discount").hidden = !discount;
  if (discount) $("sum-discount").textContent = `-${money(discount.amount)} (${discount.kind === "percent" ? percent(discount.value) : "amount"})`;
  $("sum-paid").textContent = money(paid(s));
  $("sum-due").textContent = money(s.due);
  $("sum-change").textContent = money(s.change);
  const waiting = pending(s).length > 0;
  const owes = s.due.minor > 0;
  for (const id of ["cash", "card", "qr"]) $(id).disabled = busy || !owes || waiting;
  if (!owes) $("quick").hidden = true;
  if (!$("quick").hidden) renderQuick(s);
  const refund = Boolean(s.refund && s.refund.minor > 0);
  $("refund").hidden = !refund;
  const toCard = s.refund_card ? s.refund_card.minor : 0;  // a split sale: the card gets what it paid, the rest cash
  if (refund) $("refund").textContent = `Refund ${money(s.refund)}` + (toCard > 0 && toCard < s.refund.minor
    ? `: ${money(s.refund_card)} to card, ${money({...s.refund, minor: s.refund.minor - toCard})} in cash`
    : (s.refund_to ? ` to ${s.refund_to === "qr" ? "the QR payment" : s.refund_to}` : ""));
  $("refund-cash").hidden = !refund || (s.refund_to !== "qr" && !(s.refund_gift_card && s.refund_gift_card.minor > 0));
  $("complete").hidden = refund || owes || waiting || (!s.lines.length && !(s.returned || []).length);
  $("cashback").hidden = paid(s).minor === 0;
  $("void").hidden = !s.lines.length && paid(s).minor === 0 && !(s.returned || []).length;
  $("drawer-owed").hidden = !s.drawer_owed;
  if (s.lines.length) $("given").hidden = true;  /* the next customer's cart: the last change was handed over */
  if (autoComplete === s.cart && !owes && !waiting && s.lines.length && paid(s).minor > 0) complete();
  if (waiting && !pendingPoll) pendingPoll = setTimeout(() => { pendingPoll = null; refresh(); }, 1000);
}
/* While a card is pending the page also asks every second: a stage published while the stream reconnects
   is not missed. */
let pendingPoll = null;

async function refresh() {
  if (!till()) return;
  const asked = renders;
  const answer = await call("GET", api(""));
  if (answer.ok && renders === asked) render(answer.data);  /* else a newer state is shown already */
}

/* A scan: a barcode, or a receipt's QR code (the order to return). */
const ORDER = /^(?:novapos:order:)?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;
async function scan(code, quantity) {
  const order = ORDER.exec(code);
  if (order) { $("order").value = order[1]; openReturns(); findOrder(); return; }
  if (state && kpi.cart !== state.cart) kpi = {cart: state.cart, start: performance.now(), taps: 0};
  kpi.taps += 1;
  /* A return without a receipt: what is scanned is coming back (POST .../returns/lines {barcode}). */
  const takingBack = state && state.mode === "return" && !state.original;
  const s = takingBack
    ? await act("POST", api("/returns/lines"), {barcode: code, quantity: quantity || 1, condition: "resaleable"})
    : await act("POST", api("/lines"), {barcode: code, quantity: quantity || 1});
  if (s) { render(s); say("", true); }
}
$("scan-form").onsubmit = async (e) => {
  e.preventDefault();
  const code = $("scan").value.trim();
  $("scan").value = "";
  if (code) await scan(code);
  focusScan();
};
$("scan-add").dataset.scan = "1";

async function setQuantity(line, quantity) {
  if (quantity < 1) { removeLine(line); return; }
  const s = await act("PATCH", api(`/lines/${encodeURIComponent(lineId(line))}`), {quantity});
  if (s) render(s);
}
async function removeLine(line) {
  const s = await act("DELETE", api(`/lines/${encodeURIComponent(lineId(line))}`));
  if (s) { render(s); say(`Removed ${line.name}`, true); }
}

/* Price override and discounts: the edge decides who may; a cashier is asked for a manager's PIN. */
let editing = null;
function editLine(line) {
  editing = line;
  $("line-title").textContent = `${line.quantity} × ${line.name} · ${money(line.amount)}`;
  for (const id of ["price", "price-reason", "line-value", "line-reason"]) $(id).value = "";
  open("line-edit");
}
function discountBody(kind, value, reason) {
  const parsed = kind === "percent" ? toBasisPoints(value) : toMinor(value);
  if (parsed === null) { say(kind === "percent" ? "Type the discount in per cent, e.g. 10 or 12.5" : "Type the discount as an amount, e.g. 1.50", false); return null; }
  return {kind, value: parsed, reason: reason.trim()};
}
$("price-set").onclick = async () => {
  const unit = toMinor($("price").value);
  if (unit === null) { say("Type the new unit price, e.g. 3.50", false); return; }
  const s = await act("POST", api(`/lines/${encodeURIComponent(lineId(editing))}/price`), {unit_minor: unit, reason: $("price-reason").value.trim()});
  if (s) { render(s); close("line-edit"); say(`Price of ${editing.name} set to ${decimal(unit)}`, true); }
};
$("line-discount-set").onclick = async () => {
  const body = discountBody($("line-kind").value, $("line-value").value, $("line-reason").value);
  if (!body) return;
  const s = await act("POST", api(`/lines/${encodeURIComponent(lineId(editing))}/discount`), body);
  if (s) { render(s); close("line-edit"); say(`Discount on ${editing.name}`, true); }
};
$("line-discount-remove").onclick = async () => {
  const s = await act("DELETE", api(`/lines/${encodeURIComponent(lineId(editing))}/discount`));
  if (s) { render(s); close("line-edit"); }
};
$("order-discount").onclick = () => { $("order-value").value = ""; $("order-reason").value = ""; open("order-edit"); };
$("order-discount-set").onclick = async () => {
  const body = discountBody($("order-kind").value, $("order-value").value, $("order-reason").value);
  if (!body) return;
  const s = await act("POST", api("/discount"), body);
  if (s) { render(s); close("order-edit"); say("Order discount applied", true); }
};
$("order-discount-remove").onclick = async () => {
  const s = await act("DELETE", api("/discount"));
  if (s) { render(s); close("order-edit"); }
};

/* ---------- promotions and coupons ---------- */
/* Each line's notes say what each promotion took off it; this lists the promotions applied with their
   explanation, the coupons on the sale (and whether their promotion applies yet), and "You saved". */
function renderPromotions(s) {
  const applied = s.promotions || [], coupons = s.coupons || [];
  const saved = s.saved && s.saved.minor > 0 ? s.saved : null;
  $("sum-saved-label").hidden = $("sum-saved").hidden = !saved;
  if (saved) $("sum-saved").textContent = money(saved);
  $("promotions").hidden = !applied.length;
  $("promotions").innerHTML = "";
  for (const p of applied) {
    const li = document.createElement("li");
    const name = document.createElement("span"); name.className = "name"; name.textContent = p.name;
    const why = document.createElement("span"); why.className = "note"; why.textContent = p.explanation; name.append(why);
    const amount = document.createElement("span"); amount.className = "amount"; amount.textContent = `-${money(p.amount)}`;
    li.append(name, amount);
    $("promotions").append(li);
  }
  $("coupons").innerHTML = "";
  const frozen = paid(s).minor > 0 || pending(s).length > 0;
  for (const c of coupons) {
    const li = document.createElement("li");
    li.dataset.code = c.code;
    const name = document.createElement("span"); name.className = "name";
    name.textContent = `Coupon ${c.code}` + (c.applied ? "" : ": not applied (its conditions are not met yet)")
      + (c.offline ? " · offline" : "");
    const remove = button("×", () => removeCoupon(c.code), "remove");
    remove.setAttribute("aria-label", `take coupon ${c.code} off`);
    remove.disabled = busy || frozen;
    li.append(name, remove);
    $("coupons").append(li);
  }
  $("coupon-form").hidden = s.mode === "return" || frozen;
}
$("coupon-form").onsubmit = async (e) => {
  e.preventDefault();
  const code = $("coupon").value.trim();
  if (!code) { say("Type or scan the coupon code first", false); return; }
  const s = await act("POST", api("/coupons"), {code});
  if (s) {
    render(s); $("coupon").value = "";
    const held = (s.coupons || []).find((c) => c.code === code.toUpperCase());
    say(held && held.applied ? `Coupon ${held.code} applied` : `Coupon ${code} added: its promotion applies once its conditions are met`, true);
  }
};
async function removeCoupon(code) {
  const s = await act("DELETE", api(`/coupons/${encodeURIComponent(code)}`));
  if (s) { render(s); say(`Coupon ${code} taken off`, true); }
}

/* ---------- tenders ---------- */
function typedAmount() {
  const text = $("amount").value.trim();
  if (!text) return state ? state.due.minor : null;
  const amount = toMinor(text);
  if (amount === null) say("Type the amount as e.g. 20.00, or leave it empty for all that remains", false);
  return amount;
}
async function tender(method, amount) {
  if (!state || amount === null) return;
  const cart = state.cart;
  const id = method === "points" ? redemptionId(method, amount, "") : newId();
  const s = await act("POST", api("/tenders"), {method, amount_minor: amount, id});
  if (method === "points") redemptionAnswered(method, amount, "", id, s !== null);
  if (!s) return;
  $("amount").value = ""; $("quick").hidden = true;
  autoComplete = cart;
  render(s);
  if (method === "cash") say(s.due.minor ? `Cash taken: ${money(s.due)} still to pay` : `Change ${money(s.change)}`, true);
}
$("cash").onclick = () => {
  if ($("amount").value.trim()) { tender("cash", typedAmount()); return; }
  $("quick").hidden = !$("quick").hidden;
  if (!$("quick").hidden && state) renderQuick(state);
};
$("card").onclick = () => tender("card", typedAmount());
$("refund-cash").onclick = async () => {
  const s = await act("POST", api("/returns/refund-in-cash"), {});
  if (s) { render(s); say("The refund goes back in cash", true); }
};
$("qr").onclick = async () => {
  const amount = typedAmount();
  if (!state || amount === null) return;
  const cart = state.cart;
  const s = await act("POST", api("/tenders"), {method: "qr", amount_minor: amount, id: newId()});
  if (!s) return;
  $("amount").value = ""; $("quick").hidden = true;
  autoComplete = cart;
  render(s);
  say("Show the QR code to the customer", true);
};
$("qr-cancel").onclick = async () => {
  const id = $("qr-stage").dataset.tender;
  const s = await act("POST", api(`/tenders/${encodeURIComponent(id)}/cancel`), {});
  if (s) { render(s); say("QR payment cancelled", true); }
};
$("card-cancel").onclick = async () => {
  const id = $("card-stage").dataset.tender;
  const s = await act("POST", api(`/tenders/${encodeURIComponent(id)}/cancel`), {});
  if (s) { render(s); say("Card payment cancelled", true); }
};
$("cashback").onclick = async () => {
  const given = state ? money(paid(state)) : "";
  const s = await act("DELETE", api("/tenders"));
  if (s) { autoComplete = null; render(s); say(`Give ${given} back to the customer`, true); }
};
/* Void needs a second tap within 3 s: no blocking confirm() on a till. */
let voidArmed = 0;
$("void").onclick = async () => {
  if (Date.now() - voidArmed > 3000) { voidArmed = Date.now(); $("void").textContent = "Tap again to void";
    setTimeout(() => { $("void").textContent = "Void"; }, 3000); return; }
  voidArmed = 0; $("void").textContent = "Void";
  const s = await act("DELETE", api("/cart"), {});
  if (s) { autoComplete = null; render(s); say("Cart voided: nothing was sold", true); }
};

let completing = false;
async function complete() {
  if (completing || !state) return;
  completing = true;
  try {
    const cart = state.cart;
    const r = await act("POST", api("/complete"), {cart});
    autoComplete = null;
    if (!r) { refresh(); return; }
    reportKpi(r.cart || cart);
    const sum = (items) => ({minor: (items || []).reduce((total, t) => total + t.amount.minor, 0), currency: r.change.currency});
    const refunded = sum(r.refunds);
    const kind = r.refunds ? "Return" : "Sale";
    say(`${kind} ${r.seq || ""} complete. Change ${money(r.change)}`, true);
    $("given").textContent = refunded.minor
      ? `${kind} ${r.seq || ""}: refund ${money(refunded)} (${r.refunds.map((t) => t.method).join(" and ")})`
      : `${kind} ${r.seq || ""}: paid ${money(sum(r.tenders))}, change to give ${money(r.change)}`;
    $("given").textContent += loyaltyNote(r);  /* till-customer.js */
    $("given").hidden = false;
    await refresh();
  } finally { completing = false; }
}
$("complete").onclick = complete;
$("refund").onclick = complete;
$("drawer-owed").onclick = async () => {
  const s = await act("POST", api("/drawer"), {sale: state.drawer_owed});
  if (s) { render(s); say("Drawer opened for the last sale (recorded)", true); }
};
$("reprint").onclick = async () => {
  const r = await act("POST", api("/receipts/last/print"), {});
  if (r) say("The last receipt is printing again (marked as a copy)", true);
};

/* ---------- returns and exchanges ---------- */
function openReturns() { $("original").innerHTML = ""; $("return-start").hidden = true; open("returns"); }
$("open-returns").onclick = () => { $("order").value = ""; openReturns(); };
let original = null;
async function findOrder() {
  const order = (ORDER.exec($("order").value.trim()) || [null, $("order").value.trim()])[1];
  if (!order) { say("Scan the receipt's QR code or type the order number", false); return; }
  const answer = await call("GET", api(`/returns/lookup?order=${encodeURIComponent(order)}`));
  $("original").innerHTML = "";
  if (!answer.ok) { $("original").textContent = answer.error; $("original").className = "error"; return; }
  $("original").className = "";
  original = answer.data;
  const table = document.createElement("table");
  for (const line of original.lines || []) {
    const row = table.insertRow();
    const left = line.returnable !== undefined ? line.returnable : line.quantity;
    row.dataset.line = line.line_no;
    const amount = isMoney(line.amount) ? line.amount : {minor: line.amount, currency: original.currency || currency};
    row.insertCell().textContent = `${line.quantity} × ${line.name}` + (Number.isInteger(amount.minor) ? ` · ${money(amount)}` : "");
    row.insertCell().textContent = `returnable ${left}`;
    const qty = document.createElement("input"); qty.type = "number"; qty.min = "0"; qty.max = String(left); qty.value = "0";
    qty.className = "return-qty"; qty.setAttribute("aria-label", `quantity of ${line.name} to return`);
    row.insertCell().append(qty);
    const condition = document.createElement("select"); condition.className = "return-condition";
    condition.setAttribute("aria-label", "condition");
    for (const c of ["resaleable", "damaged"]) condition.add(new Option(c, c));
    row.insertCell().append(condition);
  }
  $("original").append(table);
  $("return-start").hidden = false;
}
$("order-find").onclick = (e) => { e.preventDefault(); findOrder(); };
$("returns-form").onsubmit = (e) => { e.preventDefault(); findOrder(); };
$("return-start").onclick = async () => {
  const picked = [...$("original").querySelectorAll("tr")].map((row) => ({
    original_line: Number(row.dataset.line), quantity: Number(row.querySelector(".return-qty").value),
    condition: row.querySelector(".return-condition").value})).filter((p) => p.quantity > 0);
  if (!picked.length) { say("Choose how many of which line come back", false); return; }
  let s = await act("POST", api("/returns"), {order: original.order || $("order").value.trim()});
  for (const line of picked) if (s) s = await act("POST", api("/returns/lines"), line);
  if (s) { render(s); close("returns"); say("Return started: scan any new items for an exchange, then settle", true); }
};
$("no-receipt").onclick = async () => {
  const reason = $("order").value.trim();
  if (!reason) { say("Type why there is no receipt in the order field (e.g. gift, lost), then tap No receipt", false); return; }
  const s = await act("POST", api("/returns"), {no_receipt: true, reason});
  if (s) { render(s); close("returns"); say("Return without a receipt started", true); }
};

/* ---------- the cash drawer: float, moves, no-sale, X report, blind close, Z report ---------- */
const DENOMINATIONS = [50000, 20000, 10000, 5000, 2000, 1000, 500, 200, 100, 50, 20, 10, 5, 2, 1];
let denominations = DENOMINATIONS;
let drawerSession = null;
function renderCount(title) {
  $("count").innerHTML = "";
  $("drawer-info").textContent = title;
  for (const denom of denominations) {
    const label = document.createElement("label");
    const name = document.createElement("span"); name.textContent = decimal(denom);
    const input = document.createElement("input"); input.type = "number"; input.min = "0"; input.value = "0";
    input.inputMode = "numeric"; input.dataset.denom = String(denom); input.setAttribute("aria-label", `count of ${decimal(denom)}`);
    input.oninput = countTotal;
    label.append(name, input); $("count").append(label);
  }
  countTotal();
}
function counted() {
  const counts = {};
  for (const input of $("count").querySelectorAll("input")) {
    const n = Number(input.value);
    if (input.value.trim() !== "" && n !== 0) counts[input.dataset.denom] = Number.isInteger(n) ? n : input.value;
  }
  return counts;
}
function countTotal() {
  const total = Object.entries(counted()).reduce((sum, [d, n]) => sum + Number(d) * (Number.isInteger(n) ? n : 0), 0);
  $("count-total").textContent = `Counted ${money({minor: total, currency})}`;
}
function reportTable(figures) {
  const table = document.createElement("table");
  const add = (label, value) => {
    if (value === null || value === undefined) return;
    if (isMoney(value)) { const r = table.insertRow(); r.insertCell().textContent = label; r.insertCell().textContent = money(value); return; }
    if (Array.isArray(value)) { value.forEach((v, i) => add(`${label} ${i + 1}`, v)); return; }
    if (typeof value === "object") { for (const [k, v] of Object.entries(value)) add(`${label} ${k.replaceAll("_", " ")}`.trim(), v); return; }
    const key = label.split(" ").pop();
    let shown = String(value);
    if (Number.isInteger(value) && (key === "difference" || key.endsWith("minor"))) shown = money({minor: value, currency});
    else if (Number.isInteger(value) && label.endsWith(" at") && value > 1e12) shown = new Date(value).toLocaleString();
    else if (Number.isInteger(value) && key === "ppm") shown = `${value / 10000} %`;
    const r = table.insertRow(); r.insertCell().textContent = label; r.insertCell().textContent = shown;
  };
  add("", figures);
  return table;
}
function showReport(title, figures, printable) {
  $("drawer-title").textContent = title;
  $("report").innerHTML = ""; $("report").append(reportTable(figures));
  $("report-print").hidden = !printable;
  $("count").innerHTML = ""; $("count-total").textContent = "";
  $("drawer-open-actions").hidden = true; $("close-actions").hidden = true;
}
async function openDrawerPanel() {
  $("report").innerHTML = ""; $("report-print").hidden = true; $("close-actions").hidden = true;
  const answer = await call("GET", api("/drawer-session"));
  if (!answer.ok && answer.status !== 404) { say(answer.error, false); return; }
  const data = answer.ok ? answer.data : null;
  drawerSession = data ? data.drawer_session || null : null;
  if (!drawerSession && state && state.drawer_session) drawerSession = state.drawer_session;
  const isOpen = Boolean(drawerSession && drawerSession.id && !drawerSession.closed_at);
  $("drawer-title").textContent = isOpen ? "Cash drawer: open" : "Cash drawer: open a session";
  $("drawer-open-actions").hidden = isOpen;
  $("drawer-moves").hidden = !isOpen;
  if (isOpen) { $("count").innerHTML = ""; $("count-total").textContent = "";
    $("drawer-info").textContent = `Opened by ${drawerSession.opened_by || drawerSession.cashier || "?"}`
      + (drawerSession.opened_at ? ` at ${new Date(drawerSession.opened_at).toLocaleTimeString()}` : ""); }
  else renderCount("Count the float, note by note and coin by coin");
  open("drawer");
}
$("open-drawer").onclick = openDrawerPanel;
$("drawer-open").onclick = async () => {
  const r = await act("POST", api("/drawer-session"), {float: counted()});
  if (r) { say("Drawer session open", true); await refresh(); close("drawer"); }
};
$("move").onclick = async () => {
  const amount = toMinor($("move-amount").value);
  if (amount === null) { say("Type the amount, e.g. 20.00", false); return; }
  const kind = $("move-kind").value;
  const r = await act("POST", api("/drawer-session/moves"), {kind, amount_minor: amount, reason: $("move-reason").value.trim()});
  if (r) { say(`${$("move-kind").selectedOptions[0].text} of ${decimal(amount)} recorded`, true); $("move-amount").value = ""; $("move-reason").value = ""; }
};
$("no-sale").onclick = async () => {
  const r = await act("POST", api("/drawer-session/no-sale"), {});
  if (r) say("Drawer opened (no sale, recorded)", true);
};
$("x-report").onclick = async () => {
  const answer = await call("GET", api("/drawer-session/x-report"));
  if (!answer.ok) { say(answer.error, false); return; }
  showReport("X report (the shift so far)", answer.data, true);
};
$("report-print").onclick = async () => {
  const r = await act("POST", api("/drawer-session/x-report/print"), {});
  if (r) say("X report printing", true);
};
$("drawer-close").onclick = () => {
  $("drawer-moves").hidden = true; $("report").innerHTML = ""; $("report-print").hidden = true;
  renderCount("Blind count: count every note and coin; the till compares once you close");
  $("drawer-title").textContent = "Close the drawer";
  $("close-actions").hidden = false;
};
$("close-submit").onclick = async () => {
  const z = await act("POST", api("/drawer-session/close"), {counted: counted()});
  if (z) { showReport("Z report", z, false); say("Drawer closed: the Z report is printing", true); refresh(); }
};

/* ---------- products (items without a barcode to scan) ---------- */
async function showProducts(q) {
  const answer = await call("GET", "/api/products?limit=24" + (q ? "&q=" + encodeURIComponent(q) : ""));
  $("products").innerHTML = "";
  for (const p of answer.ok ? answer.data.products : []) {
    const b = button(`${p.name} · ${money(p.price)}`, () => scan(p.barcode || p.sku));
    b.dataset.barcode = p.barcode || p.sku;
    $("products").append(b);
  }
}
$("search").oninput = () => showProducts($("search").value.trim());
$("catalog").ontoggle = () => { if ($("catalog").open && !$("products").children.length) showProducts(""); };

/* ---------- live status: devices and the hub ---------- */
const devices = new Map();
const DEVICE_TEXT = {ready: "ready", down: "unplugged", offline: "offline", paper_out: "out of paper", error: "needs attention",
                     paper_near_end: "paper low", starting: "starting", open: "open", closed: "closed"};
function renderDevices() {
  $("devices").innerHTML = "";
  for (const d of devices.values()) {
    const chip = document.createElement("span");
    chip.className = "device"; chip.dataset.state = d.state; chip.dataset.device = d.device; chip.title = d.detail || "";
    chip.textContent = `${d.device} · ${DEVICE_TEXT[d.state] || d.state}` + (d.state === "error" && d.detail ? `: ${d.detail}` : "");
    $("devices").append(chip);
  }
}
let hubOffline = false;
function showOffline() { $("offline").hidden = !(hubOffline || (state && state.session && state.session.offline)); }
async function checkHub() {
  const answer = await call("GET", "/healthz");
  const data = answer.data || {};
  hubOffline = !answer.ok || data.hub_link !== "connected";
  $("hub").dataset.state = hubOffline ? "offline" : "connected";
  $("hub").textContent = !answer.status ? "Till server · not answering"
    : answer.status === 503 ? "Store server · failing" : hubOffline ? "Hub · offline" : "Hub · connected";
  showOffline();
}
/* The stream needs a login like every /api/ route: refused before one, it is opened again after one (an
   EventSource refused by the server does not retry by itself). */
let live = null;
function listen() {
  if (live && live.readyState !== EventSource.CLOSED) return;
  live = new EventSource("/api/events");
  live.onopen = refresh;  /* on every (re)connect: the stream starts afresh, so does the page */
  live.onerror = () => { if (live.readyState === EventSource.CLOSED) setTimeout(listen, 3000); };
  live.addEventListener("device", (e) => { const d = JSON.parse(e.data); devices.set(d.device, d); renderDevices(); });
  live.addEventListener("till", (e) => { const t = JSON.parse(e.data); if (t.till === till()) render(t.state); });
  live.addEventListener("till_message", (e) => { const m = JSON.parse(e.data); if (m.till === till()) say(m.error, false); });
}

/* ---------- start ---------- */
$("till").onchange = () => { localStorage.setItem("novapos.till", till()); $("given").hidden = true; refresh(); };
(async () => {
  const answer = await call("GET", "/api/store");
  if (!answer.ok) { say(answer.error, false); return; }
  const store = answer.data;
  $("title").textContent = `NovaPOS · ${store.store}`;
  currency = store.currency || currency;
  if (Array.isArray(store.denominations) && store.denominations.length) denominations = [...store.denominations].sort((a, b) => b - a);
  for (const t of store.tills) $("till").add(new Option(t, t));
  const wanted = new URLSearchParams(location.search).get("till") || localStorage.getItem("novapos.till");
  if (store.tills.includes(wanted)) $("till").value = wanted;
  $("till").hidden = store.tills.length < 2;
  listen();
  await refresh();
  checkHub();
  setInterval(checkHub, 3000);
  focusScan();
})();
