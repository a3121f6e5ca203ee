"""A store asks the hub for a sale by its order id (a return of another store's sale): request and answer.

The subject is the asking store's own (novapos.<tenant>.<store>.req.order), so the hub knows who asks from it
and answers only with sales of the same tenant. The order id is the sale's event id; a receipt's QR code holds
it as ORDER_QR_PREFIX + id, and the till accepts either form (`order_id`). The answer is JSON: {"sale": ... } or
{"sale": null} (not found, or another tenant's), the sale in the shape actors.returns.journal.find_sale gives.
"""

from __future__ import annotations

import json
from typing import Any

from novapos import validators
from novapos.wire.subjects import request_subject

ORDER_QR_PREFIX = "novapos:order:"
KIND = "order"


def order_subject(tenant: str, store: str) -> str:
    return request_subject(tenant, store, KIND)


def order_id(where: str, value: Any) -> str:
    """The order id in a scanned QR text ("novapos:order:<id>") or a typed id; Invalid otherwise."""
    if isinstance(value, str) and value.startswith(ORDER_QR_PREFIX):
        value = value.removeprefix(ORDER_QR_PREFIX)
    return validators.uuid_text(where, value)


def encode_request(order: str) -> bytes:
    return json.dumps({"order": order}).encode()


def decode_request(data: bytes) -> str:
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise validators.Invalid("request", "must be JSON {\"order\": id}") from None
    if not isinstance(body, dict):
        raise validators.Invalid("request", "must be JSON {\"order\": id}")
    return order_id("order", body.get("order"))


def encode_answer(sale: dict[str, Any] | None) -> bytes:
    return json.dumps({"sale": sale}).encode()


def decode_answer(data: bytes) -> dict[str, Any] | None:
    """The hub's sale (None: not found); Invalid when the answer is not one."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise validators.Invalid("hub's answer", "is not JSON") from None
    sale = body.get("sale") if isinstance(body, dict) else None
    if sale is not None and not isinstance(sale, dict):
        raise validators.Invalid("hub's answer", "sale must be an object")
    return sale
