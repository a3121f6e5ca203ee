"""The registry entries of the printing drivers: ESC/POS receipt printers and the customer display.

Kept beside drivers/escpos_printer.py and drivers/customer_display.py rather than at their foot only
while those modules are reworked elsewhere; each `register` belongs at the end of its driver's module.
"""

from __future__ import annotations

from drivers.customer_display import CustomerDisplay
from drivers.escpos_printer import EscPosPrinter
from drivers.registry import DriverSpec, Target, register

PRINTER_TIMEOUT_S = 2.0  # bounds each write and status read: a printer that is away is offline quickly


def _open_network_printer(target: Target) -> EscPosPrinter:
    assert target.rule.host is not None and target.rule.port is not None  # the spec needs them
    return EscPosPrinter.network(target.rule.host, target.rule.port, timeout=PRINTER_TIMEOUT_S)


def _open_serial_printer(target: Target) -> EscPosPrinter:
    assert target.rule.path is not None  # the spec needs it
    return EscPosPrinter.serial(target.rule.path, target.rule.baudrate, timeout=PRINTER_TIMEOUT_S)


def _open_usb_printer(target: Target) -> EscPosPrinter:
    assert target.rule.vendor_id is not None and target.rule.product_id is not None  # the spec needs them
    return EscPosPrinter.usb(target.rule.vendor_id, target.rule.product_id, timeout=PRINTER_TIMEOUT_S)


def _open_display(target: Target) -> CustomerDisplay:
    assert target.rule.path is not None  # the spec needs it
    return CustomerDisplay(target.rule.path, target.rule.baudrate)


register(DriverSpec("escpos-network", kind="printer", bus="network", needs=("host", "port"), open=_open_network_printer))
register(DriverSpec("escpos-serial", kind="printer", bus="serial", needs=("path",), open=_open_serial_printer))
register(DriverSpec("escpos-usb", kind="printer", bus="usb", needs=("vendor_id", "product_id"), open=_open_usb_printer))
register(DriverSpec("serial-display", kind="display", bus="serial", needs=("path",), open=_open_display))
