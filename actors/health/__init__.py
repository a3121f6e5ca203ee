"""The store's health report to the hub (novapos.wire.health): version, outbox, devices, clock, tills, last sale."""
