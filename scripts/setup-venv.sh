#!/usr/bin/env bash
# Creates .venv with the Python test tools from Tests/e2e/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv 2>/dev/null; then
        # Debian's python3 needs python3-venv for the venv module.
        as_root=(); [ "$(id -u)" -eq 0 ] || as_root=(sudo)
        "${as_root[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq python3-venv >/dev/null
        rm -rf .venv
        python3 -m venv .venv
    fi
fi
stamp=.venv/.requirements-installed
if [ ! -f "$stamp" ] || [ Tests/e2e/requirements.txt -nt "$stamp" ]; then
    .venv/bin/pip install -q --disable-pip-version-check -r Tests/e2e/requirements.txt
    touch "$stamp"
fi
