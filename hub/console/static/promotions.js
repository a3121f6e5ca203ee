// The console's Promotions tab (hub.promotions): list, draft, simulate (the predicted cost), submit, approve or
// reject (a second person), schedule and end a promotion; the tenant's settings; replay validation's diffs.
// It uses console.js's helpers (el, card, form, listing, api...) and adds itself to its SECTIONS (its menu link is
// in console.html), so console.js itself does not change for it. Every refusal is the hub's: the page offers what the state allows.
"use strict";

const PROMOTION_STATES = ["draft", "pending", "live", "ended"];
const PROMOTION_KINDS = [["percent", "percent off"], ["amount", "amount off"], ["fixed_price", "fixed unit price"],
  ["buy_x_get_y", "buy X get Y"]];

function basisPoints(text) {
  // "12.5" (percent) -> 1250 basis points, in integer arithmetic; null when it is not a percentage.
  const match = /^\s*(\d{1,3})(?:[.,](\d{1,2}))?\s*$/.exec(text);
  if (!match) return null;
  const points = Number(match[1]) * 100 + Number((match[2] || "").padEnd(2, "0"));
  return points >= 1 && points <= 10000 ? points : null;
}

const percentText = points => `${Math.floor(points / 100)}${points % 100 ? `.${String(points % 100).padStart(2, "0")}`.replace(/0$/, "") : ""} %`;
const listOf = text => text.split(",").map(part => part.trim()).filter(Boolean);
const scopeText = p => [...(p.regions || []).map(r => `region ${r}`), ...(p.stores || []).map(s => `store ${s}`)].join(", ") || "whole tenant";
const moment = ms => (ms === null || ms === undefined ? "open" : when(new Date(ms).toISOString()));

function promotionTerms(p, currency) {
  const target = [...(p.target.skus || []), ...(p.target.categories || []).map(c => `${c}/…`)].join(", ") || "every item";
  const terms = {
    percent: () => `${percentText(p.value)} off`,
    amount: () => `${money(p.value, currency)} off`,
    fixed_price: () => `${money(p.value, currency)} each`,
    buy_x_get_y: () => `buy ${p.buy} get ${p.get} ${p.reward_bp === 10000 ? "free" : `at ${percentText(p.reward_bp)} off`}`,
    bundle: () => `bundle for ${money(p.value, currency)}`,
  }[p.kind]();
  return `${terms}${p.applies_to === "order" ? " the order" : ""} on ${target}`;
}

async function promotions(parts) {
  const currency = await tenantCurrency();
  const which = select("promotion-state", [["", "all"], ...PROMOTION_STATES.map(s => [s, s])]);
  const list = listing("Promotions", [
    { label: "Name", value: p => p.name },
    { label: "State", value: p => el("span", { class: p.state === "live" ? "ok" : p.state === "pending" ? "bad" : null,
      text: p.state === "draft" && p.live_revision ? `draft (revision ${p.live_revision} live)` : p.state }) },
    { label: "Revision", value: p => p.revision },
    { label: "Scope", value: p => scopeText(p), wrap: true },
    { label: "By", value: p => p.created_by },
    { label: "Updated", value: p => when(p.updated_at) },
  ], after => api("GET", query("/api/promotions", { state: which.value, after, limit: LIMIT })), {
    id: "promotions",
    open: p => { location.hash = `#promotions/${encodeURIComponent(p.id)}`; },
    before: form([field("State", which)], "Show", () => list.reload(), { id: "promotions-filter" }),
  });
  parts.push(list);
  if (can("promotions.manage")) parts.push(newPromotion(currency));
  parts.push(await promotionSettings(currency));
  const diffs = listing("Replay validation: sales whose promotions the hub computed differently", [
    { label: "Sold", value: d => when(d.sold_at) }, { label: "Store", value: d => d.store },
    { label: "Catalog version", value: d => d.diff.promotions_version },
    { label: "Lines", value: d => d.diff.lines.map(l => `${l.sku}: till ${l.till.map(x => `${x.amount}`).join("+") || "none"}, ` +
      `hub ${l.hub.map(x => `${x.amount}`).join("+") || "none"}`).join("; "), wrap: true },
    { label: "Sale", value: d => d.event_id },
  ], after => api("GET", query("/api/promotion-diffs", { after, limit: LIMIT })), { id: "promotion-diffs" });
  parts.push(diffs);
  await Promise.all([list.reload(), diffs.reload()]);
  state.refresh = () => Promise.all([list.refresh(), diffs.refresh()]);
}

