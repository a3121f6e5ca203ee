"""Inventory: stock per location and SKU as a ledger of movements with balances, moved by ingested sales and
by the console (adjust, receive, return, transfer, reserve, release), reservations that expire, low-stock
alerts once per crossing, and the answer to a till asking for an item's stock nearby."""

from pathlib import Path

from hub.domains import Domain
from hub.inventory.answers import answer_stock
from hub.inventory.returns import move_returned_stock
from hub.inventory.routes import OPENAPI, routes
from hub.inventory.sales import move_sold_stock
from hub.inventory.services import publish_low_stock, sweep_reservations
from novapos.wire.stock import STOCK_REQUESTS

DOMAIN = Domain("inventory", migrations=Path(__file__).parent / "migrations",
                appliers={"sale.completed": move_sold_stock, "return.completed": move_returned_stock}, responders={STOCK_REQUESTS: answer_stock},
                routes=routes, jobs={"reservation_sweeper": sweep_reservations, "low_stock_publisher": publish_low_stock}, openapi=OPENAPI)
