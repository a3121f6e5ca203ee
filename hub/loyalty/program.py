"""A tenant's loyalty program: what a point is worth, how points are earned, the tiers, expiry and the offline
limits. Stored in loyalty_programs; a tenant that never saved one runs DEFAULT (so a customer earns from the first
sale). `from_json` checks an administrator's program like any client input (validators.Invalid with a sentence)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

import asyncpg

from novapos import validators
from novapos.wire.loyalty import tier_name

PPM = 1_000_000
MAX_POINTS = 10**12
MAX_BONUSES = 200
MAX_TIERS = 12
MAX_MULTIPLIER_PPM = 10 * PPM


@dataclass(frozen=True)
class Bonus:
    """Extra points per unit sold of a product (sku) or of a category (matching itself and everything below)."""
    sku: str | None
    category: str | None
    points_per_unit: int

    def matches(self, sku: str, category: str | None) -> bool:
        if self.sku is not None:
            return sku == self.sku
        return category is not None and self.category is not None and (
            category == self.category or category.startswith(self.category + "/"))


@dataclass(frozen=True)
class Tier:
    name: str
    min_spend_minor: int
    multiplier_ppm: int


@dataclass(frozen=True)
class Program:
    currency: str
    point_value_minor: int
    earn_points_per_unit: int
    earn_unit_minor: int
    earn_per_order_points: int
    earn_bonuses: tuple[Bonus, ...]
    tiers: tuple[Tier, ...]
    expiry_months: int
    notice_days: int
    offline_store_budget_points: int
    offline_customer_cap_points: int
    adjust_max_points: int = 100_000
    """The most points one console adjustment may add or take (a mistyped or malicious adjustment is bounded)."""

    def tier_for(self, spend_minor: int) -> Tier:
        """The highest tier whose threshold the spend reaches (the first tier starts at 0)."""
        reached = [tier for tier in self.tiers if tier.min_spend_minor <= spend_minor]
        return reached[-1] if reached else self.tiers[0]

    def next_tier(self, spend_minor: int) -> Tier | None:
        return next((tier for tier in self.tiers if tier.min_spend_minor > spend_minor), None)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["earn_bonuses"] = [{k: v for k, v in bonus.items() if v is not None} for bonus in body["earn_bonuses"]]
        return body


DEFAULT = Program(currency="EUR", point_value_minor=1, earn_points_per_unit=1, earn_unit_minor=100,
                  earn_per_order_points=0, earn_bonuses=(),
                  tiers=(Tier("Member", 0, PPM), Tier("Silver", 50_000, 1_250_000), Tier("Gold", 150_000, 1_500_000)),
                  expiry_months=12, notice_days=30, offline_store_budget_points=5_000,
                  offline_customer_cap_points=1_000)
"""The program of a tenant that has not set one: 1 point per currency unit, a point worth one minor unit."""


OPTIONAL = frozenset({"adjust_max_points"})
"""Fields a program may leave out (added after the first programs were saved): the default, or what was saved."""


def _count(where: str, value: Any, maximum: int = MAX_POINTS, minimum: int = 0) -> int:
    return validators.integer(where, value, minimum, maximum)


def _bonus(where: str, value: Any) -> Bonus:
    if not isinstance(value, dict) or set(value) - {"sku", "category", "points_per_unit"}:
        raise validators.Invalid(where, "must be {sku or category, points_per_unit}")
    if ("sku" in value) == ("category" in value):
        raise validators.Invalid(where, "names either a sku or a category, not both nor neither")
    sku = validators.token(f"{where}.sku", value["sku"]) if "sku" in value else None
    category = validators.text(f"{where}.category", value["category"], max_length=120) if "category" in value \
        else None
    return Bonus(sku, category, _count(f"{where}.points_per_unit", value.get("points_per_unit"), 10**6, 1))


def _tier(where: str, value: Any) -> Tier:
    if not isinstance(value, dict) or set(value) != {"name", "min_spend_minor", "multiplier_ppm"}:
        raise validators.Invalid(where, "must be {name, min_spend_minor, multiplier_ppm}")
    return Tier(tier_name(f"{where}.name", value["name"]),
                validators.minor_units(f"{where}.min_spend_minor", value["min_spend_minor"]),
                _count(f"{where}.multiplier_ppm", value["multiplier_ppm"], MAX_MULTIPLIER_PPM, PPM))


def _items(where: str, value: Any, most: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > most:
        raise validators.Invalid(where, f"must be a list of at most {most}")
    return value


def from_json(currency: str, body: Any) -> Program:
    """An administrator's program, checked: every field present, tiers by rising threshold from 0 with distinct
    names, multipliers of at least 1x (a tier never earns less than the base)."""
    if not isinstance(body, dict):
        raise validators.Invalid("program", f"must be an object, got {validators.describe(body)}")
    known = set(DEFAULT.to_json()) - {"currency"}
    if unknown := sorted(set(body) - known - {"currency"}):
        raise validators.Invalid(unknown[0], "is not a field of a loyalty program")
    if missing := sorted(known - set(body) - OPTIONAL):
        raise validators.Invalid(missing[0], "is needed")
    tiers = tuple(_tier(f"tiers[{i}]", tier) for i, tier in enumerate(_items("tiers", body["tiers"], MAX_TIERS)))
    if not tiers or tiers[0].min_spend_minor != 0:
        raise validators.Invalid("tiers", "must start with a tier from 0 spend (every customer is in one)")
    if any(a.min_spend_minor >= b.min_spend_minor for a, b in zip(tiers, tiers[1:], strict=False)):
        raise validators.Invalid("tiers", "must go up by min_spend_minor, each higher than the one before")
    if len({tier.name for tier in tiers}) != len(tiers):
        raise validators.Invalid("tiers", "names a tier twice")
    return Program(
        currency=currency,
        point_value_minor=_count("point_value_minor", body["point_value_minor"], 10**6, 1),
        earn_points_per_unit=_count("earn_points_per_unit", body["earn_points_per_unit"], 10**6),
        earn_unit_minor=_count("earn_unit_minor", body["earn_unit_minor"], 10**9, 1),
        earn_per_order_points=_count("earn_per_order_points", body["earn_per_order_points"], 10**6),
        earn_bonuses=tuple(_bonus(f"earn_bonuses[{i}]", bonus)
                           for i, bonus in enumerate(_items("earn_bonuses", body["earn_bonuses"], MAX_BONUSES))),
        tiers=tiers,
        expiry_months=_count("expiry_months", body["expiry_months"], 120),
        notice_days=_count("notice_days", body["notice_days"], 365),
        offline_store_budget_points=_count("offline_store_budget_points", body["offline_store_budget_points"]),
        offline_customer_cap_points=_count("offline_customer_cap_points", body["offline_customer_cap_points"]),
        adjust_max_points=_count("adjust_max_points", body.get("adjust_max_points", DEFAULT.adjust_max_points),
                                 minimum=1))


async def load(conn: asyncpg.Connection, tenant: str) -> Program:
    """The tenant's program (DEFAULT in the tenant's currency when none was saved)."""
    row = await conn.fetchrow("SELECT t.currency, p.* FROM tenants t LEFT JOIN loyalty_programs p USING (tenant)"
                              " WHERE t.tenant = $1", tenant)
    if row is None or row["point_value_minor"] is None:
        return replace(DEFAULT, currency=row["currency"].strip() if row else DEFAULT.currency)
    body = {name: row[name] for name in set(DEFAULT.to_json()) - {"currency"}}
    body["earn_bonuses"], body["tiers"] = json.loads(row["earn_bonuses"]), json.loads(row["tiers"])
    return from_json(row["currency"].strip(), body)


async def save(conn: asyncpg.Connection, tenant: str, program: Program, actor: str) -> None:
    body = program.to_json()
    await conn.execute(
        "INSERT INTO loyalty_programs (tenant, point_value_minor, earn_points_per_unit, earn_unit_minor,"
        " earn_per_order_points, earn_bonuses, tiers, expiry_months, notice_days, offline_store_budget_points,"
        " offline_customer_cap_points, updated_by, adjust_max_points) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb,"
        " $8, $9, $10, $11, $12, $13) ON CONFLICT (tenant) DO UPDATE SET point_value_minor = $2, earn_points_per_unit = $3,"
        " earn_unit_minor = $4, earn_per_order_points = $5, earn_bonuses = $6::jsonb, tiers = $7::jsonb,"
        " expiry_months = $8, notice_days = $9, offline_store_budget_points = $10,"
        " offline_customer_cap_points = $11, updated_by = $12, adjust_max_points = $13, updated_at = now()",
        tenant, program.point_value_minor, program.earn_points_per_unit, program.earn_unit_minor,
        program.earn_per_order_points, json.dumps(body["earn_bonuses"]), json.dumps(body["tiers"]),
        program.expiry_months, program.notice_days, program.offline_store_budget_points,
        program.offline_customer_cap_points, actor, program.adjust_max_points)
