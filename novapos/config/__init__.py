"""Store and hub configuration: TOML files in configs/, with environment overrides for deployments.

NOVAPOS_NATS_URL and NOVAPOS_DATABASE_URL override the TOML, so one config file serves the demo
(embedded servers) and a real store (a real cluster). A config that cannot run is refused at load,
with a ConfigError whose sentence says which setting to fix.
"""

from novapos.config.devices import DeviceRule, DevicesConfig, load_devices
from novapos.config.hub import AuditSettings, ConsoleSettings, HubConfig, load_hub
from novapos.config.reading import ConfigError
from novapos.config.store import StoreConfig, load_store

__all__ = ["AuditSettings", "ConfigError", "ConsoleSettings", "DeviceRule", "DevicesConfig", "HubConfig", "StoreConfig",
           "load_devices", "load_hub", "load_store"]
