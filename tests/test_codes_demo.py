"""The demo's coupon codes and gift card: seeded once for the demo's welcome promotion, usable as the README says
(the card's number finds 50.00), and kept as they are on a second start."""

from __future__ import annotations

from pathlib import Path

from hub.coupons.demo import MULTI_USE, SINGLE_USE
from hub.giftcards import cards
from hub.giftcards.demo import BALANCE_MINOR, NUMBER
from hub.promotions.demo import WELCOME
from novapos.demo.provision import provision_demo
from tests.test_tenancy_nats import Hub, hub  # noqa: F401  (the fixture, for its database and runner)


def test_the_demo_seeds_its_codes_and_gift_card_once(hub: Hub, tmp_path: Path) -> None:  # noqa: F811
    provision_demo(hub.config.database_url, tmp_path / "credentials")
    codes = hub.run(lambda pool: pool.fetch("SELECT code, promotion, max_uses, per_customer FROM coupon_codes"
                                            " ORDER BY code"))
    assert [tuple(row) for row in codes] == sorted(
        [(code, WELCOME, 1, None) for code in SINGLE_USE] + [(MULTI_USE, WELCOME, 100, 1)])
    balance = hub.run(lambda pool: cards.balance(pool, "demo", NUMBER))
    assert (balance["balance_minor"], balance["currency"], balance["active"]) == (BALANCE_MINOR, "EUR", True)
    hub.run(lambda pool: pool.execute("UPDATE gift_cards SET balance_minor = 1"))  # spent meanwhile: kept
    provision_demo(hub.config.database_url, tmp_path / "credentials")
    assert hub.run(lambda pool: pool.fetchval("SELECT count(*) FROM coupon_codes")) == len(codes)
    assert hub.run(lambda pool: pool.fetchval("SELECT balance_minor FROM gift_cards")) == 1
