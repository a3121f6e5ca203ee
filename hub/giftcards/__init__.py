"""Gift cards: issued, topped up and blocked in the console (audited), a ledger with the balance cached beside it,
the stores' gift_card_balance/redeem/reverse/refund, and the appliers of sale.completed v5 and return.completed
v3 confirming redemptions and refunds. Offline use is refused by the till (hub.giftcards.cards says why)."""

from pathlib import Path

from hub.domains import Domain
from hub.giftcards import routes, sales
from hub.giftcards.requests import RESPONDERS

DOMAIN = Domain("giftcards", migrations=Path(__file__).parent / "migrations", responders=RESPONDERS,
                appliers={"sale.completed": sales.apply_sales, "return.completed": sales.apply_returns},
                routes=routes.routes, openapi=routes.OPENAPI)
