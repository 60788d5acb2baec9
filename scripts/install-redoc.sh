#!/usr/bin/env bash
# Puts ReDoc (2.x, MIT) in DEST for nginx to serve at /redoc, from the PyPI wheel
# fastapi-offline (MIT), which carries ReDoc's standalone bundle, with a page pointed at
# /openapi.json. Nothing of it is committed; the unpacked files are cached in .cache/.
# usage: scripts/install-redoc.sh DEST
set -euo pipefail
version=1.7.7
root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache/redoc-fastapi-offline-$version"
dest=$1

if [ ! -s "$cache/redoc.standalone.js" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$root/scripts/unpack-wheel.sh" "fastapi-offline==$version" "$tmp/wheel"
    mkdir -p "$cache.partial"
    cp "$tmp/wheel/fastapi_offline/static/redoc.standalone.js" "$cache.partial/"
    cp "$tmp/wheel/fastapi_offline-$version.dist-info/licenses/LICENSE" "$cache.partial/LICENSE-fastapi-offline.txt"
    cat > "$cache.partial/index.html" <<'HTML'
<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Mail dispatch API - ReDoc</title>
    <style>body { margin: 0; padding: 0; }</style>
  </head>
  <body>
    <redoc spec-url="/openapi.json"></redoc>
    <script src="/redoc/redoc.standalone.js"></script>
  </body>
</html>
HTML
    rm -rf "$cache" && mv "$cache.partial" "$cache"
fi
mkdir -p "$dest"
cp "$cache"/* "$dest/"
