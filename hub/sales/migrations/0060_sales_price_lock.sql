-- sale.completed v2 (P5-05): each line keeps the price lock it was sold under (the catalog version it was
-- priced from and its tax rule), each sale its tax total. A v1 sale (an older store's) has NULL there: it
-- carried no lock. `v` is the event's schema version, so a reader knows which of the two a row is.
ALTER TABLE sales
    ADD COLUMN v                smallint NOT NULL DEFAULT 1,
    ADD COLUMN tax_total_minor  bigint CHECK (tax_total_minor >= 0);

ALTER TABLE sale_lines
    ADD COLUMN catalog_version  bigint,
    ADD COLUMN tax_class        text,
    ADD COLUMN tax_rate_ppm     integer CHECK (tax_rate_ppm BETWEEN 0 AND 1000000),
    ADD COLUMN tax_included     boolean,
    ADD COLUMN tax_minor        bigint CHECK (tax_minor >= 0),
    ADD CONSTRAINT sale_lines_price_lock_whole
        CHECK (num_nulls(catalog_version, tax_class, tax_rate_ppm, tax_included, tax_minor) IN (0, 5));

-- Replay validation (P5-01, P9-01): a line whose snapshot differs from the catalog's authoritative price at
-- the sale's time, found in the ingest transaction. `diff` is canonical JSON (sorted keys, no spaces), the
-- same bytes whenever the same sale meets the same catalog; the sale itself is kept as sold, never corrected.
CREATE TABLE sale_price_diffs (
    event_id  uuid NOT NULL,
    line_no   int NOT NULL,
    tenant    text NOT NULL,
    store     text NOT NULL,
    sku       text NOT NULL,
    sold_at   timestamptz NOT NULL,
    diff      text NOT NULL CHECK (diff::jsonb IS NOT NULL),
    found_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, line_no),
    FOREIGN KEY (event_id, line_no) REFERENCES sale_lines
);
CREATE INDEX sale_price_diffs_found ON sale_price_diffs (found_at);
