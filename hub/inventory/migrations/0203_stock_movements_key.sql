-- migration: no-transaction
-- Monthly partitions of the stock ledger (issue 13), step 1 of 4: PARTITION BY RANGE (created_at), the hub's clock
-- when the movement was written (its default, never sent by a store). A partitioned table's unique key must hold
-- the partition key: (id, created_at), built here without a write lock, becomes the legacy partition's key in 0206.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS stock_movements_id_created ON stock_movements (id, created_at);
