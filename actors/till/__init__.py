"""One till: the cashier's session, the cart and its tenders, completing a sale."""

from actors.till.actor import TillActor, TillDevices

__all__ = ["TillActor", "TillDevices"]
