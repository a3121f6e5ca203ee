// The console's Coupons and Gift cards tabs (hub/coupons, hub/giftcards), built with console.js's helpers (el, card,
// listing, form, facts...). Codes and numbers are bearer secrets: a batch's codes are shown once after it is made, a
// gift card's number once after it is issued; the hub keeps no gift card number at all.
"use strict";

// Coupons: a promotion's codes (filter by promotion or batch), making a batch of single-use codes or a named
// multi-use code (promotions.manage across the tenant), one code's uses with withdraw / restore.
const couponColumns = [
  { label: "Code", value: c => c.code }, { label: "Promotion", value: c => c.promotion },
  { label: "Uses", value: c => `${c.uses} of ${c.max_uses}` },
  { label: "Per customer", value: c => (c.per_customer ? String(c.per_customer) : "") },
  { label: "Expires", value: c => when(c.expires_at) },
  { label: "State", value: c => el("span", { class: c.active ? "ok" : "bad", text: c.active ? "active" : "withdrawn" }) },
  { label: "Batch", value: c => c.batch || "" },
];
const endOfDay = day => (day ? `${day}T23:59:59Z` : null);  // a date input's day, to its last second (UTC)
const wholeOrNull = text => (String(text).trim() === "" ? null : Number(text));

async function couponPromotions() {
  // The promotions a code may belong to (the hub refuses one that is not code_only, with a sentence).
  try {
    const answer = await api("GET", query("/api/promotions", { limit: 200 }));
    return (answer.items || []).filter(p => p.state !== "ended");
  } catch (exc) {
    return [];
  }
}

async function coupons(parts) {
  const promotion = input("coupon-promotion-filter", { maxlength: 36, placeholder: "all (a promotion id)" });
  const batch = input("coupon-batch-filter", { maxlength: 36, placeholder: "all (a batch id)" });
  const list = listing("Coupon codes", couponColumns,
    after => api("GET", query("/api/coupons", { promotion: promotion.value, batch: batch.value, after, limit: LIMIT })), {
      id: "coupon-codes",
      open: c => { location.hash = `#coupons/${encodeURIComponent(c.code)}`; },
      before: form([field("Promotion", promotion), field("Batch", batch)], "Show", () => list.reload(), { id: "coupons-filter" }),
    });
  if (can("promotions.manage")) parts.push(await couponMaker(list));
  parts.push(list);
  await list.reload();
  state.refresh = () => list.refresh();
}

async function couponMaker(list) {
  const promotions = await couponPromotions();
  const promotion = select("coupon-promotion", promotions.map(p => [p.id, `${p.name} (${p.state})`]));
  const kind = select("coupon-kind", [["batch", "a batch of single-use codes"], ["named", "one code, used many times"]]);
  const count = input("coupon-count", { inputmode: "numeric", value: "50" });
  const code = input("coupon-code", { maxlength: 32, placeholder: "e.g. SUMMER10 (empty: drawn)" });
  const maxUses = input("coupon-max-uses", { inputmode: "numeric", value: "100" });
  const perCustomer = input("coupon-per-customer", { inputmode: "numeric", placeholder: "no limit" });
  const expires = input("coupon-expires", { type: "date" });
  const made = el("div", { id: "coupon-made" });
  const note = el("p", { class: "note", text: promotions.length ? "Codes belong to a code_only promotion. A batch's " +
    "codes are shown once, here: print or send them now." : "No promotion yet: make a code_only promotion first." });
  return card("Make coupon codes", note, form([
    field("Promotion", promotion), field("What", kind), field("How many (a batch)", count),
    field("Code (one code)", code), field("Uses (one code)", maxUses), field("Per customer", perCustomer),
    field("Expires after", expires),
  ], "Make", async () => {
    const common = { promotion: promotion.value, per_customer: wholeOrNull(perCustomer.value),
                     expires_at: endOfDay(expires.value) };
    if (kind.value === "batch") {
      const batch = await api("POST", "/api/coupon-batches", { ...common, count: Number(count.value) });
      made.replaceChildren(card(`Batch ${batch.batch}: ${batch.codes.length} codes`,
        el("p", { class: "note", text: "Each code is used once. They are not shown again as a list: find them by batch." }),
        el("pre", { id: "coupon-batch-codes", text: batch.codes.join("\n") })));
      status(`${batch.codes.length} single-use codes made`);
    } else {
      const one = await api("POST", "/api/coupons", { ...common, code: code.value.trim() || null,
                                                      max_uses: Number(maxUses.value) });
      made.replaceChildren();
      status(`Coupon ${one.code} made: ${one.max_uses} uses`);
    }
    await list.reload();
  }, { id: "coupon-make" }), made);
}

