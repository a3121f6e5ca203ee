"""How a request/reply responder says no: the NATS services error headers on an empty reply, shared by the
hub that answers (hub.responders) and the stores that ask."""

ERROR_HEADER = "Nats-Service-Error"
"""A sentence saying why the request was not answered."""
ERROR_CODE_HEADER = "Nats-Service-Error-Code"
"""400: the request was bad (the sentence says what to fix); 500: the hub failed on it."""
