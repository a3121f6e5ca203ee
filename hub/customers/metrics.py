"""The customers domain's metrics (novapos_hub_customer_*): no label ever holds a customer's id or personal data."""

from prometheus_client import Counter, Histogram

REQUESTS = Counter("novapos_hub_customer_requests_total", "Store requests about customers, by kind and outcome",
                   ["kind", "outcome"])
REQUEST_SECONDS = Histogram("novapos_hub_customer_request_seconds", "Time to answer a store's customer request",
                            ["kind"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
CREATED = Counter("novapos_hub_customer_created_total", "Customers created, by where (till or console)", ["via"])
PRIVACY = Counter("novapos_hub_customer_privacy_requests_total", "Data subject requests done, by kind",
                  ["kind"])
