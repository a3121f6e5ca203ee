"""Adapters both halves share: the HTTP server (hypercorn + Starlette on trio) and the NATS link."""
