-- Payment intents (hub.payments.model): one per tender, keyed by the tender's id within the tenant; their
-- refunds; the idempotency keys of the console's and the stores' payment requests; per-tenant settings.
CREATE TABLE payment_intents (
    id               uuid PRIMARY KEY,
    tenant           text NOT NULL,
    store            text NOT NULL,
    till             text,
    tender_id        text NOT NULL,
    order_id         uuid,
    method           text NOT NULL CHECK (method IN ('card_present', 'card', 'qr')),
    currency         char(3) NOT NULL,
    amount_minor     bigint NOT NULL CHECK (amount_minor > 0),
    authorized_minor bigint NOT NULL DEFAULT 0 CHECK (authorized_minor >= 0),
    captured_minor   bigint NOT NULL DEFAULT 0 CHECK (captured_minor >= 0),
    refunded_minor   bigint NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0 AND refunded_minor <= captured_minor),
    state            text NOT NULL CHECK (state IN ('awaiting_payment_method', 'processing', 'authorized', 'captured',
                                                    'refunded', 'cancelled', 'failed')),
    pending          text CHECK (pending IN ('authorize', 'capture', 'cancel', 'refund')),
    pending_key      text,
    pending_since    timestamptz,
    back_to          text,
    provider         text NOT NULL,
    provider_ref     text,
    auth_code        text,
    scheme           text,
    masked           text,
    offline          boolean NOT NULL DEFAULT false,
    capture_before   timestamptz,
    attention        text,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, tender_id),
    CHECK ((state = 'processing') = (pending IS NOT NULL))
);
COMMENT ON COLUMN payment_intents.pending IS 'the action whose provider call is out while state = processing';
COMMENT ON COLUMN payment_intents.pending_key IS 'that call''s idempotency key at the provider: status(key) resolves it';
COMMENT ON COLUMN payment_intents.back_to IS 'the state to return to when the pending call is declined';
COMMENT ON COLUMN payment_intents.attention IS 'why a person must look (a stuck call, an offline approval declined later)';
CREATE INDEX payment_intents_store_time ON payment_intents (tenant, store, created_at DESC, id);
CREATE INDEX payment_intents_order ON payment_intents (tenant, order_id) WHERE order_id IS NOT NULL;
CREATE INDEX payment_intents_processing ON payment_intents (pending_since) WHERE state = 'processing';
CREATE INDEX payment_intents_authorized ON payment_intents (capture_before) WHERE state = 'authorized';
CREATE INDEX payment_intents_attention ON payment_intents (tenant, updated_at DESC) WHERE attention IS NOT NULL;
CREATE INDEX payment_intents_provider_ref ON payment_intents (provider, provider_ref);

CREATE TABLE payment_refunds (
    id            uuid PRIMARY KEY,
    intent_id     uuid NOT NULL REFERENCES payment_intents (id),
    tenant        text NOT NULL,
    refund_key    text NOT NULL,
    amount_minor  bigint NOT NULL CHECK (amount_minor > 0),
    state         text NOT NULL CHECK (state IN ('processing', 'succeeded', 'failed')),
    via           text NOT NULL CHECK (via IN ('provider', 'terminal')),
    provider_ref  text,
    reason        text,
    actor         text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, refund_key)
);
COMMENT ON COLUMN payment_refunds.via IS 'provider: the hub asked the gateway; terminal: refunded with the card present at a till';
CREATE INDEX payment_refunds_intent ON payment_refunds (intent_id, created_at);

CREATE TABLE payment_idempotency (
    tenant        text NOT NULL,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    status        smallint,
    body          jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, key)
);
COMMENT ON TABLE payment_idempotency IS 'Idempotency-Key: the first request''s hash and answer (status NULL while it runs)';

CREATE TABLE payment_settings (
    tenant                     text PRIMARY KEY,
    offline_per_payment_minor  bigint NOT NULL CHECK (offline_per_payment_minor >= 0),
    offline_store_total_minor  bigint NOT NULL CHECK (offline_store_total_minor >= 0),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    updated_by                 text NOT NULL
);