async function coupon(code, parts) {
  parts.push(back("#coupons", "← all coupon codes"));
  const answer = await api("GET", `/api/coupons/${encodeURIComponent(code)}`);
  const c = answer.coupon;
  parts.push(card(`Coupon ${c.code}`, facts([
    ["State", c.active ? "active" : "withdrawn"], ["Promotion", c.promotion], ["Uses", `${c.uses} of ${c.max_uses}`],
    ["Per customer", c.per_customer ? String(c.per_customer) : "no limit"], ["Expires", when(c.expires_at) || "never"],
    ["Batch", c.batch || "made alone"], ["Made by", c.created_by], ["Made", when(c.created_at)],
  ])));
  const uses = el("table", { id: "coupon-uses", "aria-label": "Uses" });
  fill(uses, [
    { label: "Redemption", value: u => u.redemption }, { label: "State", value: u => u.state },
    { label: "Store", value: u => u.store }, { label: "Till", value: u => u.till || "" },
    { label: "Offline", value: u => (u.offline ? "public code, offline" : "") },
    { label: "Held until", value: u => when(u.held_until) }, { label: "At", value: u => when(u.created_at) },
  ], answer.uses);
  parts.push(card("Uses, newest first", el("div", { class: "scroll" }, uses)));
  if (can("promotions.manage")) {
    const reason = input("coupon-reason", { required: true, maxlength: 200, placeholder: "why (required)" });
    const action = c.active ? "block" : "unblock";
    parts.push(card(c.active ? "Withdraw this code" : "Put this code back", form([field("Reason", reason)],
      c.active ? "Withdraw" : "Put back", async () => {
        if (!reason.value.trim()) throw new Refused(0, "say why");
        await api("POST", `/api/coupons/${encodeURIComponent(c.code)}/${action}`, { reason: reason.value.trim() });
        await render();
        status(c.active ? `Coupon ${c.code} withdrawn` : `Coupon ${c.code} is active again`);
      }, { id: "coupon-withdraw" })));
  }
}

// Gift cards: issue (the number shown once), find by number or last four digits, one card's ledger, top up, block.
const giftCardColumns = [
  { label: "Card", value: g => g.card }, { label: "Balance", value: g => money(g.balance_minor, g.currency) },
  { label: "State", value: g => el("span", { class: g.active ? "ok" : "bad", text: g.active ? "active" : "blocked" }) },
  { label: "Expires", value: g => when(g.expires_at) }, { label: "Issued", value: g => when(g.issued_at) },
  { label: "By", value: g => g.issued_by },
];
const openGiftCard = g => { location.hash = `#gift-cards/${encodeURIComponent(g.id)}`; };

async function giftCards(parts) {
  const currency = await tenantCurrency();
  const last4 = input("gift-last4", { inputmode: "numeric", maxlength: 4, placeholder: "all" });
  const list = listing("Gift cards", giftCardColumns,
    after => api("GET", query("/api/gift-cards", { last4: last4.value, after, limit: LIMIT })), {
      id: "gift-cards", open: openGiftCard,
      before: form([field("Last four digits", last4)], "Show", () => list.reload(), { id: "gift-cards-filter" }),
    });
  const amount = input("gift-amount", { inputmode: "decimal", required: true, placeholder: "e.g. 25.00" });
  const expires = input("gift-expires", { type: "date" });
  const issued = el("div", { id: "gift-card-issued" });
  parts.push(card("Issue a gift card", el("p", { class: "note", text:
    "The card's number is shown once, here: give it to the customer (or write it on the card) now. The hub keeps " +
    "only a hash of it and its last four digits. A gift card is refused at a till that cannot reach the hub." }),
    form([field(`Amount (${currency})`, amount), field("Expires after", expires)], "Issue", async () => {
      const minor = parseAmount(amount.value, currency);
      if (minor === null || minor <= 0) throw new Refused(0, "write the amount, e.g. 25.00");
      const answer = await api("POST", "/api/gift-cards", { amount_minor: minor, expires_at: endOfDay(expires.value) });
      issued.replaceChildren(card(`Gift card ${answer.card.card}`, facts([
        ["Number", el("strong", { id: "gift-card-number", text: answer.number })],
        ["Balance", money(answer.card.balance_minor, answer.card.currency)],
        ["Expires", when(answer.card.expires_at) || "never"]])));
      status(`Gift card ${answer.card.card} issued with ${money(answer.card.balance_minor, answer.card.currency)}`);
      await list.reload();
    }, { id: "gift-card-issue" }), issued));
  const number = input("gift-number", { inputmode: "numeric", maxlength: 32, autocomplete: "off" });
  parts.push(card("Find a card by its number", form([field("Number", number)], "Find", async () => {
    const found = await api("POST", "/api/gift-card-lookups", { number: number.value });
    number.value = "";
    openGiftCard(found);
  }, { id: "gift-card-lookup" })));
  parts.push(list);
  await list.reload();
  state.refresh = () => list.refresh();
}

