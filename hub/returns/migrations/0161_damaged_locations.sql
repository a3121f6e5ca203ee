-- A store may keep a 'damaged' location: returned items not fit to sell go there (hub.inventory.returns); a store
-- without one writes them off.
ALTER TABLE locations DROP CONSTRAINT locations_kind_check;
ALTER TABLE locations ADD CONSTRAINT locations_kind_check
    CHECK (kind IN ('floor', 'back_room', 'warehouse', 'damaged'));
