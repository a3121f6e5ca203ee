"""Cash control at the store: drawer sessions (float, moves, no-sales, blind close), their ledger kept in the
outbox's transactions (journal) and the X and Z reports (report); actors.printing.reports prints them."""
