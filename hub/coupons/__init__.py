"""Coupons: codes of code_only promotions (single-use batches, named multi-use codes with a limit, per-customer
limits, expiry), the stores' coupon_reserve and coupon_release, the sweeper releasing holds no sale confirmed, the
sale.completed applier confirming uses, and the console's Coupons API."""

from pathlib import Path

from hub.console.context import Console
from hub.coupons import routes, sales, uses
from hub.coupons.requests import RESPONDERS
from hub.domains import Domain
from hub.repeating import repeat

SWEEP_EVERY_S = 5.0
SWEEP_BATCH = 500


async def release_holds(console: Console) -> None:
    """Give back the uses whose hold ended with no sale (a till that crashed, a sale abandoned without a void)."""
    async def step() -> int:
        return await console.seam.run(uses.release_expired, console.ready_pool(), SWEEP_BATCH)
    await repeat("releasing coupon holds no sale confirmed", step, SWEEP_EVERY_S, SWEEP_BATCH)


DOMAIN = Domain("coupons", migrations=Path(__file__).parent / "migrations", responders=RESPONDERS,
                appliers={"sale.completed": sales.apply_sales}, routes=routes.routes, jobs={"coupon_hold_release": release_holds},
                openapi=routes.OPENAPI)
