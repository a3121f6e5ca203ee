"""docs/metrics.md lists every metric the code defines, with its type and labels, and nothing the code no longer
defines: read from the source (every Counter, Gauge, Histogram, Summary defined with a literal name), so that a
metric cannot be added, renamed or relabelled without the operators' list following."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("actors", "drivers", "edge", "edge_runtime", "hub", "novapos")
KINDS = {"Counter": "counter", "Gauge": "gauge", "Histogram": "histogram", "Summary": "summary"}
ROW = re.compile(r"^\| `(novapos_[a-z_]+)` \| ([a-z]+) \| ([a-z_, ]*) \| (.+) \|$")

Defined = dict[str, tuple[str, tuple[str, ...]]]


def literal_labels(call: ast.Call) -> tuple[str, ...]:
    labels = call.args[2] if len(call.args) > 2 else next(
        (keyword.value for keyword in call.keywords if keyword.arg == "labelnames"), None)
    if labels is None:
        return ()
    value = ast.literal_eval(labels)  # a computed label list would be a list nobody can read: refused here
    return tuple(value)


def defined_in_code() -> Defined:
    found: Defined = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in KINDS
                        and node.args and isinstance(node.args[0], ast.Constant)
                        and str(node.args[0].value).startswith("novapos_")):
                    name, kind = str(node.args[0].value), KINDS[node.func.id]
                    # prometheus_client would add _total; the source says it, so that grep finds what docs list
                    assert kind != "counter" or name.endswith("_total"), f"{path}: counter {name} without _total"
                    assert name not in found, f"{name} defined twice ({path})"
                    found[name] = (kind, literal_labels(node))
    return found


def documented() -> Defined:
    rows: Defined = {}
    for line in (ROOT / "docs" / "metrics.md").read_text().splitlines():
        if match := ROW.match(line):
            name, kind, labels, meaning = match.groups()
            assert name not in rows, f"{name} listed twice"
            assert meaning.strip(), f"{name} has no meaning"
            rows[name] = (kind, tuple(label.strip() for label in labels.split(",") if label.strip()))
    return rows


def test_every_metric_in_the_code_is_in_docs_metrics_md_with_its_type_and_labels() -> None:
    code, docs = defined_in_code(), documented()
    assert len(code) > 80  # the scan finds them (a broken scan would compare two empty lists)
    assert sorted(set(code) - set(docs)) == [], "defined but not in docs/metrics.md"
    assert sorted(set(docs) - set(code)) == [], "in docs/metrics.md but no longer defined"
    assert {name: kind for name, kind in code.items() if docs[name] != kind} == {}, "type or labels differ"
