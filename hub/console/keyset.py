"""Keyset pagination for the console's lists: every list answers {"items": [...], "next": cursor or null}.

A page is read with LIMIT limit + 1 in the list's own order, so `next` is exact (null on the last page) and
no page counts or skips rows (no OFFSET: a page deep in a list of millions costs what the first one does).
The cursor names the last item shown; the client passes it back as `after`. It is plain text of the
ordering key's fields joined by "/" (ids and names are tokens, which hold no "/"), checked like any input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from novapos import validators
from novapos.adapters.http import ApiError
from novapos.validators import Invalid

SEPARATOR = "/"
MAX_CURSOR_LENGTH = 2 * validators.MAX_TOKEN_LENGTH + 24


def page(rows: Sequence[Mapping[str, Any]], limit: int, cursor: Callable[[Mapping[str, Any]], Sequence[object]]) \
        -> dict[str, Any]:
    """The answer for rows read with LIMIT limit + 1: the first `limit`, and the cursor after the last if more."""
    items = [dict(row) for row in rows[:limit]]
    more = len(rows) > limit
    return {"items": items, "next": SEPARATOR.join(str(part) for part in cursor(items[-1])) if more else None}


def after(params: Mapping[str, str], *kinds: str) -> list[Any] | None:
    """The `after` cursor's fields, each checked by its kind ("token" or "int"); None when not given. A
    malformed cursor is a 400 that says to pass back a `next` unchanged."""
    raw = params.get("after")
    if raw is None:
        return None
    parts = raw.split(SEPARATOR) if len(raw) <= MAX_CURSOR_LENGTH else []
    try:
        if len(parts) != len(kinds):
            raise Invalid("after", "is not a cursor of this list")
        return [_field(kind, part) for kind, part in zip(kinds, parts, strict=True)]
    except Invalid:
        raise ApiError(400, f"after={validators.describe(raw)} is not a cursor of this list: pass back the `next` "
                            "of the previous page as it was") from None


def _field(kind: str, part: str) -> Any:
    if kind == "token":
        return validators.token("after", part)
    digits = part.removeprefix("-")
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 19):
        raise Invalid("after", "is not a cursor of this list")
    return validators.integer("after", int(part), -validators.MAX_BIGINT, validators.MAX_BIGINT)


def parameter(ordered_by: str) -> dict[str, Any]:
    """The OpenAPI description of the `after` query parameter."""
    return {"name": "after", "in": "query", "required": False,
            "description": f"the `next` of the previous page (the list is ordered by {ordered_by})",
            "schema": {"type": "string", "maxLength": MAX_CURSOR_LENGTH}}


def schema(item: str, most: int) -> dict[str, Any]:
    """The OpenAPI schema of a page of `item`s."""
    return {"type": "object", "required": ["items", "next"], "properties": {
        "items": {"type": "array", "maxItems": most, "items": {"$ref": f"#/components/schemas/{item}"}},
        "next": {"type": ["string", "null"], "description": "pass it as `after` for the next page; null: the last page"}}}
