"""The store's loyalty memory for when the hub is away: recent customers, the loyalty settings, the offline points ledger."""
