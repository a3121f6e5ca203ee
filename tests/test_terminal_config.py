"""The store config's [terminal] table: defaults, bounds, and a misspelled setting refused."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w

from novapos.config import load_store
from novapos.config.reading import ConfigError
from novapos.config.terminal import TerminalSettings

DEMO = Path(__file__).resolve().parent.parent / "configs" / "demo-store.toml"


def _with_terminal(tmp_path: Path, terminal: dict[str, object] | None) -> Path:
    data = tomllib.loads(DEMO.read_text())
    data.pop("terminal", None)
    if terminal is not None:
        data["terminal"] = terminal
    path = tmp_path / "store.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def test_the_demo_documents_the_defaults_takes_cards_offline_and_an_absent_table_means_the_defaults(tmp_path: Path) -> None:
    assert TerminalSettings() == TerminalSettings(timeout_s=90, poll_ms=300, offline_cards=False)
    assert load_store(DEMO).terminal == TerminalSettings(offline_cards=True)  # the demo takes cards offline, limited
    assert load_store(_with_terminal(tmp_path, None)).terminal == TerminalSettings()
    assert load_store(_with_terminal(tmp_path, {"timeout_s": 30, "poll_ms": 250})).terminal == TerminalSettings(30, 250)
    assert load_store(_with_terminal(tmp_path, {"offline_cards": True})).terminal == TerminalSettings(offline_cards=True)


@pytest.mark.parametrize(("terminal", "says"), [
    ({"timeout_s": 0}, "[terminal] timeout_s"), ({"timeout_s": 601}, "[terminal] timeout_s"),
    ({"poll_ms": 10}, "[terminal] poll_ms"), ({"poll_ms": "300"}, "[terminal] poll_ms"),
    ({"timeout": 30}, "timeout"), ({"offline_cards": "yes"}, "[terminal] offline_cards"),
])
def test_a_bad_or_misspelled_setting_is_refused_naming_it(tmp_path: Path, terminal: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_store(_with_terminal(tmp_path, terminal))
    assert says in str(refused.value)
