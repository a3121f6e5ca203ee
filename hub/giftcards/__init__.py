"""Gift cards: issued, topped up and blocked in the console (audited), a ledger with the balance cached beside it,
the stores' gift_card_balance/redeem/reverse/refund, and the appliers of sale.completed v5 and return.completed
v3 confirming redemptions and refunds. Offline use is refused by the till (hub.giftcards.cards says why)."""

from pathlib import Path

from hub.console.context import Console
from hub.domains import Domain
from hub.giftcards import cards, routes, sales
from hub.giftcards.requests import RESPONDERS
from hub.repeating import repeat

COUNT_EVERY_S = 60.0


async def count_unconfirmed(console: Console) -> None:
    """Keep novapos_hub_gift_card_unconfirmed_entries current for every tenant (a person looks at the list)."""
    async def step() -> int:
        for tenant in await console.query("SELECT tenant FROM tenants"):
            await console.seam.run(cards.unconfirmed, console.ready_pool(), tenant["tenant"], 1)
        return 0
    await repeat("counting unconfirmed gift card entries", step, COUNT_EVERY_S, 1)

DOMAIN = Domain("giftcards", migrations=Path(__file__).parent / "migrations", responders=RESPONDERS,
                appliers={"sale.completed": sales.apply_sales, "return.completed": sales.apply_returns},
                routes=routes.routes, services=(count_unconfirmed,), openapi=routes.OPENAPI)
