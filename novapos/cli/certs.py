"""`novapos certs ca|issue|show`: a local certificate authority for a chain without one (novapos.local_ca).

    novapos certs ca --dir /etc/novapos/ca                 a new CA: ca.pem (give it to every box), ca.key (keep it off them)
    novapos certs issue store-001 --dir /etc/novapos/ca --host store-001.lan --host 10.1.0.5 [--client] [--out DIR] [--days N]
    novapos certs show /etc/novapos/tls/store-001.pem     whom a certificate names, for which hosts, until when

An issued certificate is a server's (HTTPS, nats-server); with --client a client's too (NATS with client
verification: a store box's, the hub's).
Issue into the folder the process reads (`--out`), over the old files: the process reloads it within
[tls] check_every_s. Exit 0 done, 1 refused (a CA already there, a file that is not a certificate), 2 usage.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from novapos.local_ca import CA_DAYS, LEAF_DAYS


def add_certs_commands(commands: argparse._SubParsersAction) -> None:
    certs = commands.add_parser("certs", help="make a local CA and the TLS certificates of the hub, NATS and the stores",
                                description="A local certificate authority for [tls]: `ca` makes it, `issue` signs a "
                                "certificate for a process (its HTTPS and its NATS identity), `show` reads one.")
    actions = certs.add_subparsers(dest="action", required=True, metavar="ACTION")
    ca = actions.add_parser("ca", help="make a new CA in --dir (ca.pem, ca.key); refused if one is there")
    ca.add_argument("--dir", type=Path, required=True, help="the CA's folder (keep ca.key there, off the store boxes)")
    ca.add_argument("--days", type=int, default=CA_DAYS, help="validity (default: %(default)s days)")
    ca.set_defaults(run=_ca)
    issue = actions.add_parser("issue", help="sign a certificate NAME.pem and its key NAME.key")
    issue.add_argument("name", help="the certificate's name and file name (store-001, hub, nats-server)")
    issue.add_argument("--dir", type=Path, required=True, help="the CA's folder")
    issue.add_argument("--host", action="append", required=True,
                       help="a DNS name or IP address the certificate is valid for (repeat for each)")
    issue.add_argument("--out", type=Path, help="where to write NAME.pem and NAME.key (default: the CA's folder)")
    issue.add_argument("--days", type=int, default=LEAF_DAYS, help="validity (default: %(default)s days)")
    issue.add_argument("--client", action="store_true",
                       help="a client's certificate too (clientAuth): for a process a NATS verifying clients "
                            "must accept (a store box, the hub); without it, a server's only")
    issue.set_defaults(run=_issue)
    show = actions.add_parser("show", help="print a certificate's subject, hosts, issuer and validity")
    show.add_argument("file", type=Path)
    show.set_defaults(run=_show)


def _ca(args: argparse.Namespace) -> int:
    from novapos.local_ca import make_ca
    try:
        made = make_ca(args.dir, days=args.days)
    except FileExistsError as exc:
        print(f"novapos certs ca: {exc}", file=sys.stderr)
        return 1
    print(f"made a CA: {made.cert_file} (copy to every box, [tls] ca_file) and {made.key_file} (keep it here)")
    return 0


def _issue(args: argparse.Namespace) -> int:
    from novapos.local_ca import issue
    from novapos.validators import Invalid, token
    try:
        name = token("the certificate's name", args.name)
        made = issue(args.dir, name, args.host, out=args.out, days=args.days, client=args.client)
    except (Invalid, ValueError, OSError) as exc:
        print(f"novapos certs issue: {exc}", file=sys.stderr)
        return 1
    print(f"issued {made.cert_file} and {made.key_file} for {', '.join(args.host)}, valid {args.days} days: "
          f"set them as [tls] cert_file and key_file")
    return 0


def _show(args: argparse.Namespace) -> int:
    from cryptography import x509
    try:
        cert = x509.load_pem_x509_certificate(args.file.read_bytes())
    except (OSError, ValueError) as exc:
        print(f"novapos certs show: {args.file} is not a PEM certificate ({exc})", file=sys.stderr)
        return 1
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        hosts = [str(name.value) for name in names]
    except x509.ExtensionNotFound:
        hosts = []
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    print(f"subject  {cert.subject.rfc4514_string()}\nhosts    {', '.join(hosts) or '(none)'}\n"
          f"issuer   {cert.issuer.rfc4514_string()}\nvalid    {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
          f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC ({left.days} days left)")
    return 0
