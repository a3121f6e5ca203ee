"""The demo: embedded NATS and PostgreSQL, the hub and one store on simulated devices, on one machine.

It stands on top of the product, like the CLI: the only place besides the tests that wires the
simulators of `mocks/` in.
"""
