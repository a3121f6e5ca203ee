"""A print job as the POS lays it out: styled lines, then an optional cut and drawer pulse.

Meaning-free for the printer: the ESC/POS driver prints anything shaped like this (its `Printable`
protocol) and imports nothing from here, so drivers stay free of actors.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Align = Literal["left", "center", "right"]
Kind = Literal["text", "qr", "cut"]


@dataclass(frozen=True)
class PrintLine:
    """One line of text with its styling."""

    text: str
    align: Align = "left"
    bold: bool = False
    double: bool = False  # double width and height
    kind: Kind = "text"
    """"qr": `text` printed as a QR code (a receipt's order id, scanned back for a return); "cut": the paper
    is cut here and the job goes on (a card sale's merchant copy after the customer's receipt)."""

    def __post_init__(self) -> None:
        if self.align not in ("left", "center", "right"):
            raise ValueError(f"align must be left, center or right, not {self.align!r}")
        if self.kind not in ("text", "qr", "cut"):
            raise ValueError(f"kind must be text, qr or cut, not {self.kind!r}")


@dataclass(frozen=True)
class PrintDocument:
    """A print job: lines, then an optional cut and drawer pulse."""

    lines: tuple[PrintLine, ...]
    cut: bool = True
    open_drawer: bool = False

    def headed(self, *heading: PrintLine) -> PrintDocument:
        """The same job with `heading` printed above its lines."""
        return replace(self, lines=heading + self.lines)