function promotionFields(currency, p) {
  // The fields of a draft (new, or an edit of `p`): what the hub's engine takes, in a person's units.
  const kind = select("promotion-kind", PROMOTION_KINDS);
  const value = input("promotion-value", { inputmode: "decimal", placeholder: "10 (%), or 1.50" });
  const applies = select("promotion-applies", [["items", "each matching item"], ["order", "the order"]]);
  const skus = input("promotion-skus", { maxlength: 2000, placeholder: "SKUs, comma separated" });
  const categories = input("promotion-categories", { maxlength: 2000, placeholder: "food/coffee, …" });
  const buy = input("promotion-buy", { inputmode: "numeric", placeholder: "2" });
  const get = input("promotion-get", { inputmode: "numeric", placeholder: "1" });
  const reward = input("promotion-reward", { inputmode: "decimal", value: "100", placeholder: "100 (%: free)" });
  const regions = input("promotion-regions", { maxlength: 2000, placeholder: "all" });
  const stores = input("promotion-stores", { maxlength: 2000, placeholder: "all" });
  const stacking = select("promotion-stacking", [["combinable", "combinable"], ["best", "best for the customer"],
    ["exclusive", "exclusive"]]);
  const priority = input("promotion-priority", { inputmode: "numeric", value: "0" });
  const name = input("promotion-name", { required: true, maxlength: 120 });
  if (p) {
    name.value = p.name; kind.value = p.kind; applies.value = p.applies_to; stacking.value = p.stacking;
    value.value = p.kind === "percent" ? percentText(p.value).replace(" %", "") : p.kind === "buy_x_get_y" ? "" : money(p.value, null);
    skus.value = p.target.skus.join(", "); categories.value = p.target.categories.join(", ");
    buy.value = p.buy || ""; get.value = p.get || ""; reward.value = p.reward_bp ? percentText(p.reward_bp).replace(" %", "") : "100";
    regions.value = p.regions.join(", "); stores.value = p.stores.join(", "); priority.value = String(p.priority);
  }
  const fields = [field("Name", name), field("Kind", kind), field(`Value (% or ${currency})`, value),
    field("Applies to", applies), field("SKUs", skus), field("Categories", categories), field("Buy", buy),
    field("Get", get), field("Reward (% off)", reward), field("Regions", regions), field("Stores", stores),
    field("Stacking", stacking), field("Priority", priority)];
  const body = () => {
    const wire = { name: name.value.trim(), kind: kind.value, applies_to: applies.value, stacking: stacking.value,
      target: { skus: listOf(skus.value), categories: listOf(categories.value) },
      regions: listOf(regions.value), stores: listOf(stores.value), priority: Number(priority.value || "0") };
    if (kind.value === "buy_x_get_y") {
      Object.assign(wire, { value: 0, buy: Number(buy.value), get: Number(get.value), reward_bp: basisPoints(reward.value) });
      if (wire.reward_bp === null) throw new Refused(0, "write the reward as a percentage off, e.g. 100 (free) or 50");
    } else if (kind.value === "percent") {
      wire.value = basisPoints(value.value);
      if (wire.value === null) throw new Refused(0, "write the percentage off, e.g. 10 or 12.5");
    } else {
      wire.value = parseAmount(value.value, currency);
      if (wire.value === null) throw new Refused(0, `write the amount, e.g. 1.50 (${currency})`);
    }
    return wire;
  };
  return { fields, body };
}

