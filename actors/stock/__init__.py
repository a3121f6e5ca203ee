"""The store's view of stock: asking the hub, over NATS request/reply, what an item has here and nearby."""
