"""The loyalty metrics (novapos_hub_loyalty_*): points moved by kind, redemptions by outcome, and corrections (a
balance taken below zero, a redemption the hub had reversed yet sold) by reason, for the on-call and the business."""

from prometheus_client import Counter

POINTS = Counter("novapos_hub_loyalty_points_total", "Points posted to loyalty ledgers, by kind (earn, redeem, "
                 "redeem_reversed, earn_reversed, refund, expire, adjust) and direction", ["kind", "direction"])
REDEMPTIONS = Counter("novapos_hub_loyalty_redemptions_total", "Points redemptions asked by stores, by outcome "
                      "(taken, repeated, refused) and whether offline", ["outcome", "offline"])
CORRECTIONS = Counter("novapos_hub_loyalty_corrections_total", "Ledger entries the hub had to post after the fact "
                      "that took a balance below zero or differed from what the till was told, by reason",
                      ["reason"])
EXPIRED = Counter("novapos_hub_loyalty_expired_lots_total", "Lots of points that expired with points left")


def posted(kind: str, points: int) -> None:
    POINTS.labels(kind, "credit" if points > 0 else "debit").inc(abs(points))
