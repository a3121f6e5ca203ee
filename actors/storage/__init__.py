"""The store's local storage: one SQLite file (schema and migrations), the outbox of events, the
forwarder that drains it to the hub, and the tills' saved sessions and carts."""
