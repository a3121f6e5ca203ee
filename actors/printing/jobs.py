"""Print documents as plain data, so jobs can wait in the spool file and cross actor boundaries."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from actors.printing.document import PrintDocument, PrintLine


def document_to_wire(document: PrintDocument) -> dict[str, Any]:
    return asdict(document)


def document_from_wire(data: dict[str, Any]) -> PrintDocument:
    return PrintDocument(lines=tuple(PrintLine(**line) for line in data["lines"]),
                         cut=bool(data.get("cut", True)), open_drawer=bool(data.get("open_drawer", False)))
