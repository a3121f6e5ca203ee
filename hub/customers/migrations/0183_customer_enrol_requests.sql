-- A till's enrolment (customer_create) names a request id it makes once per enrolment and keeps across its retries:
-- a retry after a timeout (the first request may have reached the hub) answers the customer that request made
-- instead of enrolling the same person twice. One customer per (tenant, request); NULL for customers made in the
-- console or by a till that sent no id.
ALTER TABLE customers ADD COLUMN enrol_request uuid;
CREATE UNIQUE INDEX customers_enrol_request ON customers (tenant, enrol_request) WHERE enrol_request IS NOT NULL;
