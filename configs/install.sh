#!/bin/bash
# Install or upgrade NovaPOS on a store box (--edge) and/or a hub host (--hub), as root:
#   the package in a venv at /opt/novapos, the system user novapos (systemd-sysusers), the configs in
#   /etc/novapos (kept when present), the secrets in /etc/novapos/credentials/{edge,hub} (root-only; the units
#   hand them to the service with LoadCredential=), the state directories under /var/lib, and the units in
#   /etc/systemd/system (and for the edge a udev rule giving its HID and USB devices to the novapos-devices group). Running it
#   again upgrades the package and keeps every config and secret.
#
#   sudo configs/install.sh --hub [--package novapos-X.whl]
#   sudo configs/install.sh --edge --store-bundle /media/usb/store-042   (the folder `novapos hub store add` wrote)
#   sudo configs/install.sh --edge --store-bundle new-credentials/       (after `store rotate`: the new seed)
#
# --root DIR installs into DIR instead of / (tests, staging): the venv's scripts then name DIR's python, so the
# result runs on this machine only; nothing is started or reloaded.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=/ PACKAGE="" BUNDLE="" PYTHON=python3 EDGE=0 HUB=0

usage() {
    sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    echo "options: --edge --hub --root DIR --package SPEC (default: this checkout) --store-bundle DIR --python PATH"
}
fail() { echo "install.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case $1 in
        --edge) EDGE=1 ;;
        --hub) HUB=1 ;;
        --root|--package|--store-bundle|--python)
            [ $# -ge 2 ] && [ -n "$2" ] || fail "$1 needs a value"
            case $1 in
                --root) ROOT=$2 ;; --package) PACKAGE=$2 ;; --store-bundle) BUNDLE=$2 ;; --python) PYTHON=$2 ;;
            esac
            shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; fail "unknown option $1" ;;
    esac
    shift
done

[ $EDGE = 1 ] || [ $HUB = 1 ] || fail "say what this machine runs: --edge, --hub or both"
[ -z "$BUNDLE" ] || [ $EDGE = 1 ] || fail "--store-bundle is for --edge"
[ "$(id -u)" = 0 ] || fail "run it as root (it creates a user and root-only secrets)"
[ -d "$ROOT" ] || fail "--root $ROOT is not a folder"
ROOT=$(cd "$ROOT" && pwd -P)
R=${ROOT%/}  # "" for /
if [ -z "$PACKAGE" ]; then
    [ -f "$HERE/../pyproject.toml" ] || fail "--package: the wheel (or requirement) to install"
    PACKAGE=$(cd "$HERE/.." && pwd)
fi
if [ -n "$BUNDLE" ]; then
    [ -d "$BUNDLE" ] || fail "--store-bundle $BUNDLE is not a folder"
    BUNDLE=$(cd "$BUNDLE" && pwd)
fi
VENV=$R/opt/novapos
HUB_TEMPLATE=""
[ $HUB = 0 ] || HUB_TEMPLATE=$HERE/hub.toml
CREDENTIALS=$R/etc/novapos/credentials

# 1. The service user (a system user with no login; the edge's unit adds dialout and novapos-devices, the group
#    the udev rule gives the HID and USB nodes the edge opens: its own, not the shared plugdev).
mkdir -p "$R/etc"
systemd-sysusers --root="$ROOT" --inline 'u novapos - "NovaPOS services" /var/lib/novapos' >/dev/null
[ $EDGE = 0 ] || systemd-sysusers --root="$ROOT" --inline 'g novapos-devices -' >/dev/null
ids=$(awk -F: '$1 == "novapos" { print $3 ":" $4 }' "$R/etc/passwd")
[ -n "$ids" ] || fail "systemd-sysusers made no user novapos in $R/etc/passwd"
GID=${ids#*:}

# 2. Folders: configs readable by the service's group, secrets by root alone, state by the service alone.
install -d -m 0755 "$R/opt" "$R/etc/systemd/system"
install -d -o 0 -g "$GID" -m 0750 "$R/etc/novapos" "$R/etc/novapos/tls"
install -d -o 0 -g 0 -m 0700 "$CREDENTIALS"
[ $EDGE = 0 ] || install -d -o 0 -g 0 -m 0700 "$CREDENTIALS/edge"
[ $HUB = 0 ] || install -d -o 0 -g 0 -m 0700 "$CREDENTIALS/hub"
[ $EDGE = 0 ] || install -d -o "${ids%:*}" -g "$GID" -m 0700 "$R/var/lib/novapos"
[ $HUB = 0 ] || install -d -o "${ids%:*}" -g "$GID" -m 0700 "$R/var/lib/novapos-hub"

# 3. The package, in its own venv (upgraded in place on a second run).
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade "$PACKAGE"
[ -x "$VENV/bin/novapos" ] || fail "$PACKAGE installed no novapos command in $VENV"

# 4. Configs and secrets (novapos/deploy.py): nothing present is replaced but the store's seed from a bundle.
"$VENV/bin/python" -m novapos.deploy "$R/etc/novapos" --gid "$GID" \
    ${HUB_TEMPLATE:+--hub "$HUB_TEMPLATE"} ${BUNDLE:+--bundle "$BUNDLE"}
# Secrets the operator put there too: root's alone (systemd reads them as root and hands the service its copy).
chown -R 0:0 "$CREDENTIALS"
find "$CREDENTIALS" -type f -exec chmod 0600 {} +

# 5. The units (and the edge's udev rule: HID and USB nodes to novapos-devices); on this machine, read at once.
install -m 0644 "$HERE"/systemd/*.service "$R/etc/systemd/system/"
[ -n "$R" ] || systemctl daemon-reload
if [ $EDGE = 1 ]; then
    install -D -m 0644 "$HERE/udev/70-novapos.rules" "$R/etc/udev/rules.d/70-novapos.rules"
    [ -n "$R" ] || { udevadm control --reload && udevadm trigger --subsystem-match=hidraw --subsystem-match=usb; }
fi

missing=()
if [ $HUB = 1 ]; then
    for name in database-url tls.key; do [ -s "$CREDENTIALS/hub/$name" ] || missing+=("$CREDENTIALS/hub/$name"); done
fi
if [ $EDGE = 1 ]; then
    for name in nats.seed tls.key; do [ -s "$CREDENTIALS/edge/$name" ] || missing+=("$CREDENTIALS/edge/$name"); done
fi
[ $EDGE = 0 ] || [ -f "$R/etc/novapos/store.toml" ] || missing+=("$R/etc/novapos/store.toml (from the store's bundle: --store-bundle)")
echo "NovaPOS is installed in $VENV."
if [ ${#missing[@]} -gt 0 ]; then
    echo "Before starting, provide (root-owned, mode 0600 for secrets):"
    printf '  %s\n' "${missing[@]}"
fi
[ $HUB = 0 ] || echo "Hub: systemctl enable --now novapos-hub@8700 (one instance per console port)"
[ $EDGE = 0 ] || echo "Edge: systemctl enable --now novapos-edge"