function newPromotion(currency) {
  const { fields, body } = promotionFields(currency, null);
  return card("New promotion (a draft: nothing reaches the stores until it is submitted, and approved if it costs much)",
    form(fields, "Create draft", async () => {
      const made = await api("POST", "/api/promotions", body());
      location.hash = `#promotions/${encodeURIComponent(made.id)}`;  // its page: simulate it to see what it costs
    }, { id: "promotion-new" }));
}

async function promotionSettings(currency) {
  const s = await api("GET", "/api/promotions/settings");
  const note = el("p", { class: "note", text: "A promotion whose simulated cost passes the threshold goes live only " +
    "once a second person with promotions.manage approves it. Days and hours of promotions are local to the time zone." });
  const threshold = input("promotion-threshold", { inputmode: "decimal", value: money(s.approval_threshold_minor, null) });
  const zone = input("promotion-timezone", { maxlength: 64, value: s.timezone });
  const days = input("promotion-days", { inputmode: "numeric", value: String(s.simulation_days) });
  if (!can("promotions.manage")) {
    return card("Promotion settings", note, facts([["Approval threshold", money(s.approval_threshold_minor, currency)],
      ["Time zone", s.timezone], ["Simulated days", s.simulation_days]]));
  }
  return card("Promotion settings", note, form([field(`Approval threshold (${currency})`, threshold),
    field("Time zone", zone), field("Days of sales simulated", days)], "Save settings", async () => {
    const minor = parseAmount(threshold.value, currency);
    if (minor === null) throw new Refused(0, `write the threshold as an amount, e.g. 500.00 (${currency})`);
    const saved = await api("PUT", "/api/promotions/settings", { approval_threshold_minor: minor,
      timezone: zone.value.trim(), simulation_days: Number(days.value) });
    status(`Promotion settings saved: approval above ${money(saved.approval_threshold_minor, currency)}, ` +
      `${saved.timezone}, ${saved.simulation_days} days simulated`);
  }, { id: "promotion-settings" }));
}

function simulationCard(sim, currency) {
  if (!sim) return card("Predicted cost", el("p", { class: "note", id: "promotion-simulation", text: "not simulated yet" }));
  const perStore = el("table", { id: "promotion-per-store", "aria-label": "Per store" });
  fill(perStore, [{ label: "Store", value: r => r[0] }, { label: "Cost", value: r => money(r[1].cost_minor, currency) },
    { label: "Sales", value: r => r[1].sales }, { label: "Touched", value: r => r[1].sales_touched }],
  Object.entries(sim.per_store || {}));
  return card("Predicted cost", el("div", { id: "promotion-simulation" }, facts([
    ["Cost", money(sim.cost_minor, currency)], ["Over", `the last ${sim.days} days (${sim.sales} sales)`],
    ["Sales touched", sim.sales_touched], ["Approval threshold", money(sim.threshold_minor, currency)],
    ["Needs a second person's approval", sim.needs_approval ? "yes" : "no"],
    ["Revision", sim.revision], ["Simulated by", `${sim.by}, ${when(sim.at)}`]])),
  el("div", { class: "scroll" }, perStore));
}

