/* The web till's customer panel and its points and gift card tenders (after till.js, whose helpers it uses).
 *
 * Find a customer by phone, email or loyalty card (a scanned card types its number here), attach them to the
 * sale, enrol a new one, see their points, tier and what expires soon. Offline the edge answers from the store's
 * recent customers and says so; the page shows that sentence as it is. Points pay what whole points buy of the
 * amount typed (or of all that remains); a gift card pays through the hub only (offline the edge refuses with a
 * sentence). As in till.js, no business rule lives here: every answer is the edge's.
 */
"use strict";

function customerLabel(c) {
  return `${c.name || "(no name)"} · ${c.card || "no card"} · ${c.points} pts` + (c.tier ? ` · ${c.tier}` : "");
}

function renderCustomer(s) {
  const attached = s.mode !== "return" ? s.customer : null;
  $("customer-panel").hidden = s.mode === "return";
  $("customer-attached").hidden = !attached;
  $("customer-form").hidden = Boolean(attached);
  if (attached) {
    $("customer-name").textContent = attached.name || "(no name)";
    $("customer-card").textContent = attached.card || "";
    $("customer-points").textContent = `${attached.points} points` + (attached.tier ? ` · ${attached.tier}` : "");
    $("customer-results").innerHTML = ""; $("enrol-form").hidden = true;
  } else {
    $("customer-details").hidden = true;
  }
  const owes = s.due.minor > 0 && s.mode !== "return";
  const waiting = (s.tenders || []).some((t) => t.state === "pending");
  $("points").hidden = !attached;
  $("points").disabled = busy || !owes || waiting;
  /* a return whose refund goes back to a gift card: scan the card (or refund in cash instead) */
  const toGiftCard = s.mode === "return" && s.refund_gift_card && s.refund_gift_card.minor > 0;
  $("gift-card").disabled = busy || (!owes && !toGiftCard) || waiting;
  $("gift-card").textContent = toGiftCard ? `Refund ${money(s.refund_gift_card)} to gift card` : "Gift card";
  $("gift-card-number").closest(".gift-card").hidden = !owes && !toGiftCard;
}

$("customer-form").onsubmit = async (e) => {
  e.preventDefault();
  const q = $("customer-query").value.trim();
  if (q.length < 3) { say("Type at least 3 characters: a phone, an email or a card number", false); return; }
  const answer = await call("GET", api(`/customers?q=${encodeURIComponent(q)}`));
  if (!answer.ok) { say(answer.error, false); return; }
  const found = answer.data.customers;
  $("customer-note").textContent = answer.data.offline ? answer.data.message
    : (found.length ? "" : "No customer found: check the number, or enrol them");
  $("customer-results").innerHTML = "";
  for (const c of found) {
    const li = document.createElement("li");
    li.append(button(customerLabel(c), () => attachCustomer(c.id)));
    $("customer-results").append(li);
  }
};

async function attachCustomer(id) {
  const s = await act("PUT", api("/customer"), {customer: id});
  if (!s) return;
  $("customer-query").value = ""; $("customer-note").textContent = "";
  render(s);
  say(`Customer attached: ${s.customer.name || s.customer.card}`, true);
}

$("customer-enrol-open").onclick = () => {
  $("enrol-form").hidden = !$("enrol-form").hidden;
  if (!$("enrol-form").hidden) $("enrol-name").focus();
};
/* One enrolment, one request id, kept across the cashier's retries (a timeout may hide an enrolment the hub made):
 * the hub answers the same customer for it. A new one once this enrolment succeeded. */
let enrolRequest = null;
$("enrol-form").onsubmit = async (e) => {
  e.preventDefault();
  enrolRequest = enrolRequest || newId();
  const body = {name: $("enrol-name").value.trim(), request: enrolRequest};
  if ($("enrol-phone").value.trim()) body.phone = $("enrol-phone").value.trim();
  if ($("enrol-email").value.trim()) body.email = $("enrol-email").value.trim();
  const s = await act("POST", api("/customers"), body);
  if (!s) return;
  enrolRequest = null;
  for (const id of ["enrol-name", "enrol-phone", "enrol-email"]) $(id).value = "";
  $("enrol-form").hidden = true;
  render(s);
  say(`Enrolled ${s.customer.name}: card ${s.customer.card}`, true);
};

