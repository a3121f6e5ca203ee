-- Recent sales and a store's last sale follow the hub's receive time, not the store's clock: a store whose
-- clock is years ahead must not hold the top of the console for good.
ALTER TABLE sales ADD COLUMN received_at timestamptz NOT NULL DEFAULT now();
UPDATE sales s SET received_at = i.received_at FROM inbox i WHERE i.event_id = s.event_id;
CREATE INDEX sales_received ON sales (received_at);
DROP INDEX sales_completed;
UPDATE store_takings t SET last_sale = r.last_received
FROM (SELECT tenant, store, currency, max(received_at) AS last_received FROM sales GROUP BY tenant, store, currency) r
WHERE (t.tenant, t.store, t.currency) = (r.tenant, r.store, r.currency);
