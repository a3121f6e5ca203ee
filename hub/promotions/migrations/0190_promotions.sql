-- Promotions (hub.promotions): each change of a promotion is a new immutable revision (its whole to_wire body),
-- so the hub knows exactly what a promotion said at any time; `promotion_live` records when (wall clock and
-- catalog version) each revision was what the stores were sent, which is what replay validation and the
-- simulation read to know what was in force for a sale.

-- The tenant's promotion settings: the simulated cost above which a promotion needs a second person's approval,
-- the time zone promotions' days and hours are local to, and how many days of sales the simulation replays.
CREATE TABLE promotion_settings (
    tenant                    text PRIMARY KEY REFERENCES tenants,
    approval_threshold_minor  bigint NOT NULL CHECK (approval_threshold_minor >= 0),
    timezone                  text NOT NULL,
    simulation_days           integer NOT NULL CHECK (simulation_days BETWEEN 1 AND 366),
    updated_by                text NOT NULL,
    updated_at                timestamptz NOT NULL DEFAULT now()
);

-- A promotion's head: its workflow state and the revisions that matter (the latest, and the one the stores hold).
--   draft    being written (its latest revision is not live; an earlier one may be, see live_revision)
--   pending  submitted; its simulated cost passed the threshold: waits for a second person's approval
--   live     the latest revision is what the stores hold (its schedule says when it applies)
--   ended    ended by a person: the stores were sent it inactive
CREATE TABLE promotions (
    tenant         text NOT NULL REFERENCES tenants,
    id             uuid NOT NULL,
    name           text NOT NULL,
    state          text NOT NULL CHECK (state IN ('draft', 'pending', 'live', 'ended')),
    revision       integer NOT NULL CHECK (revision >= 1),
    live_revision  integer CHECK (live_revision BETWEEN 1 AND revision),
    regions        text[] NOT NULL DEFAULT '{}',
    stores         text[] NOT NULL DEFAULT '{}',
    submitted_by   text,
    submitted_at   timestamptz,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    version        bigint,
    PRIMARY KEY (tenant, id),
    CHECK ((state = 'pending') = (submitted_by IS NOT NULL))
);
COMMENT ON COLUMN promotions.regions IS 'the latest revision''s scope (both empty: the whole tenant), for scoping who may see and change it';
COMMENT ON COLUMN promotions.version IS 'the catalog version of the last change the stores receive (NULL: never sent)';
CREATE INDEX promotions_version ON promotions (tenant, version) WHERE version IS NOT NULL;
CREATE INDEX promotions_updated ON promotions (tenant, updated_at DESC, id DESC);

CREATE TABLE promotion_revisions (
    tenant      text NOT NULL,
    promotion   uuid NOT NULL,
    revision    integer NOT NULL,
    body        jsonb NOT NULL,
    author      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, promotion, revision),
    FOREIGN KEY (tenant, promotion) REFERENCES promotions
);
COMMENT ON COLUMN promotion_revisions.body IS 'novapos.promotions.to_wire of the revision (its version = revision)';

CREATE FUNCTION promotion_revisions_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'promotion revisions are immutable: % on promotion_revisions is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege', HINT = 'a change is a new revision';
END
$$;
CREATE TRIGGER promotion_revisions_immutable BEFORE UPDATE OR DELETE ON promotion_revisions
    FOR EACH ROW EXECUTE FUNCTION promotion_revisions_are_immutable();

-- Each period a revision was what the stores were sent: from the change that sent it (its commit time and
-- catalog version) until the change that replaced or ended it (NULL: still). A store's copy at catalog version
-- v holds the revisions with from_version <= v < until_version.
CREATE TABLE promotion_live (
    tenant         text NOT NULL,
    promotion      uuid NOT NULL,
    revision       integer NOT NULL,
    live_from      timestamptz NOT NULL,
    from_version   bigint NOT NULL,
    live_until     timestamptz,
    until_version  bigint,
    PRIMARY KEY (tenant, promotion, from_version),
    FOREIGN KEY (tenant, promotion, revision) REFERENCES promotion_revisions,
    CHECK ((live_until IS NULL) = (until_version IS NULL))
);
CREATE UNIQUE INDEX promotion_live_open ON promotion_live (tenant, promotion) WHERE live_until IS NULL;
CREATE INDEX promotion_live_versions ON promotion_live (tenant, from_version);

-- What each simulation predicted, kept: the approver sees the figures the decision rests on.
CREATE TABLE promotion_simulations (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant           text NOT NULL,
    promotion        uuid NOT NULL,
    revision         integer NOT NULL,
    days             integer NOT NULL,
    since            timestamptz NOT NULL,
    until            timestamptz NOT NULL,
    sales            integer NOT NULL,
    sales_touched    integer NOT NULL,
    cost_minor       bigint NOT NULL,
    per_store        jsonb NOT NULL,
    threshold_minor  bigint NOT NULL,
    needs_approval   boolean NOT NULL,
    by_login         text NOT NULL,
    at               timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant, promotion, revision) REFERENCES promotion_revisions
);
CREATE INDEX promotion_simulations_of ON promotion_simulations (tenant, promotion, revision, id DESC);

-- Approvals and rejections of a submitted revision (also in the audit chain).
CREATE TABLE promotion_decisions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant      text NOT NULL,
    promotion   uuid NOT NULL,
    revision    integer NOT NULL,
    decision    text NOT NULL CHECK (decision IN ('approved', 'rejected')),
    by_login    text NOT NULL,
    reason      text,
    simulation  bigint REFERENCES promotion_simulations,
    at          timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant, promotion, revision) REFERENCES promotion_revisions
);

-- Replay validation: a v5 sale whose promotions the hub's engine computes differently (canonical JSON).
CREATE TABLE promotion_diffs (
    event_id  uuid PRIMARY KEY REFERENCES inbox (event_id),
    tenant    text NOT NULL,
    store     text NOT NULL,
    sold_at   timestamptz NOT NULL,
    diff      text NOT NULL
);
CREATE INDEX promotion_diffs_tenant ON promotion_diffs (tenant, sold_at DESC, event_id DESC);