$("customer-360").onclick = async () => {
  const answer = await call("GET", api("/customer"));
  if (!answer.ok) { say(answer.error, false); return; }
  const seen = answer.data, loyalty = seen.loyalty || {};
  const next = loyalty.next_tier ? ` · next tier ${typeof loyalty.next_tier === "string" ? loyalty.next_tier
    : loyalty.next_tier.name || ""}` : "";
  const expiring = (loyalty.expiring || []).map((e) => `${e.points} points expire on ${e.expires_at}`).join("; ");
  $("customer-details").textContent = `${loyalty.points} points` + (loyalty.tier ? ` · tier ${loyalty.tier}` : "")
    + next + (expiring ? ` · expiring soon: ${expiring}` : " · nothing expiring soon")
    + (seen.offline ? ` (${seen.message})` : "");
  $("customer-details").hidden = false;
};
$("customer-detach").onclick = async () => {
  const s = await act("DELETE", api("/customer"));
  if (s) { render(s); say("Customer removed from the sale", true); }
};

/* A points or gift card tender the hub did not confirm (its answer lost: it may have taken them) is asked again under
   the SAME id when the cashier taps the same tender (method, amount, card, cart) again, as the till's sentence says:
   the hub then confirms the first redemption instead of taking a second one (which a card's balance or a customer's
   points might not even cover). Only within UNCONFIRMED_REUSE_MS of the first ask: after the till's grace (60 s) it
   gives an unconfirmed redemption back, and a new id is needed. */
const UNCONFIRMED_REUSE_MS = 50000;
let unconfirmedTender = null;
function redemptionId(method, amount, card) {
  const u = unconfirmedTender, cart = state ? state.cart : null;
  if (u && u.method === method && u.amount === amount && u.card === card && u.cart === cart
      && Date.now() - u.at < UNCONFIRMED_REUSE_MS) return u.id;
  return newId();
}
function redemptionAnswered(method, amount, card, id, ok) {
  const f = ok ? null : lastFailure;
  const unsure = f !== null && (f.status === 0 || f.status === 503 || /did not confirm|could not be used/.test(f.error || ""));
  const first = unconfirmedTender && unconfirmedTender.id === id ? unconfirmedTender.at : Date.now();
  unconfirmedTender = unsure ? {method, amount, card, id, cart: state ? state.cart : null, at: first} : null;
}

$("points").onclick = () => tender("points", typedAmount());
$("gift-card").onclick = async () => {
  const card = $("gift-card-number").value.replace(/[\s-]/g, "");
  if (!card) { say("Scan or type the gift card's number first", false); $("gift-card-number").focus(); return; }
  if (state && state.mode === "return") {
    const back = await act("POST", api("/returns/gift-card"), {card});
    if (back) { $("gift-card-number").value = ""; render(back); say("Refunded to the gift card: complete the return", true); }
    return;
  }
  const amount = typedAmount();
  if (!state || amount === null) return;
  const cart = state.cart;
  const id = redemptionId("gift_card", amount, card);
  const s = await act("POST", api("/tenders"), {method: "gift_card", card, amount_minor: amount, id});
  redemptionAnswered("gift_card", amount, card, id, s !== null);
  if (!s) return;
  $("gift-card-number").value = ""; $("amount").value = "";
  autoComplete = cart;
  render(s);
  const paid = s.tenders[s.tenders.length - 1];
  say(paid && paid.message ? paid.message : "Gift card taken", true);
};

/* What the receipt answer says about the customer, their points and gift cards, after a sale (shown under it). */
function loyaltyNote(r) {
  const l = r.loyalty;
  if (!l) return "";
  const parts = [];
  if (l.customer) parts.push(`${l.customer.name || "customer"} (${l.customer.card})`);
  if (l.points) parts.push(`${l.points.redeemed} points redeemed` + (l.points.balance === null ? " offline"
    : `, balance ${l.points.balance} points`));
  for (const g of l.gift_cards || []) parts.push(`gift card ${g.card}: ${money({minor: g.balance_minor, currency: r.currency})} left`);
  return parts.length ? " · " + parts.join(" · ") : "";
}
