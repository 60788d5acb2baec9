#!/usr/bin/env bash
# `make run`: nginx (HTTPS + basic auth) in front of mailfcgi, and mailworkerd, all in the
# foreground. Ctrl-C (SIGINT) or SIGTERM stops all three; each finishes its work in flight.
#
# env: MAIL_HTTPS_PORT (8443), MAIL_DEMO_PASSWORD, RUN_DIR (run), BIN_DIR (.build/release), and every
#      setting in .env.example (read by the daemons from the environment and .env).
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir=${BIN_DIR:-.build/release}
port=${MAIL_HTTPS_PORT:-8443}
run_dir=$(realpath -m "${RUN_DIR:-run}")
export FCGI_SOCKET=${FCGI_SOCKET:-$run_dir/mailfcgi.sock}

scripts/prepare-run-dir.sh "$run_dir" "$port" "$FCGI_SOCKET" "${MAX_BODY_BYTES:-1048576}"

pids=()
stop() {
    trap - INT TERM
    echo "Stopping..." >&2
    [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    exit "${1:-0}"
}
trap 'stop 0' INT TERM

"$bin_dir/mailfcgi" & pids+=($!)
"$bin_dir/mailworkerd" & pids+=($!)
# nginx -e: its error log before the configuration is read (else /var/log/nginx).
nginx -c "$run_dir/nginx.conf" -e "$run_dir/nginx-error.log" -g 'daemon off;' & pids+=($!)

echo "Serving https://127.0.0.1:$port (user demo, password in run/demo-password). Ctrl-C stops." >&2
# If any of the three exits on its own, stop the others and report failure.
wait -n "${pids[@]}" || true
echo "A process of the stack exited; see the messages above." >&2
stop 1
