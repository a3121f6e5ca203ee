"""The Prometheus configuration in configs/prometheus: promtool accepts it, every alert is unit-tested (it fires, and
stays quiet where it should), and every alert's runbook link lands on a section that exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "configs" / "prometheus"
RULE_FILES = sorted(PROMETHEUS.glob("*.rules.yml"))
UNIT_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make test` installs it (apt-get install prometheus)"
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=PROMETHEUS)


def _alerts() -> list[dict]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule]


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_promtool_accepts_the_rules_and_the_scrape_config() -> None:
    rules = _promtool("check", "rules", *(path.name for path in RULE_FILES))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = _promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    # the config loads exactly the rule files there are, so a new one is not forgotten
    loaded = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["rule_files"]
    assert sorted(loaded) == [path.name for path in RULE_FILES]


def test_every_alert_passes_its_unit_tests() -> None:
    result = _promtool("test", "rules", *(str(path.relative_to(PROMETHEUS)) for path in UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS)


def test_every_alert_is_unit_tested_firing_at_each_severity_and_quiet() -> None:
    fired: set[tuple[str, str]] = set()
    quiet: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                fired |= {(check["alertname"], alert["exp_labels"]["severity"]) for alert in expected}
                if not expected:
                    quiet.add(check["alertname"])
    rules = {(rule["alert"], rule["labels"]["severity"]) for rule in _alerts()}
    assert rules - fired == set(), "alerts (and severities) no unit test sees fire"
    assert {name for name, _ in rules} - quiet == set(), "alerts no unit test checks stay quiet"
    assert fired - rules == set(), "unit tests of alerts that do not exist"


def test_every_alert_links_its_runbook_section() -> None:
    for rule in _alerts():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        url = rule["annotations"]["runbook_url"]
        if rule["alert"].startswith("NovaPos"):  # the fleet's alerts: docs/runbook.md, one section each
            assert url == f"docs/runbook.md#{rule['alert'].lower()}"
        document, _, anchor = url.partition("#")
        headings = [line.lstrip("#") for line in (ROOT / document).read_text().splitlines() if line.startswith("#")]
        assert anchor in {_anchor(heading) for heading in headings}, f"{rule['alert']}: no section for {url}"
