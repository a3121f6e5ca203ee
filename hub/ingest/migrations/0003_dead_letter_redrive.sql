-- A dead letter re-driven after a fix is kept, marked with when and what came of it (an audit trail);
-- received_at is what the retention purges by.
ALTER TABLE dead_letters ADD COLUMN redriven_at timestamptz, ADD COLUMN redrive_outcome text;
CREATE INDEX dead_letters_received ON dead_letters (received_at);
