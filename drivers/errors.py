"""Errors every driver raises, so that device actors handle all hardware alike."""


class DeviceGone(Exception):
    """The device is no longer there (unplugged, port vanished, connection refused or broken).

    A device actor that sees this stops using the device and reports it down; the device manager
    decides, after its debounce, whether the device is really gone.
    """


class DeviceProtocolError(Exception):
    """The device answered something that does not fit its protocol. The bytes are discarded; the device stays."""
