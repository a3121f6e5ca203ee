"""The store's side of payments at the hub: asking the hub about a tender (actors.payments.asking), and the
payment events the hub sends down to the store."""