async function promotion(id, parts) {
  const currency = await tenantCurrency();
  parts.push(back("#promotions", "← all promotions"));
  const p = await api("GET", `/api/promotions/${encodeURIComponent(id)}`);
  const w = p.promotion;
  parts.push(card(`Promotion ${p.name}`, el("div", { id: "promotion-facts" }, facts([
    ["State", p.state], ["Terms", promotionTerms(w, currency)], ["Revision", p.revision],
    ["Live revision (what the stores hold)", p.live_revision ?? "none"], ["Scope", scopeText(w)],
    ["Starts", moment(w.starts_at_ms)], ["Ends", moment(w.ends_at_ms)], ["Stacking", `${w.stacking}, priority ${w.priority}`],
    ["Created by", p.created_by], ["Submitted by", p.submitted_by || ""], ["Catalog version", p.catalog_version ?? "not sent"],
    ["Id", p.id]]))));
  parts.push(simulationCard(p.simulation, currency));
  if (can("promotions.manage")) parts.push(promotionActions(p, currency));
  parts.push(generic("Decisions", p.decisions.map(d => ({ revision: d.revision, decision: d.decision, by: d.by,
    reason: d.reason || "", at: when(d.at) }))));
  const revisions = await api("GET", `/api/promotions/${encodeURIComponent(id)}/revisions`);
  parts.push(generic("Revisions", revisions.items.map(r => ({ revision: r.revision, author: r.author,
    created: when(r.created_at), terms: promotionTerms(r.promotion, currency),
    live: r.live.map(l => `${when(l.from)} → ${l.until ? when(l.until) : "now"}`).join("; ") }))));
}

function promotionActions(p, currency) {
  // Only what the state allows; the hub refuses anything else with the state it is in.
  const path = action => `/api/promotions/${encodeURIComponent(p.id)}/${action}`;
  const act = async (action, body, what) => {
    const answer = await api("POST", path(action), body);
    await render();
    status(`${what}: the promotion is ${answer.state}`);
  };
  const boxes = [];
  if (p.state === "draft") {
    boxes.push(form([], "Simulate", async () => {
      const sim = await api("POST", path("simulate"), {});
      await render();
      status(`Simulated: it would have cost ${money(sim.cost_minor, currency)} over ${sim.days} days`);
    }, { id: "promotion-simulate" }));
    boxes.push(form([], "Submit", () => act("submit", {}, "Submitted"), { id: "promotion-submit" }));
  }
  if (p.state === "pending") {
    const note = el("p", { class: "note", text: `Waiting for a second person's approval (submitted by ${p.submitted_by}).` });
    const reason = input("promotion-reason", { maxlength: 200, placeholder: "optional" });
    boxes.push(note, form([field("Reason", reason)], "Approve", () => act("approve", { revision: p.revision, reason: reason.value.trim() }, "Approved"),
      { id: "promotion-approve" }));
    boxes.push(form([], "Reject", () => act("reject", { reason: reason.value.trim() }, "Rejected"), { id: "promotion-reject" }));
  }
  if (p.state === "draft" || p.state === "live") {
    const starts = input("promotion-starts", { type: "datetime-local" });
    const ends = input("promotion-ends", { type: "datetime-local" });
    const iso = box => (box.value ? new Date(box.value).toISOString() : null);  // the browser's local time, sent in UTC
    boxes.push(form([field("Starts (empty: now)", starts), field("Ends (empty: open)", ends)], "Schedule",
      () => act("schedule", { starts_at: iso(starts), ends_at: iso(ends) }, "Scheduled"), { id: "promotion-schedule" }));
    const { fields, body } = promotionFields(currency, p.promotion);
    boxes.push(el("details", {}, el("summary", { text: "Edit (a new revision, to simulate and submit again)" }),
      form(fields, "Save revision", () => api("PUT", `/api/promotions/${encodeURIComponent(p.id)}`, body())
        .then(() => render()).then(() => status("Saved as a new revision: a draft")), { id: "promotion-edit" })));
  }
  if (p.live_revision && p.state !== "ended") {
    boxes.push(form([], "End now", () => act("end", {}, "Ended"), { id: "promotion-end" }));
  }
  if (!boxes.length) boxes.push(el("p", { class: "note", text: `Nothing can be done with a promotion that is ${p.state}.` }));
  return card("Simulate, submit, approve, schedule", ...boxes);
}

SECTIONS.promotions = { permission: "promotions.view", list: promotions, item: promotion };
