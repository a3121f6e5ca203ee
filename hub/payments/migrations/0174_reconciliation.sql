-- Reconciliation (hub.payments.reconcile): each run compares one tenant's captures and refunds of one day (UTC)
-- with the provider's settlement report, and keeps what differed.
--
-- Which day a movement belongs to: the moment the hub recorded it as done. The triggers below stamp it whatever
-- code path moved the intent or the refund (the provider's answer, a webhook, the watchdog), so the day's
-- movements are found by an index rather than by reading the intents' history.
ALTER TABLE payment_intents ADD COLUMN captured_at timestamptz;
ALTER TABLE payment_refunds ADD COLUMN succeeded_at timestamptz;
COMMENT ON COLUMN payment_intents.captured_at IS 'when the hub first recorded money captured (set by a trigger)';
COMMENT ON COLUMN payment_refunds.succeeded_at IS 'when the hub recorded the refund succeeded (set by a trigger)';

CREATE FUNCTION payment_intents_captured_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.captured_minor > 0 AND NEW.captured_at IS NULL THEN
        NEW.captured_at := now();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER payment_intents_captured_at BEFORE INSERT OR UPDATE OF captured_minor ON payment_intents
    FOR EACH ROW EXECUTE FUNCTION payment_intents_captured_at();

CREATE FUNCTION payment_refunds_succeeded_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'succeeded' AND NEW.succeeded_at IS NULL THEN
        NEW.succeeded_at := now();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER payment_refunds_succeeded_at BEFORE INSERT OR UPDATE OF state ON payment_refunds
    FOR EACH ROW EXECUTE FUNCTION payment_refunds_succeeded_at();

CREATE INDEX payment_intents_captured_day ON payment_intents (tenant, provider, captured_at) WHERE captured_at IS NOT NULL;
CREATE INDEX payment_refunds_succeeded_day ON payment_refunds (tenant, succeeded_at) WHERE succeeded_at IS NOT NULL;
CREATE INDEX payment_refunds_provider_ref ON payment_refunds (provider_ref) WHERE provider_ref IS NOT NULL;

CREATE TABLE reconciliation_runs (
    id           uuid PRIMARY KEY,
    tenant       text NOT NULL,
    provider     text NOT NULL,
    day          date NOT NULL,
    trigger      text NOT NULL CHECK (trigger IN ('nightly', 'command', 'console')),
    actor        text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    status       text NOT NULL CHECK (status IN ('running', 'clean', 'drift', 'failed')),
    items        integer NOT NULL DEFAULT 0 CHECK (items >= 0),
    hub_movements integer NOT NULL DEFAULT 0,
    provider_lines integer NOT NULL DEFAULT 0,
    error        text,
    CHECK ((status = 'running') = (finished_at IS NULL))
);
COMMENT ON COLUMN reconciliation_runs.status IS 'running; clean (no drift); drift (items > 0); failed (error says why: nothing compared)';
-- The nightly run of a (tenant, provider, day) happens once however many hub processes try: the first to insert
-- its row runs it; a failed one (the provider away) may be tried again.
CREATE UNIQUE INDEX reconciliation_runs_nightly ON reconciliation_runs (tenant, provider, day)
    WHERE trigger = 'nightly' AND status <> 'failed';
CREATE INDEX reconciliation_runs_list ON reconciliation_runs (tenant, id DESC);

CREATE TABLE reconciliation_drift (
    run_id                 uuid NOT NULL REFERENCES reconciliation_runs (id),
    n                      integer NOT NULL,
    kind                   text NOT NULL CHECK (kind IN ('missing', 'extra', 'amount', 'state')),
    movement               text NOT NULL CHECK (movement IN ('capture', 'refund')),
    provider_ref           text NOT NULL,
    refund_ref             text NOT NULL DEFAULT '',
    intent_id              uuid,
    store                  text,
    currency               text,
    hub_amount_minor       bigint,
    provider_amount_minor  bigint,
    hub_state              text,
    provider_state         text,
    message                text NOT NULL,
    PRIMARY KEY (run_id, n)
);
