-- A product's category, a path such as "food/dairy/cheese" (a promotion targeting "food/dairy" matches it):
-- sent to the stores on the catalog Item, read by the simulation and replay validation. NULL: uncategorised.
ALTER TABLE products ADD COLUMN category text CHECK (category IS NULL OR length(category) BETWEEN 1 AND 200);
