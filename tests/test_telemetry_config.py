"""[telemetry] in store.toml and hub.toml: off by default, the environment's endpoint wins, bad values refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from novapos.config import ConfigError, load_hub, load_store
from novapos.config.telemetry import ENDPOINT_ENV, TelemetrySettings

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_the_shipped_configs_leave_traces_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENDPOINT_ENV, raising=False)
    assert load_store(CONFIGS / "demo-store.toml").telemetry == TelemetrySettings()
    assert load_hub(CONFIGS / "hub.toml").telemetry == TelemetrySettings()


def test_settings_and_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENDPOINT_ENV, raising=False)
    path = tmp_path / "hub.toml"
    path.write_text('[telemetry]\notlp_endpoint = "https://otel.example:4318"\nservice_name = "hub-eu-1"\n'
                    'sample_ratio = 0.25\n')
    assert load_hub(path).telemetry == TelemetrySettings("https://otel.example:4318", "hub-eu-1", 0.25)
    monkeypatch.setenv(ENDPOINT_ENV, "http://collector:4318")
    assert load_hub(path).telemetry.otlp_endpoint == "http://collector:4318"


@pytest.mark.parametrize(("table", "says"), [
    ('otlp_endpoint = "collector:4318"', "http:// or https://"),
    ('otlp_endpoint = "file:///etc/passwd"', "http:// or https://"),
    ("otlp_endpoint = 4318", "must be text"),
    ('otlp_endpoint = "http://a\\u0000b"', "otlp_endpoint"),
    ("sample_ratio = 1.5", "from 0.0 to 1.0"),
    ("sample_ratio = -0.1", "from 0.0 to 1.0"),
    ("sample_ratio = true", "from 0.0 to 1.0"),
    ('sample_ratio = "all"', "from 0.0 to 1.0"),
    ('service_name = "edge box/1"', "service_name"),
    ('exporter = "jaeger"', "unknown setting(s) [telemetry] exporter"),
])
def test_bad_telemetry_settings_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str,
                                            says: str) -> None:
    monkeypatch.delenv(ENDPOINT_ENV, raising=False)
    shipped = (CONFIGS / "demo-store.toml").read_text()
    path = tmp_path / "store.toml"
    path.write_text(shipped[:shipped.index("[telemetry]")] + f"[telemetry]\n{table}\n")
    with pytest.raises(ConfigError, match=re.escape(says)):
        load_store(path)
