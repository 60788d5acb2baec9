#!/usr/bin/env bash
# Downloads one PyPI wheel (no dependencies) and unpacks it into DIR, for the documentation
# pages' assets (Swagger UI, ReDoc): what they need of it is copied from there.
# usage: scripts/unpack-wheel.sh REQUIREMENT DIR
set -euo pipefail
requirement=$1
dir=$2
download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$download" "$requirement"
python3 -m zipfile -e "$download"/*.whl "$dir"
