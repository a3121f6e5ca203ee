-- The console's customer search matches part of a name (lower(name) LIKE '%...%'); at a tenant's scale (thousands
-- to a few hundred thousand customers) a scan of the tenant's rows by this index's order is what it costs, and the
-- newest-first listing walks it without a sort.
CREATE INDEX customers_newest ON customers (tenant, created_at DESC, id DESC);
