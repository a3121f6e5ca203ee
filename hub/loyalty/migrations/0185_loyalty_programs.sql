-- A tenant's loyalty program (hub.loyalty.program): how points are earned, what a point is worth, the tiers, when
-- points expire and what a store may redeem while the hub is away. A tenant without a row runs the default program
-- (hub.loyalty.program.DEFAULT): one row is written the first time an administrator saves it.
CREATE TABLE loyalty_programs (
    tenant                       text PRIMARY KEY REFERENCES tenants,
    point_value_minor            integer NOT NULL CHECK (point_value_minor > 0),
    earn_points_per_unit         integer NOT NULL CHECK (earn_points_per_unit >= 0),
    earn_unit_minor              integer NOT NULL CHECK (earn_unit_minor > 0),
    earn_per_order_points        integer NOT NULL CHECK (earn_per_order_points >= 0),
    earn_bonuses                 jsonb NOT NULL DEFAULT '[]'::jsonb,
    tiers                        jsonb NOT NULL,
    expiry_months                integer NOT NULL CHECK (expiry_months >= 0),
    notice_days                  integer NOT NULL CHECK (notice_days >= 0),
    offline_store_budget_points  bigint NOT NULL CHECK (offline_store_budget_points >= 0),
    offline_customer_cap_points  bigint NOT NULL CHECK (offline_customer_cap_points >= 0),
    updated_by                   text NOT NULL,
    updated_at                   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN loyalty_programs.earn_points_per_unit IS 'points earned per earn_unit_minor spent (after discounts, not counting points tenders)';
COMMENT ON COLUMN loyalty_programs.earn_bonuses IS '[{"sku"|"category", "points_per_unit"}]: extra points per unit sold; a category matches itself and below';
COMMENT ON COLUMN loyalty_programs.tiers IS '[{"name", "min_spend_minor", "multiplier_ppm"}] by min_spend_minor; the first starts at 0';
COMMENT ON COLUMN loyalty_programs.expiry_months IS 'a lot of points expires this many months after it was earned; 0 = never';
