#!/usr/bin/env bash
# Puts Swagger UI 5 (which renders OpenAPI 3.1) in DEST for nginx to serve at /docs/, from the
# PyPI wheel swagger-ui-bundle-v2, pointed at /openapi.json. Nothing of it is committed; the
# unpacked files are cached in .cache/ so each run directory is a copy, not a download.
# usage: scripts/install-swagger-ui.sh DEST
set -euo pipefail
version=5.31.0
root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache/swagger-ui-$version"
dest=$1

if [ ! -s "$cache/swagger-ui-bundle.js" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$root/scripts/unpack-wheel.sh" "swagger-ui-bundle-v2==$version" "$tmp/wheel"
    mkdir -p "$cache.partial"
    cp "$tmp/wheel/swagger_ui_bundle/vendor/swagger-ui-$version"/{index.html,index.css,swagger-ui.css,swagger-ui-bundle.js,swagger-ui-standalone-preset.js,favicon-16x16.png,favicon-32x32.png} "$cache.partial/"
    cat > "$cache.partial/swagger-initializer.js" <<'JS'
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
  });
};
JS
    rm -rf "$cache" && mv "$cache.partial" "$cache"
fi
mkdir -p "$dest"
cp "$cache"/* "$dest/"
