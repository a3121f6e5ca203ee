-- migration: no-transaction
-- Retiring a month of the inbox (hub.partitions) first asks whether any of its events was received within the
-- retention (a store clock behind), under an exclusive lock on that month: a BRIN index on received_at answers from a
-- few summary pages instead of a scan of the month (rows are written in the order received, so each block range's
-- times are close together; at a million rows a month: measured in docs/scaling.md). Built partition by partition
-- without a write lock (hub.db); months made later get it as they are attached. A few pages per million rows.
CREATE INDEX CONCURRENTLY IF NOT EXISTS inbox_received ON inbox USING brin (received_at);
