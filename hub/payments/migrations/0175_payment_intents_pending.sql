-- What the pending provider call needs to be asked again or resolved later (hub.payments.service): its amount,
-- the person who asked it (audited once it succeeds), whether the watchdog already made it again once, and when
-- a watchdog last looked (several hubs take turns: each intent is resolved by one at a time). An offline
-- approval's card token waits in card_token until the provider has authorized it, then is forgotten.
ALTER TABLE payment_intents
    ADD COLUMN card_token      text,
    ADD COLUMN pending_minor   bigint CHECK (pending_minor > 0),
    ADD COLUMN pending_actor   text,
    ADD COLUMN pending_reason  text,
    ADD COLUMN pending_retried boolean NOT NULL DEFAULT false,
    ADD COLUMN checked_at      timestamptz;
COMMENT ON COLUMN payment_intents.card_token IS 'the terminal''s token of a card taken offline, until authorized';
COMMENT ON COLUMN payment_intents.pending_retried IS 'the watchdog made the unseen call again once with its key';
CREATE INDEX payment_intents_offline ON payment_intents (tenant, store) WHERE offline AND state IN
    ('awaiting_payment_method', 'processing');
CREATE INDEX payment_idempotency_created ON payment_idempotency (created_at);
