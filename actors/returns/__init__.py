"""Returns and exchanges at the store: its own sales journal (what is still returnable) and the sale lookup."""
