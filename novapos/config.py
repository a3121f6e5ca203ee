"""Store and hub configuration: TOML files in configs/, with environment overrides for deployments.

NOVAPOS_NATS_URL and NOVAPOS_DATABASE_URL override the TOML, so one config file serves the demo
(embedded servers) and a real store (a real cluster).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from novapos.money import Money


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which setting and why."""


@dataclass(frozen=True)
class Product:
    sku: str
    barcode: str
    name: str
    price: Money


@dataclass(frozen=True)
class PrinterConfig:
    host: str
    port: int = 9100


@dataclass(frozen=True)
class StoreConfig:
    tenant: str
    store: str
    currency: str
    tills: tuple[str, ...]
    products: tuple[Product, ...]
    http_host: str = "127.0.0.1"
    http_port: int = 8600
    nats_url: str = ""
    state_dir: Path = Path(".state/store")
    printer: PrinterConfig | None = None
    forward_batch: int = 256

    def check_runnable(self) -> None:
        """Refuse, with what to do, a config that `novapos edge` cannot run."""
        if not self.nats_url:
            raise ConfigError("no NATS address: set NOVAPOS_NATS_URL or [nats] url in the store config, "
                              "or run `novapos demo` for embedded servers")
        if self.printer is None:
            raise ConfigError("the store config has no [printer] host: every till needs a receipt printer")


@dataclass(frozen=True)
class HubConfig:
    tenants: tuple[str, ...] = ("demo",)
    http_host: str = "127.0.0.1"
    http_port: int = 8700
    nats_url: str = ""
    database_url: str = ""
    ingest_batch: int = 256

    def check_runnable(self) -> None:
        if not self.nats_url or not self.database_url:
            raise ConfigError("the hub needs NOVAPOS_NATS_URL and NOVAPOS_DATABASE_URL (or [nats] url and "
                              "[database] url in its config), or run `novapos demo` for embedded servers")


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] must be a table")
    return value


def _require(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise ConfigError(f"{where}: missing required setting '{key}'")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{where}: '{key}' must be a {kind.__name__}, got {value!r}")
    return value


def load_store(path: Path) -> StoreConfig:
    data = tomllib.loads(path.read_text())
    where = str(path)
    currency = _require(data, "currency", str, where)
    products = []
    for index, raw in enumerate(data.get("products", [])):
        item = f"{where} products[{index}]"
        products.append(Product(
            sku=_require(raw, "sku", str, item), barcode=_require(raw, "barcode", str, item),
            name=_require(raw, "name", str, item), price=Money(_require(raw, "price", int, item), currency),
        ))
    http, nats, state, printer = (_table(data, key) for key in ("http", "nats", "state", "printer"))
    tills = tuple(data.get("tills", ["till-1"]))
    if not tills:
        raise ConfigError(f"{where}: a store needs at least one till")
    return StoreConfig(
        tenant=_require(data, "tenant", str, where), store=_require(data, "store", str, where),
        currency=currency, tills=tills, products=tuple(products),
        http_host=http.get("host", "127.0.0.1"), http_port=int(http.get("port", 8600)),
        nats_url=os.environ.get("NOVAPOS_NATS_URL") or nats.get("url", ""),
        state_dir=Path(state.get("dir", f".state/{data['store']}")),
        printer=PrinterConfig(printer["host"], int(printer.get("port", 9100))) if printer.get("host") else None,
    )


def load_hub(path: Path) -> HubConfig:
    data = tomllib.loads(path.read_text())
    http, nats, database = (_table(data, key) for key in ("http", "nats", "database"))
    return HubConfig(
        tenants=tuple(data.get("tenants", ["demo"])),
        http_host=http.get("host", "127.0.0.1"), http_port=int(http.get("port", 8700)),
        nats_url=os.environ.get("NOVAPOS_NATS_URL") or nats.get("url", ""),
        database_url=os.environ.get("NOVAPOS_DATABASE_URL") or database.get("url", ""),
    )
