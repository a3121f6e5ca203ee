-- Monthly partitions, step 2 of 3: the old rows checked against 0200's bound, under SHARE UPDATE EXCLUSIVE
-- (ingest and the console go on; at ten million sales each takes seconds).
ALTER TABLE inbox VALIDATE CONSTRAINT inbox_before_partitions;
ALTER TABLE sales VALIDATE CONSTRAINT sales_before_partitions;
ALTER TABLE sale_lines VALIDATE CONSTRAINT sale_lines_before_partitions;
ALTER TABLE sale_tenders VALIDATE CONSTRAINT sale_tenders_before_partitions;
