"""Audit: the tamper-evident log of every privileged action, one hash chain per tenant; what the hub's
domains record (hub.audit.chain.record) and what the stores send (audit.recorded events, hub.audit.applier);
verifying it (hub.audit.verify) against signed checkpoints kept outside the database (hub.audit.checkpoints);
searching it (GET /api/audit) with personal values kept beside the chain (P2-03)."""

from pathlib import Path

from hub.audit.applier import apply_audit
from hub.audit.routes import OPENAPI, routes
from hub.audit.services import checkpointer, retention
from hub.domains import Domain

DOMAIN = Domain("audit", migrations=Path(__file__).parent / "migrations", appliers={"audit.recorded": apply_audit},
                routes=routes, jobs={"audit_checkpoints": checkpointer, "audit_retention": retention}, openapi=OPENAPI,
                applies_last=True)
