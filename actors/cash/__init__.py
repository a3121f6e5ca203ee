"""Cash control at the store: drawer sessions (float, moves, no-sales, blind close), their ledger kept in the
outbox's transactions (journal), the X and Z reports (report) and their print layout (report_print)."""
