"""The catalog as it travels from the hub to the stores: one JetStream stream per tenant, one subject per
thing (keeping only its last message), and a version marker that closes each change.

Stream `CATALOG_<tenant>`, max one message per subject, file storage; subjects:

- `catalog.<tenant>.item.<sku>`: everything a till needs to sell one variant (its names, barcodes, every
  price with its scope and start, its tax class, whether it is active). A change to any of these
  republishes the whole item, so the last message of a subject is the item's whole truth.
  An item may name its `category` (a path, "food/dairy/cheese", which promotions target); an item of a hub
  from before categories has none (""), and such an item's body carries no `category` key at all.
- `catalog.<tenant>.promotion.<id>`: a promotion (novapos.promotions' to_wire map) and `active` (false once
  ended or withdrawn: the store keeps it but never applies it). A promotion change bumps the catalog version
  like a price change, so a till never sees a promotion without the catalog version it came with.
- `catalog.<tenant>.tax.<tax_class>`: a tax class and its rate per region.
- `catalog.<tenant>.settings`: the tenant's currency and whether shelf prices include tax.
- `catalog.<tenant>.version`: published last for each catalog version. A store applies everything it
  received up to a marker in one SQLite transaction, and nothing after it until the next marker, so a
  till never sees half a change. The stream's own sequence numbers order everything: a store that was
  offline resumes after the last sequence it applied and receives only what changed meanwhile (older
  messages of a subject are gone), never a full resync.
- `catalog.<tenant>.snapshot.<n>` (n = 0..count-1) and `catalog.<tenant>.snapshot`: the whole catalog at
  one version in a few large messages, for a store's first load (or a resync): nats-py costs tens of
  microseconds per message, so 100,000 one-item messages cost seconds that 50 chunks do not. The hub
  publishes the chunks first and the head last; the head names the snapshot, its catalog version, the
  stream sequence of that version's marker (a store continues from the next one) and the chunk count.
  Each chunk holds item bodies (the item encoding above) with the snapshot id and its index; chunk 0 also
  holds the tax classes and settings; chunks after the items' hold the promotions (`promotions`: their
  message bodies). The per-item path skips these subjects.

Stores may read their own tenant's stream and nothing else (NATS permissions; they can publish nothing
here). Bodies are msgpack maps, validated on decode like events: a bad message is refused with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import msgpack

from novapos import promotions, validators
from novapos.pricing import Price
from novapos.validators import (
    MAX_BARCODE_LENGTH,
    MAX_BIGINT,
    MAX_MINOR,
    MAX_TOKEN_LENGTH,
    TOKEN,
    Invalid,
    is_text,
)

MAX_ATTRIBUTES = 3
MAX_BARCODES = 64
MAX_PRICES = 1024


def catalog_stream(tenant: str) -> str:
    return f"CATALOG_{validators.token('tenant', tenant)}"


def catalog_subjects(tenant: str) -> str:
    return f"catalog.{validators.token('tenant', tenant)}.>"


def following_subjects(tenant: str) -> list[str]:
    """What a store that has its catalog follows: every subject but the snapshot's, so that a republished
    snapshot (megabytes) never travels to stores that do not need it."""
    prefix = f"catalog.{validators.token('tenant', tenant)}"
    return [f"{prefix}.item.>", f"{prefix}.tax.>", f"{prefix}.promotion.>", f"{prefix}.settings",
            f"{prefix}.version"]


def item_subject(tenant: str, sku: str) -> str:
    return f"catalog.{validators.token('tenant', tenant)}.item.{validators.token('sku', sku)}"


def promotion_subject(tenant: str, promotion: str) -> str:
    return f"catalog.{validators.token('tenant', tenant)}.promotion.{validators.token('promotion', promotion)}"


def tax_subject(tenant: str, tax_class: str) -> str:
    return f"catalog.{validators.token('tenant', tenant)}.tax.{validators.token('tax class', tax_class)}"


def settings_subject(tenant: str) -> str:
    return f"catalog.{validators.token('tenant', tenant)}.settings"


def version_subject(tenant: str) -> str:
    return f"catalog.{validators.token('tenant', tenant)}.version"


def snapshot_subject(tenant: str) -> str:
    """The snapshot's head (its chunks are `snapshot_subject(t).<n>`)."""
    return f"catalog.{validators.token('tenant', tenant)}.snapshot"


