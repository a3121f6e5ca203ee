-- A store's sequence numbers that never arrived (gaps, as ranges) and those used by more than one event id
-- (reuses: every event after the first to carry a number), kept current by the ingest transaction so that
-- the console lists them without scanning the inbox. store_stats keeps their counts:
-- missing = last_seq - seqs = the gaps' sizes, reused = events - seqs = the reuses' rows.
CREATE TABLE store_seq_gaps (
    tenant     text NOT NULL,
    store      text NOT NULL,
    first_seq  bigint NOT NULL,
    last_seq   bigint NOT NULL CHECK (last_seq >= first_seq),
    found_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, store, first_seq)
);

CREATE TABLE store_seq_reuses (
    event_id  uuid PRIMARY KEY REFERENCES inbox (event_id),
    tenant    text NOT NULL,
    store     text NOT NULL,
    seq       bigint NOT NULL,
    found_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX store_seq_reuses_store ON store_seq_reuses (tenant, store, seq);

-- What the inbox already holds: every number after a store's first use of it, and every hole below its last.
INSERT INTO store_seq_reuses (event_id, tenant, store, seq, found_at)
SELECT event_id, tenant, store, seq, received_at FROM (
    SELECT event_id, tenant, store, seq, received_at,
           row_number() OVER (PARTITION BY tenant, store, seq ORDER BY received_at, event_id) AS nth
    FROM inbox) used
WHERE nth > 1;

INSERT INTO store_seq_gaps (tenant, store, first_seq, last_seq)
SELECT tenant, store, previous + 1, seq - 1 FROM (
    SELECT tenant, store, seq, coalesce(lag(seq) OVER (PARTITION BY tenant, store ORDER BY seq), 0) AS previous
    FROM (SELECT DISTINCT tenant, store, seq FROM inbox) seqs) steps
WHERE seq > previous + 1;
