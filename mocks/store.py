"""The demo store's hardware, simulated on real OS interfaces, and the commands that play with it.

What configs/demo-store.toml describes: a network ESC/POS printer on a loopback TCP port, a HID POS
scanner on a simulated HID bus (served over a unix socket, since hidapi cannot see virtual devices),
and on pseudo-terminals a serial scanner, a serial cash drawer, a payment terminal and a 2x20
customer display. `devices()`
rewrites the store's device rules to point at them; `command()` is what `novapos mock` runs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.hid_socket import SETTING_PREFIX as HID_SOCKET
from mocks.cash_drawer import SerialDrawerMock
from mocks.control import CommandError, ControlServer
from mocks.customer_display import CustomerDisplayMock
from mocks.hid_bus import HidBusServer, SimulatedHidBus
from mocks.network_printer import MockNetworkPrinter
from mocks.payment_terminal import Approval, PaymentTerminalMock
from mocks.pty_device import PtySerialDevice
from mocks.serial_scanner import SerialScannerMock

HID_SCANNER: dict[str, Any] = {"path": b"sim-usb-1-1:1.0", "vendor_id": 0x05E0, "product_id": 0x1200,
               "serial_number": "SIM-0001", "product": "Simulated HID POS scanner", "mode": "pos"}

HELP = """commands:
  list                           every simulated device and whether it is plugged in
  plug NAME | unplug NAME        hot-plug a device (the store notices within a second or two)
  scan NAME BARCODE              scan a barcode on a scanner (scanner-1 is HID, scanner-2 serial)
  paper NAME ok|near_end|out     the printer's paper sensor
  fault NAME cover_open|cutter|unrecoverable|recoverable|none   a printer fault, or clear it
  close-drawer NAME              the cashier pushes a drawer shut
  card NAME approve|decline [SCHEME] [sign]   present a card (VISA, MASTERCARD, AMEX; sign: the scheme
                                 asks for a signature) to a terminal waiting for one
  card NAME cancel               the customer presses cancel on the terminal's keypad
  screen NAME                    what the customer display shows now
  receipt NAME [N]               the N-th last receipt the printer cut (default 1: the last one)
  kicks NAME                     how many drawer pulses the printer ran (a drawer on the printer)"""


class SimulatedStore:
    def __init__(self, state_dir: Path, printer_port: int = 0, terminal_auto_approve: float | None = 3.0,
                 report_approval: Callable[[Approval], None] | None = None) -> None:
        """report_approval: told of each payment the terminal approves (the demo's acquirer simulator)."""
        dev = state_dir / "dev"
        dev.mkdir(parents=True, exist_ok=True)
        self.control_socket = state_dir / "mock.sock"
        self.printer = MockNetworkPrinter(port=printer_port)
        self.hid_bus = SimulatedHidBus()
        self.hid_server = HidBusServer(self.hid_bus, state_dir / "hid.sock")
        self.serial: dict[str, PtySerialDevice] = {
            "scanner-2": SerialScannerMock(dev / "scanner-2"),
            "drawer-2": SerialDrawerMock(dev / "drawer-2"),
            "terminal-1": PaymentTerminalMock(dev / "terminal-1", auto_approve_after=terminal_auto_approve,
                                              report_approval=report_approval),
            "display-1": CustomerDisplayMock(dev / "display-1"),
        }
        self._hid_plugged = False
        self._control = ControlServer(self.control_socket, self.command)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> SimulatedStore:
        self.printer.start()
        self.hid_server.start()
        self._plug_hid()
        for device in self.serial.values():
            device.plug()
        self._control.start()
        return self

    def stop(self) -> None:
        self._control.stop()
        for device in self.serial.values():
            device.close()
        self.hid_server.stop()
        self.printer.stop()

    def __enter__(self) -> SimulatedStore:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def devices(self, table: dict[str, Any]) -> dict[str, Any]:
        """The store's [devices] table pointed at this simulated hardware."""
        table = copy.deepcopy(table)
        table["hid_backend"] = f"{HID_SOCKET}{self.hid_server.socket_path}"
        for rule in table.get("rules", []):
            if rule["driver"] == "escpos-network":
                rule["host"], rule["port"] = "127.0.0.1", self.printer.port
            elif rule["name"] in self.serial:
                rule["path"] = str(self.serial[rule["name"]].path)
        return table

    # -- plugging --------------------------------------------------------------------------

    def _plug_hid(self) -> None:
        self.hid_bus.add_device(**HID_SCANNER)
        self._hid_plugged = True

    def plug(self, name: str) -> None:
        if name == "receipt-printer":
            self.printer.set_online(True)
        elif name == "scanner-1":
            if not self._hid_plugged:
                self._plug_hid()
        elif name in self.serial:
            if not self.serial[name].plugged:
                self.serial[name].plug()
        else:
            raise CommandError(f"no simulated device {name!r}; try `list`")

    def unplug(self, name: str) -> None:
        if name == "receipt-printer":
            self.printer.set_online(False)
        elif name == "scanner-1":
            if self._hid_plugged:
                self.hid_bus.remove_device(HID_SCANNER["path"])
                self._hid_plugged = False
        elif name in self.serial:
            self.serial[name].unplug()
        else:
            raise CommandError(f"no simulated device {name!r}; try `list`")

    # -- commands --------------------------------------------------------------------------

    def command(self, words: list[str]) -> str:
        if not words or words[0] in ("help", "-h", "--help"):
            return HELP
        verb, args = words[0], words[1:]
        if verb == "list":
            return "\n".join(f"{name:16} {kind:9} {'plugged' if plugged else 'UNPLUGGED'}"
                             for name, kind, plugged in self._inventory())
        if verb in ("plug", "unplug") and len(args) == 1:
            getattr(self, verb)(args[0])
            return f"{args[0]} {verb}ged"
        if verb == "scan" and len(args) == 2:
            return self._scan(*args)
        if verb == "paper" and len(args) == 2 and args[0] == "receipt-printer":
            if args[1] not in ("ok", "near_end", "out"):
                raise CommandError("paper state must be ok, near_end or out")
            self.printer.set_paper(args[1])  # type: ignore[arg-type]
            return f"receipt-printer paper {args[1]}"
        if verb == "fault" and len(args) == 2 and args[0] == "receipt-printer":
            fault = None if args[1] == "none" else args[1]
            try:
                self.printer.set_fault(fault)  # type: ignore[arg-type]
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            return f"receipt-printer fault {args[1]}"
        if verb == "close-drawer" and args == ["drawer-2"]:
            drawer = self.serial["drawer-2"]
            assert isinstance(drawer, SerialDrawerMock)
            drawer.close_drawer()
            return "drawer-2 closed"
        if verb == "card" and 2 <= len(args) <= 4 and args[0] == "terminal-1":
            return self._card(args[1:])
        if verb == "screen" and args == ["display-1"]:
            display = self.serial["display-1"]
            assert isinstance(display, CustomerDisplayMock)
            top, bottom = display.lines
            return f"+{'-' * len(top)}+\n|{top}|\n|{bottom}|\n+{'-' * len(top)}+"
        if verb == "receipt" and args[:1] == ["receipt-printer"] and len(args) <= 2:
            return self._receipt(args[1] if len(args) == 2 else "1")
        if verb == "kicks" and args == ["receipt-printer"]:
            return f"receipt-printer ran {len(self.printer.drawer_kicks)} drawer pulse(s)"
        raise CommandError(f"cannot do {' '.join(words)!r}\n{HELP}")

    def _card(self, args: list[str]) -> str:
        terminal = self.serial["terminal-1"]
        assert isinstance(terminal, PaymentTerminalMock)
        try:
            if args == ["cancel"]:
                terminal.customer_cancel()
                return "the customer cancelled at terminal-1"
            scheme = args[1].upper() if len(args) > 1 else "VISA"
            if args[0] not in ("approve", "decline") or not scheme.isalpha() or args[2:] not in ([], ["sign"]):
                raise CommandError("card terminal-1 approve|decline [SCHEME] [sign], or card terminal-1 cancel")
            terminal.present_card(approve=args[0] == "approve", scheme=scheme, signature=args[2:] == ["sign"])
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        return f"{scheme} card presented to terminal-1 ({args[0]})"

    def _receipt(self, back: str) -> str:
        receipts = self.printer.receipts
        if not back.isdigit() or not 1 <= int(back) <= max(len(receipts), 1):
            raise CommandError(f"the printer has cut {len(receipts)} receipt(s): ask for 1 to {len(receipts)}")
        if not receipts:
            raise CommandError("the printer has cut no receipt yet")
        return receipts[-int(back)]

    def _scan(self, name: str, barcode: str) -> str:
        if name == "scanner-1":
            if not self._hid_plugged:
                raise CommandError("scanner-1 is unplugged")
            self.hid_bus.scan(HID_SCANNER["path"], barcode)
        elif name == "scanner-2" and isinstance(scanner := self.serial["scanner-2"], SerialScannerMock):
            if not scanner.plugged:
                raise CommandError("scanner-2 is unplugged")
            scanner.scan(barcode)
        else:
            raise CommandError(f"{name!r} is not a scanner (scanner-1, scanner-2)")
        return f"{name} scanned {barcode}"

    def _inventory(self) -> list[tuple[str, str, bool]]:
        return [("receipt-printer", "printer", self.printer.online), ("scanner-1", "scanner", self._hid_plugged)] + \
            [(name, name.rsplit("-", 1)[0], device.plugged) for name, device in self.serial.items()]