async function giftCard(id, parts) {
  parts.push(back("#gift-cards", "← all gift cards"));
  const answer = await api("GET", `/api/gift-cards/${encodeURIComponent(id)}`);
  const g = answer.card;
  const m = minor => money(minor, g.currency);
  parts.push(card(`Gift card ${g.card}`, facts([
    ["Balance", el("strong", { id: "gift-card-balance", text: m(g.balance_minor) })],
    ["State", g.active ? "active" : `blocked: ${g.blocked_reason || ""}`], ["Expires", when(g.expires_at) || "never"],
    ["Customer", g.customer || "none"], ["Issued by", g.issued_by], ["Issued", when(g.issued_at)], ["Card id", g.id],
  ])));
  const ledger = el("table", { id: "gift-card-ledger", "aria-label": "Ledger" });
  fill(ledger, [
    { label: "At", value: e => when(e.at) }, { label: "What", value: e => e.kind.replace("_", " ") },
    { label: "Amount", value: e => m(e.amount_minor) }, { label: "Balance after", value: e => m(e.balance_minor) },
    { label: "Store", value: e => [e.store, e.till].filter(Boolean).join(" / ") }, { label: "By", value: e => e.actor },
    { label: "Redemption", value: e => e.redemption || "" },
    { label: "Sale or return", value: e => e.sale_event || "" }, { label: "Reason", value: e => e.reason || "", wrap: true },
  ], answer.ledger);
  parts.push(card("Ledger, newest first", el("div", { class: "scroll" }, ledger)));
  const path = action => `/api/gift-cards/${encodeURIComponent(g.id)}/${action}`;
  if (g.active) {
    const amount = input("gift-top-up", { inputmode: "decimal", required: true, placeholder: "e.g. 10.00" });
    const why = input("gift-top-up-reason", { maxlength: 200, placeholder: "optional" });
    parts.push(card("Top up", form([field(`Amount (${g.currency})`, amount), field("Reason", why)], "Top up", async () => {
      const minor = parseAmount(amount.value, g.currency);
      if (minor === null || minor <= 0) throw new Refused(0, "write the amount, e.g. 10.00");
      const after = await api("POST", path("top-ups"), { amount_minor: minor, reason: why.value.trim() || null });
      await render();
      status(`Topped up: the balance is ${m(after.balance_minor)}`);
    }, { id: "gift-card-top-up" })));
  }
  const reason = input("gift-block-reason", { required: true, maxlength: 200, placeholder: "why (required)" });
  parts.push(card(g.active ? "Block (lost, stolen)" : "Unblock", form([field("Reason", reason)],
    g.active ? "Block" : "Unblock", async () => {
      if (!reason.value.trim()) throw new Refused(0, "say why");
      await api("POST", path(g.active ? "block" : "unblock"), { reason: reason.value.trim() });
      await render();
      status(g.active ? "The card is blocked: nothing can be taken from it" : "The card is active again");
    }, { id: "gift-card-block" })));
}

Object.assign(SECTIONS, {
  coupons: { permission: "promotions.view", list: coupons, item: coupon },
  "gift-cards": { permission: "gift_cards.manage", list: giftCards, item: giftCard },
});