def snapshot_chunk_subject(tenant: str, index: int) -> str:
    return f"{snapshot_subject(tenant)}.{index}"


SNAPSHOT_ITEMS = 2000
"""Items per snapshot chunk: about 300 KB at bench/catalog_sync.py's items (150 bytes each), under NATS's 1 MB
payload limit with room for items three times larger."""
MAX_CHUNKS = 10_000
MAX_CHUNK_ITEMS = 20_000
MAX_CHUNK_BYTES = 512 * 1024
"""A chunk past this is split: half NATS's default 1 MB payload limit, whatever the items hold."""


@dataclass(frozen=True)
class Item:
    sku: str
    product: str
    name: str
    attributes: tuple[tuple[str, str], ...]
    """(attribute, value) pairs in the product's order: (("size", "M"), ("colour", "red"))."""
    tax_class: str
    barcodes: tuple[str, ...]
    prices: tuple[Price, ...]
    active: bool
    version: int
    category: str = ""
    """The product's category path ("food/dairy/cheese"), "" for none."""


@dataclass(frozen=True)
class PromotionMessage:
    """A promotion as the catalog carries it: its definition and whether it may still apply."""
    promotion: promotions.Promotion
    active: bool

    @property
    def version(self) -> int:
        """The promotion's version, as every catalog message has one."""
        return self.promotion.version


@dataclass(frozen=True)
class TaxClass:
    tax_class: str
    name: str
    rates: tuple[tuple[str, int], ...]
    """(region, rate_ppm) pairs."""
    version: int


@dataclass(frozen=True)
class Settings:
    currency: str
    prices_include_tax: bool
    version: int


@dataclass(frozen=True)
class VersionMarker:
    version: int
    published_ms: int


Message = Item | PromotionMessage | TaxClass | Settings | VersionMarker
Other = TaxClass | Settings | PromotionMessage
"""What is not an item nor a marker: applied as it comes, each its subject's whole truth."""


@dataclass(frozen=True)
class SnapshotHead:
    """The catalog at `version` in `chunks` chunks, reflecting the stream up to `stream_seq` (that version's
    marker): a store that loads it continues from stream_seq + 1."""
    snapshot: str
    version: int
    stream_seq: int
    chunks: int


@dataclass(frozen=True)
class SnapshotChunk:
    """One chunk, its item bodies still unpacked maps: each is checked as an item message is
    (is_well_formed_item, else checked_item), one at a time, so a bad one is skipped with its reason."""
    snapshot: str
    index: int
    items: list[dict[str, Any]]
    others: tuple[Other, ...]


def _body(message: Message) -> dict[str, Any]:
    if isinstance(message, Item):
        body: dict[str, Any] = {
            "sku": message.sku, "product": message.product, "name": message.name,
            "attributes": [list(pair) for pair in message.attributes], "tax_class": message.tax_class,
            "barcodes": list(message.barcodes), "active": message.active, "version": message.version,
            "prices": [[p.scope, p.scope_id, p.effective_from_ms, p.minor] for p in message.prices]}
        if message.category:
            body["category"] = message.category
    elif isinstance(message, PromotionMessage):
        body = {**promotions.to_wire(message.promotion), "active": message.active}
    elif isinstance(message, TaxClass):
        body = {"tax_class": message.tax_class, "name": message.name,
                "rates": [list(pair) for pair in message.rates], "version": message.version}
    elif isinstance(message, Settings):
        body = {"currency": message.currency, "prices_include_tax": message.prices_include_tax,
                "version": message.version}
    else:
        body = {"version": message.version, "published_ms": message.published_ms}
    return body


