-- The console's orders and price diffs are read newest first by the hub's receive time, one tenant at a time,
-- narrowed to a store or one of its tills, and paged by keyset (received_at, event_id): each of those reads
-- walks one of these indexes for its page, whatever the history. (tenant, store, completed_at) had no reader.
DROP INDEX sales_received;
DROP INDEX sales_store_time;
CREATE INDEX sales_tenant_received ON sales (tenant, received_at, event_id);
CREATE INDEX sales_store_received ON sales (tenant, store, received_at, event_id);
CREATE INDEX sales_till_received ON sales (tenant, store, till, received_at, event_id);

DROP INDEX sale_price_diffs_found;
CREATE INDEX sale_price_diffs_tenant_found ON sale_price_diffs (tenant, found_at DESC, event_id, line_no);
CREATE INDEX sale_price_diffs_store_found ON sale_price_diffs (tenant, store, found_at DESC, event_id, line_no);
