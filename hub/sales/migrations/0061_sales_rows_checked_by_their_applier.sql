-- A sale's rows (the sale, its lines and tenders) are written together by one applier, in the inbox's one
-- transaction, from one validated event, and never deleted: their foreign keys (a per-row trigger each)
-- only repeated that guarantee, at two thirds of the sales applier's PostgreSQL time per sale. Primary keys
-- stay: a second copy of a row is still refused. tests/test_ingest_exactly_once.py checks every sale's
-- rows after replays and crashes.
ALTER TABLE sales DROP CONSTRAINT sales_event_id_fkey;
ALTER TABLE sale_lines DROP CONSTRAINT sale_lines_event_id_fkey;
ALTER TABLE sale_tenders DROP CONSTRAINT sale_tenders_event_id_fkey;
