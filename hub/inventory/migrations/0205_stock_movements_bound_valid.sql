-- Monthly partitions of the stock ledger, step 3 of 4: the old rows checked against 0204's bound, under SHARE UPDATE
-- EXCLUSIVE (sales and stock operations go on).
ALTER TABLE stock_movements VALIDATE CONSTRAINT stock_movements_before_partitions;
