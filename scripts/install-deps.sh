#!/usr/bin/env bash
# Installs the Debian packages the build and `make run` need, if missing; with --test also
# what only the tests use (Chromium, to load /docs headless; PostgreSQL). Runs apt-get as root
# (directly, or through sudo when available).
# usage: scripts/install-deps.sh [--test]
set -euo pipefail

# libpq-dev: the PostgreSQL queue store links libpq.
packages=(libcurl4-openssl-dev libssl-dev libpq-dev openssl ca-certificates)
command -v nginx >/dev/null 2>&1 || packages+=(nginx-light)
# pip fetches Swagger UI for /docs (scripts/install-swagger-ui.sh).
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)
# jq: the README's dead-letter requeue recipe, which the tests run as written.
# opendkim: its library verifies DKIM signatures beside dkimpy (`opendkim -t`, TestPublicKeys).
# prometheus: promtool checks GET /metrics (the server itself is not started).
# postgresql: the e2e suite runs on the PostgreSQL store too, with a private server of its
# own (scripts/test-postgres.sh; the package's own cluster is not used).
[ "${1:-}" = "--test" ] && packages+=(chromium jq opendkim prometheus postgresql)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
echo "Installing Debian packages: ${missing[*]}" >&2
"${as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
