"""The store's settings: who it is, its tills and products, where its state lives, its devices."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from novapos.config.devices import DEVICE_NAME, DevicesConfig, load_devices
from novapos.config.reading import ConfigError, http_port, read_toml, require, table
from novapos.money import Money


@dataclass(frozen=True)
class Product:
    sku: str
    barcode: str
    name: str
    price: Money


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
    devices: DevicesConfig = DevicesConfig()
    forward_batch: int = 256

    def check_runnable(self) -> None:
        """Refuse, with what to do, a config that `novapos edge` cannot run."""
        if not self.nats_url:
            raise ConfigError("no NATS address: set NOVAPOS_NATS_URL or [nats] url in the store config, "
                              "or run `novapos demo` for embedded servers")
        for till in self.tills:
            if self.devices.for_till("printer", till) is None:
                raise ConfigError(f"no receipt printer serves till {till!r}: add a [[devices.rules]] printer")


def _products(data: dict[str, Any], where: str, currency: str) -> tuple[Product, ...]:
    products: list[Product] = []
    barcodes: dict[str, str] = {}
    for index, raw in enumerate(data.get("products", [])):
        item = f"{where} products[{index}]"
        sku, barcode, name = (require(raw, key, str, item).strip() for key in ("sku", "barcode", "name"))
        price = require(raw, "price", int, item)
        if not (sku and barcode and name):
            raise ConfigError(f"{item}: sku, barcode and name must not be empty")
        if len(sku) > 64 or len(barcode) > 64 or len(name) > 200:
            raise ConfigError(f"{item}: sku and barcode are at most 64 characters, name at most 200")
        if not 0 <= price <= 10**9:
            raise ConfigError(f"{item}: price is in minor units (cents) and must be from 0 to 10^9, got {price}")
        if barcode in barcodes:
            raise ConfigError(f"{item}: barcode {barcode} is already product {barcodes[barcode]}'s")
        barcodes[barcode] = sku
        products.append(Product(sku=sku, barcode=barcode, name=name, price=Money(price, currency)))
    return tuple(products)


def load_store(path: Path) -> StoreConfig:
    data = read_toml(path)
    where = str(path)
    currency = require(data, "currency", str, where)
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ConfigError(f"{where}: currency must be a three-letter ISO code such as EUR, got {currency!r}")
    products = _products(data, where, currency)
    http, nats, state, devices = (table(data, key) for key in ("http", "nats", "state", "devices"))
    tills = tuple(data.get("tills", ["till-1"]))
    if not tills or not all(isinstance(till, str) and DEVICE_NAME.match(till) for till in tills):
        raise ConfigError(f"{where}: tills must be a list of 1-64 letters, digits, '-' or '_', got {list(tills)}")
    if len(set(tills)) != len(tills):
        raise ConfigError(f"{where}: till names must be unique, got {list(tills)}")
    return StoreConfig(
        tenant=require(data, "tenant", str, where), store=require(data, "store", str, where),
        currency=currency, tills=tills, products=products,
        http_host=http.get("host", "127.0.0.1"), http_port=http_port(http, where, 8600),
        nats_url=os.environ.get("NOVAPOS_NATS_URL") or nats.get("url", ""),
        state_dir=Path(state.get("dir", f".state/{data['store']}")),
        devices=load_devices(devices, where, tills),
    )


