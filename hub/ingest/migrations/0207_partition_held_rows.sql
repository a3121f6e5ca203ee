-- Monthly partitions, after 0202: the rows 0200 moved aside (an event id above the legacy bound: a store clock far
-- ahead, an id that is no UUIDv7) go back, through the partitioned tables: into the default partition, or a month's
-- once hub.partitions makes it (it takes them over from there). Usually none.
INSERT INTO inbox SELECT * FROM partition_held_inbox;
INSERT INTO sales SELECT * FROM partition_held_sales;
INSERT INTO sale_lines SELECT * FROM partition_held_sale_lines;
INSERT INTO sale_tenders SELECT * FROM partition_held_sale_tenders;
-- lock-ok: contract: 0200's holding tables, read by nothing else
DROP TABLE partition_held_inbox, partition_held_sales, partition_held_sale_lines, partition_held_sale_tenders;
