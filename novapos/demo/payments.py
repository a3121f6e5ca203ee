"""The demo's payment provider: the acquirer simulator (mocks.acquirer) in the demo's process, its webhook
signing secret in a file the hub reads, and the hub's [payments] settings pointed at both.

The simulator posts its webhooks to the hub's public route for the demo tenant, and the mock payment terminal
reports its approvals to it, so a card tender approved at the demo's terminal is captured through the hub and
a QR tender is paid on the simulator's pay page.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from mocks.acquirer import Acquirer, AcquirerServer, read_secrets, write_secrets
from novapos.demo.provision import TENANT

PROVIDER = "simulator"
"""The provider's name in the demo hub's settings and in its webhooks' address."""


def webhook_secrets(path: Path) -> list[str]:
    """The demo's webhook signing secrets, newest first: a new one (owner-only file) on the demo's first run."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_secrets(path, ["whsec_" + secrets.token_hex(24)])
    return read_secrets(path)


def demo_acquirer(state_dir: Path, port: int, console_url: str, ca_file: Path | None = None) -> AcquirerServer:
    """The simulator for 127.0.0.1:`port` (0: any free port; started when entered), posting its webhooks to
    the hub at `console_url` (https: its certificate checked against `ca_file`)."""
    secrets_file = state_dir / "payments" / "webhook-secrets"
    acquirer = Acquirer(webhook_secrets(secrets_file), secrets_file=secrets_file,
                        webhook_url=f"{console_url}/api/payments/webhooks/{TENANT}/{PROVIDER}", webhook_ca=ca_file)
    return AcquirerServer(acquirer, port=port)


def hub_settings(acquirer: AcquirerServer) -> dict[str, str]:
    """The hub's [payments] settings for the running simulator."""
    return {"gateway_url": acquirer.url, "provider": PROVIDER,
            "webhook_secrets_file": str(acquirer.acquirer.secrets_file)}
