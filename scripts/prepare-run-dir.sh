#!/usr/bin/env bash
# Prepares a run directory for nginx: a self-signed TLS certificate, an htpasswd with the
# user `demo`, and nginx.conf rendered from deploy/nginx/dev.conf.in. Existing certificate
# and password are kept. Used by `make run` and by the e2e tests.
#
# usage: scripts/prepare-run-dir.sh RUN_DIR HTTPS_PORT FCGI_SOCKET [MAX_BODY_BYTES]
# env:   MAIL_RATE_LIMIT  requests a second per user (default 100), MAIL_RATE_BURST (default twice it)
# env:   MAIL_DEMO_PASSWORD  the demo user's password (else RUN_DIR/demo-password, else generated)
# env:   MAIL_LISTEN_ADDRESS  the IPv4 address nginx listens on (default 127.0.0.1); another one
#        is added to a new certificate's names (the multi-host tests give each host its own)
set -euo pipefail

run_dir=$(realpath -m "$1")
port=$2
socket=$(realpath -m "$3")
max_body=${4:-15029588}  # the default MAX_MESSAGE_BYTES (10 MiB) * 4/3 + 1 MiB
deploy_dir=$(realpath "$(dirname "$0")/../deploy")
listen=${MAIL_LISTEN_ADDRESS:-127.0.0.1}
case "$listen" in *[!0-9.]*|'') echo "MAIL_LISTEN_ADDRESS must be an IPv4 address" >&2; exit 2 ;; esac
san="DNS:localhost,IP:127.0.0.1"
[ "$listen" = 127.0.0.1 ] || san="$san,IP:$listen"

mkdir -p "$run_dir/tls" "$run_dir/nginx-tmp"
chmod 700 "$run_dir/tls"

if [ ! -s "$run_dir/tls/cert.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=localhost" \
        -addext "subjectAltName=$san" \
        -keyout "$run_dir/tls/key.pem" -out "$run_dir/tls/cert.pem" 2>/dev/null
fi

password=${MAIL_DEMO_PASSWORD:-}
if [ -z "$password" ] && [ -s "$run_dir/demo-password" ]; then
    password=$(cat "$run_dir/demo-password")
fi
if [ -z "$password" ]; then
    password=$(openssl rand -base64 18 | tr -d '/+=' | cut -c1-20)
    echo "Generated a password for the user demo: $password (kept in $run_dir/demo-password)" >&2
fi
(umask 077; printf '%s\n' "$password" > "$run_dir/demo-password")
(umask 077; printf 'demo:%s\n' "$(openssl passwd -apr1 "$password")" > "$run_dir/htpasswd")

# Swagger UI for /docs (a download from PyPI the first time; the stack runs without it).
"$(dirname "$0")/install-swagger-ui.sh" "$run_dir/swagger-ui" \
    || echo "warning: Swagger UI could not be installed; /docs will be missing" >&2
# ReDoc for /redoc, the same way.
"$(dirname "$0")/install-redoc.sh" "$run_dir/redoc" \
    || echo "warning: ReDoc could not be installed; /redoc will be missing" >&2

# Requests a second nginx lets each authenticated user make, and the burst beyond it
# answered at once; more get 429 with Retry-After.
rate=${MAIL_RATE_LIMIT:-100}
burst=${MAIL_RATE_BURST:-$((rate * 2))}
case "$rate$burst" in *[!0-9]*) echo "MAIL_RATE_LIMIT and MAIL_RATE_BURST must be whole numbers" >&2; exit 2 ;; esac

sed -e "s|@RUN_DIR@|$run_dir|g" -e "s|@LISTEN@|$listen|g" -e "s|@PORT@|$port|g" -e "s|@SOCKET@|$socket|g" \
    -e "s|@RATE_LIMIT@|$rate|g" -e "s|@RATE_BURST@|$burst|g" \
    -e "s|@MAX_BODY_BYTES@|$max_body|g" -e "s|@DEPLOY_DIR@|$deploy_dir|g" \
    -e "s|@USER@|$(id -un) $(id -gn)|g" \
    "$deploy_dir/nginx/dev.conf.in" > "$run_dir/nginx.conf"