def subject_of(tenant: str, message: Message) -> str:
    """The subject a message travels on: the item's, the tax class's, the settings' or the marker's."""
    if isinstance(message, Item):
        return item_subject(tenant, message.sku)
    if isinstance(message, TaxClass):
        return tax_subject(tenant, message.tax_class)
    if isinstance(message, PromotionMessage):
        return promotion_subject(tenant, message.promotion.id)
    if isinstance(message, Settings):
        return settings_subject(tenant)
    return version_subject(tenant)


def encode(message: Message) -> bytes:
    return cast(bytes, msgpack.packb(_body(message)))


def encode_head(head: SnapshotHead) -> bytes:
    return cast(bytes, msgpack.packb({"snapshot": head.snapshot, "version": head.version,
                                      "stream_seq": head.stream_seq, "chunks": head.chunks}))


def encode_chunks(snapshot: str, items: Sequence[Item], others: Sequence[TaxClass | Settings],
                  per_chunk: int = SNAPSHOT_ITEMS, first: int = 0) -> list[bytes]:
    """The chunks of a snapshot, in index order from `first`: `per_chunk` items each (fewer where they would
    pass MAX_CHUNK_BYTES), the tax classes and settings in chunk 0 (there is always a chunk 0, even with no
    items). A snapshot built a page at a time calls this per page, `first` the number of chunks so far."""
    bodies = [_body(item) for item in items]
    chunks: list[bytes] = []

    def add(at: int, end: int) -> None:
        body: dict[str, Any] = {"snapshot": snapshot, "index": first + len(chunks), "items": bodies[at:end]}
        if first + len(chunks) == 0:
            body["tax"] = [_body(tax) for tax in others if isinstance(tax, TaxClass)]
            body["settings"] = [_body(settings) for settings in others if isinstance(settings, Settings)]
        data = cast(bytes, msgpack.packb(body))
        if len(data) > MAX_CHUNK_BYTES and end - at > 1:
            add(at, (at + end) // 2)
            add((at + end) // 2, end)
        else:
            chunks.append(data)
    for at in range(0, max(len(bodies), 1), per_chunk):
        add(at, min(at + per_chunk, len(bodies)))
    return chunks


PROMOTIONS_PER_CHUNK = 500
"""Promotions per snapshot chunk: about 300 KB at a kilobyte each (most are far smaller)."""
MAX_CHUNK_PROMOTIONS = 5000


def encode_promotion_chunks(snapshot: str, messages: Sequence[PromotionMessage], first: int,
                            per_chunk: int = PROMOTIONS_PER_CHUNK) -> list[bytes]:
    """The chunks holding a snapshot's promotions, indexed from `first` (the chunks of its items so far):
    `per_chunk` each, fewer where they would pass MAX_CHUNK_BYTES; none when there are no promotions."""
    bodies = [_body(message) for message in messages]
    chunks: list[bytes] = []

    def add(at: int, end: int) -> None:
        data = cast(bytes, msgpack.packb({"snapshot": snapshot, "index": first + len(chunks), "items": [],
                                          "promotions": bodies[at:end]}))
        if len(data) > MAX_CHUNK_BYTES and end - at > 1:
            add(at, (at + end) // 2)
            add((at + end) // 2, end)
        else:
            chunks.append(data)
    for at in range(0, len(bodies), per_chunk):
        add(at, min(at + per_chunk, len(bodies)))
    return chunks


def decode_head(data: bytes) -> SnapshotHead:
    """A snapshot head; raises Invalid with the reason for anything malformed."""
    body = unpack(data)
    return SnapshotHead(snapshot=validators.token("snapshot", body.get("snapshot")), version=_version(body),
                        stream_seq=validators.integer("stream_seq", body.get("stream_seq"), 1, MAX_BIGINT),
                        chunks=validators.integer("chunks", body.get("chunks"), 1, MAX_CHUNKS))


def decode_chunk(data: bytes) -> SnapshotChunk:
    """A snapshot chunk, its tax classes, settings and promotions decoded, its items left as maps (see
    SnapshotChunk); raises Invalid with the reason for anything malformed around them."""
    body = unpack(data)
    items = _list("items", body.get("items"), MAX_CHUNK_ITEMS)
    if not all(type(item) is dict for item in items):
        raise Invalid("items", "must be a list of maps")
    others: list[Other] = []
    for kind, key, most in (("tax", "tax", 4096), ("settings", "settings", 4096),
                            ("promotion", "promotions", MAX_CHUNK_PROMOTIONS)):
        for each in _list(key, body.get(key, []), most):
            if type(each) is not dict:
                raise Invalid(key, "must be a list of maps")
            message = decode_body(kind, each)
            assert isinstance(message, TaxClass | Settings | PromotionMessage)
            others.append(message)
    return SnapshotChunk(snapshot=validators.token("snapshot", body.get("snapshot")),
                         index=validators.integer("index", body.get("index"), 0, MAX_CHUNKS), items=items,
                         others=tuple(others))


def _list(where: str, value: Any, most: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > most:
        raise Invalid(where, f"must be a list of at most {most}")
    return value


def _pair(where: str, value: Any) -> list[Any]:
    if not isinstance(value, list) or len(value) != 2:
        raise Invalid(where, "must be a pair")
    return value


def _version(body: dict[str, Any]) -> int:
    return validators.integer("version", body.get("version"), 0, validators.MAX_BIGINT)


def _price(where: str, value: Any) -> Price:
    if not isinstance(value, list) or len(value) != 4 or value[0] not in ("tenant", "region", "store"):
        raise Invalid(where, "must be [scope, scope_id, effective_from_ms, minor] with scope tenant, region or store")
    scope_id = "" if value[0] == "tenant" and value[1] == "" else validators.token(f"{where} scope_id", value[1])
    return Price(value[0], scope_id, validators.integer(f"{where} effective_from_ms", value[2], 0, validators.MAX_BIGINT),
                 validators.minor_units(f"{where} minor", value[3]))


_SCOPES = ("tenant", "region", "store")
_token = TOKEN.fullmatch
_category = validators.CATEGORY.fullmatch


def is_well_formed_item(body: dict[str, Any]) -> bool:
    """Whether `body` is an item `decode` accepts as it is: the validators' rules (their compiled patterns,
    bounds and is_text), inlined with no sentence built and no generic call per field. False sends a body
    through the full validators (checked_item), which say why it is refused. A cold sync checks 100,000 of
    these: it is the hot path, and tests/test_catalog_decode.py holds it to checked_item's answers."""
    get = body.get
    sku, product, name, tax_class = get("sku"), get("product"), get("name"), get("tax_class")
    attributes, barcodes, prices, version = get("attributes"), get("barcodes"), get("prices"), get("version")
    if not (type(sku) is str and len(sku) <= MAX_TOKEN_LENGTH and _token(sku)
            and type(product) is str and len(product) <= MAX_TOKEN_LENGTH and _token(product)
            and type(tax_class) is str and len(tax_class) <= MAX_TOKEN_LENGTH and _token(tax_class)
            and is_text(name) and type(version) is int and 0 <= version <= MAX_BIGINT
            and type(attributes) is list and len(attributes) <= MAX_ATTRIBUTES
            and type(barcodes) is list and len(barcodes) <= MAX_BARCODES
            and type(prices) is list and len(prices) <= MAX_PRICES):
        return False
    category = get("category")
    if category is not None and not (type(category) is str and len(category) <= validators.MAX_CATEGORY_LENGTH
                                     and _category(category)):
        return False
    for pair in attributes:
        if not (type(pair) is list and len(pair) == 2 and is_text(pair[0]) and is_text(pair[1])):
            return False
    for code in barcodes:
        if not (type(code) is str and len(code) <= MAX_BARCODE_LENGTH and _token(code)):
            return False
    for price in prices:
        if not (type(price) is list and len(price) == 4):
            return False
        scope, scope_id, since, minor = price
        if not (scope in _SCOPES and type(since) is int and 0 <= since <= MAX_BIGINT
                and type(minor) is int and 0 <= minor <= MAX_MINOR
                and ((type(scope_id) is str and len(scope_id) <= MAX_TOKEN_LENGTH and _token(scope_id))
                     or (scope == "tenant" and scope_id == ""))):
            return False
    return True


def unpack(data: bytes) -> dict[str, Any]:
    """A message's msgpack map; raises Invalid for anything else."""
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise Invalid("catalog message", f"is not msgpack: {exc}") from None
    if not isinstance(body, dict):
        raise Invalid("catalog message", "must be a map")
    return body


def checked_item(body: dict[str, Any]) -> Item:
    """The item of `body` checked field by field by the validators, raising Invalid with the sentence for
    the first field refused: the reference `is_well_formed_item` must agree with (tests run both)."""
    return Item(
        sku=validators.token("sku", body.get("sku")), product=validators.token("product", body.get("product")),
        name=validators.text("name", body.get("name")),
        attributes=tuple((validators.text("attribute", a), validators.text("attribute value", v))
                         for a, v in (_pair("attributes[]", pair)
                                      for pair in _list("attributes", body.get("attributes"), MAX_ATTRIBUTES))),
        tax_class=validators.token("tax_class", body.get("tax_class")),
        barcodes=tuple(validators.token("barcode", code, max_length=validators.MAX_BARCODE_LENGTH)
                       for code in _list("barcodes", body.get("barcodes"), MAX_BARCODES)),
        prices=tuple(_price(f"prices[{index}]", price)
                     for index, price in enumerate(_list("prices", body.get("prices"), MAX_PRICES))),
        active=body.get("active") is True, version=_version(body),
        category="" if body.get("category") is None else validators.category("category", body.get("category")))


def decode(subject_kind: str, data: bytes) -> Message:
    """Decode a catalog message whose subject kind is item, tax, settings or version; raises Invalid
    (validators') with a reason for anything malformed."""
    return decode_body(subject_kind, unpack(data))


def decode_body(subject_kind: str, body: dict[str, Any]) -> Message:
    """`decode` of a message already unpacked."""
    if subject_kind == "item":
        if is_well_formed_item(body):
            return Item(sku=body["sku"], product=body["product"], name=body["name"],
                        attributes=tuple((a, v) for a, v in body["attributes"]), tax_class=body["tax_class"],
                        barcodes=tuple(body["barcodes"]), prices=tuple(Price(*price) for price in body["prices"]),
                        active=body.get("active") is True, version=body["version"],
                        category=body.get("category") or "")
        return checked_item(body)
    if subject_kind == "promotion":
        return PromotionMessage(promotions.from_wire(body), active=validators.boolean("active", body.get("active")))
    if subject_kind == "tax":
        return TaxClass(
            tax_class=validators.token("tax_class", body.get("tax_class")), name=validators.text("name", body.get("name")),
            rates=tuple((validators.token("region", region), validators.integer("rate_ppm", rate, 0, 1_000_000))
                        for region, rate in (_pair("rates[]", pair) for pair in _list("rates", body.get("rates"), 4096))),
            version=_version(body))
    if subject_kind == "settings":
        return Settings(currency=validators.currency("currency", body.get("currency")),
                        prices_include_tax=body.get("prices_include_tax") is True, version=_version(body))
    if subject_kind == "version":
        return VersionMarker(version=_version(body),
                             published_ms=validators.integer("published_ms", body.get("published_ms"), 0, validators.MAX_BIGINT))
    raise Invalid("catalog subject", f"kind {validators.describe(subject_kind)} is not item, promotion, tax, settings "
                                     "or version")
