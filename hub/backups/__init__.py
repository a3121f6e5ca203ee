"""Backups: what the hub tells a store box restored from a backup (which of its sequence numbers the hub holds), so
that the box continues the store's numbering without reusing a number and knows the sales its backup missed."""

from hub.backups.holds import answer_restore
from hub.domains import Domain

DOMAIN = Domain("backups", link_responders={"novapos.*.*.req.restore": answer_restore})
