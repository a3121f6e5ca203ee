-- The provider's webhooks (hub.payments.webhooks): every verified event id, kept so that a replay (the same
-- event posted again, inside or outside the signature's tolerance) is recognized and never applied twice. Only
-- events whose signature verified are kept: an unverified body's id proves nothing and must not block the real
-- one. Refusals are in the tenant's audit chain, not here.
CREATE TABLE webhook_events (
    provider     text NOT NULL,
    event_id     text NOT NULL,
    tenant       text NOT NULL,
    type         text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    outcome      text NOT NULL CHECK (outcome IN ('applied', 'ignored')),
    reason       text,
    PRIMARY KEY (provider, event_id)
);
COMMENT ON COLUMN webhook_events.outcome IS 'applied: the payment it names was moved (or already was); ignored: a type the hub does not act on';
COMMENT ON COLUMN webhook_events.reason IS 'what was done, for a person: the intent and the state it reached, or why it was ignored';
CREATE INDEX webhook_events_tenant_time ON webhook_events (tenant, received_at DESC);

-- A QR payment's checkout at the provider: what the till shows (pay_url) until it expires; the expiry sweep
-- asks the provider about an intent still unpaid past expires_at, then cancels it.
CREATE TABLE payment_qr_checkouts (
    intent_id     uuid PRIMARY KEY REFERENCES payment_intents (id),
    tenant        text NOT NULL,
    provider_ref  text NOT NULL,
    pay_url       text NOT NULL,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_qr_checkouts_expiry ON payment_qr_checkouts (expires_at);
