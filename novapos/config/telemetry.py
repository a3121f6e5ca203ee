"""The [telemetry] table, in store.toml and hub.toml alike: where traces go (novapos.tracing).

An empty `otlp_endpoint` (the default) is traces off; OTEL_EXPORTER_OTLP_ENDPOINT, the OpenTelemetry
variable every collector's documentation names, overrides it, as NOVAPOS_NATS_URL does [nats] url.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from novapos import validators
from novapos.config.reading import ConfigError

KEYS = frozenset({"otlp_endpoint", "service_name", "sample_ratio"})
ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"


@dataclass(frozen=True)
class TelemetrySettings:
    otlp_endpoint: str = ""
    """The OTLP/HTTP collector's base address (http://collector:4318); spans go to its /v1/traces. Empty: off."""
    service_name: str = ""
    """service.name on every span; empty: the process's own (novapos-edge, novapos-hub)."""
    sample_ratio: float = 1.0
    """The share of traces kept, decided where a trace starts (the till's request) and followed downstream."""


def load_telemetry(table: Mapping[str, Any], where: str) -> TelemetrySettings:
    """The table's settings, checked; the environment's endpoint wins over the file's."""
    try:
        endpoint = os.environ.get(ENDPOINT_ENV) or table.get("otlp_endpoint", "")
        if endpoint != "":
            endpoint = validators.text(f"{where}: [telemetry] otlp_endpoint", endpoint, max_length=1024)
        if endpoint and not endpoint.startswith(("http://", "https://")):
            raise validators.Invalid(f"{where}: [telemetry] otlp_endpoint (or {ENDPOINT_ENV})",
                                     "must be an http:// or https:// address, such as http://collector:4318")
        service = table.get("service_name", "")
        if service:
            service = validators.token(f"{where}: [telemetry] service_name", service)
        ratio = table.get("sample_ratio", 1.0)
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0.0 <= ratio <= 1.0:
            raise validators.Invalid(f"{where}: [telemetry] sample_ratio", "must be a number from 0.0 to 1.0")
    except validators.Invalid as exc:
        raise ConfigError(str(exc)) from None
    return TelemetrySettings(endpoint, service, float(ratio))
