#!/usr/bin/env bash
# `make run`: nginx (HTTPS + basic auth) in front of mailfcgi, and mailworkerd, all in the
# foreground. However it ends, nothing is left running: Ctrl-C (SIGINT), SIGTERM (to make, to
# this script or to the whole group) and SIGHUP (the terminal closed) stop all three in order,
# each finishing its work in flight; if this script itself dies (kill -9), every daemon is
# sent SIGTERM by the kernel (PR_SET_PDEATHSIG) and stops on its own.
#
# Its own settings come from the environment, else from .env: MAIL_HTTPS_PORT (8443),
# MAIL_DEMO_PASSWORD, MAX_BODY_BYTES (nginx's body limit too;
# by default 4/3 of MAX_MESSAGE_BYTES plus 1 MiB), RUN_DIR (run),
# BIN_DIR (.build/release). The daemons read every other setting themselves (.env.example).
set -euo pipefail
# A script started in the background by another script inherits SIGINT (and SIGQUIT) as
# ignored, and bash cannot trap a signal ignored on entry: start again with them at default.
if [ -z "${MAIL_RUN_SIGNALS_RESET:-}" ]; then
    MAIL_RUN_SIGNALS_RESET=1 exec env --default-signal=INT,TERM,HUP "$0" "$@"
fi
cd "$(dirname "$0")/.."

# A setting from the environment, else its last `NAME=value` line in .env, else a default.
setting() {
    local name=$1 default=$2 value
    if [ -n "${!name:-}" ]; then printf '%s' "${!name}"; return; fi
    value=$( { grep -E "^[[:space:]]*(export[[:space:]]+)?$name=" .env 2>/dev/null || true; } | tail -n 1 | cut -d= -f2-)
    value=${value%\"}; value=${value#\"}; value=${value%\'}; value=${value#\'}
    printf '%s' "${value:-$default}"
}

bin_dir=$(setting BIN_DIR .build/release)
port=$(setting MAIL_HTTPS_PORT 8443)
# MAX_BODY_BYTES follows from MAX_MESSAGE_BYTES as mailfcgi works it out (MailSettings.bodyLimit).
max_message=$(setting MAX_MESSAGE_BYTES 10485760)
max_body=$(setting MAX_BODY_BYTES $((max_message / 3 * 4 + 1048576)))
run_dir=$(realpath -m "$(setting RUN_DIR run)")
export MAIL_DEMO_PASSWORD=$(setting MAIL_DEMO_PASSWORD "")
export FCGI_SOCKET=$(setting FCGI_SOCKET "$run_dir/mailfcgi.sock")

# Only mailworkerd gets the relay's settings: mailfcgi, which nginx talks to, is started
# without any of them in its environment (it also withholds them when reading .env).
responder=(env)
for name in SMTP_SERVER PORT PASSWORD SMTP_USERNAME SMTP_TLS SMTP_CA_FILE SMTP_TLS_VERIFY \
    SMTP_CONNECT_TIMEOUT SMTP_TIMEOUT DKIM_DOMAIN DKIM_SELECTOR DKIM_PRIVATE_KEY_FILE; do
    responder+=(-u "$name")
done
responder+=("$bin_dir/mailfcgi")

# Settings are checked before anything starts: a bad value stops here, naming it.
"${responder[@]}" --check-config
"$bin_dir/mailworkerd" --check-config
# A port another program answers on would only show as nginx failing to bind, after a retry.
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "Error: port $port is in use; set MAIL_HTTPS_PORT in .env to another port." >&2
    exit 1
fi
scripts/prepare-run-dir.sh "$run_dir" "$port" "$FCGI_SOCKET" "$max_body"

pids=()
stopping=
# Front to back, each waited for, so no answer is lost: nginx first (SIGQUIT: it finishes
# the requests it has), then mailfcgi (SIGTERM: the same), then mailworkerd (its sends).
# Further signals while stopping are ignored, so a second Ctrl-C or the group's SIGTERM
# arriving after make's cannot cut the stop short and orphan a daemon.
stop() {
    [ -z "$stopping" ] || return 0
    stopping=1
    trap '' INT TERM HUP
    echo "Stopping..." >&2
    local i
    for i in 2 0 1; do  # pids: mailfcgi, mailworkerd, nginx
        [ -n "${pids[$i]:-}" ] || continue
        if [ "$i" -eq 2 ]; then kill -QUIT "${pids[$i]}" 2>/dev/null || true
        else kill -TERM "${pids[$i]}" 2>/dev/null || true; fi
        while kill -0 "${pids[$i]}" 2>/dev/null; do wait "${pids[$i]}" 2>/dev/null || true; done
    done
    exit "${1:-0}"
}
trap 'stop 0' INT TERM HUP

# Each in its own session, so that a Ctrl-C or a signal to the group reaches this script only,
# which stops them in order; and each dies with this script (setpriv --pdeathsig) if it is
# killed outright, so nothing outlives it.
start() { setsid setpriv --pdeathsig TERM -- "$@" & pids+=($!); }
start "${responder[@]}"
start "$bin_dir/mailworkerd"
# nginx answers 503 until the responder listens; wait for its socket (at most 10 s). A daemon
# that exits at start (a database it cannot reach, say) stops the stack before nginx starts: an
# nginx stopped while it is still starting up may miss its SIGQUIT and never exit.
for _ in $(seq 100); do [ -S "$FCGI_SOCKET" ] && break; kill -0 "${pids[0]}" 2>/dev/null || break; sleep 0.1; done
for i in 0 1; do
    kill -0 "${pids[$i]}" 2>/dev/null && continue
    echo "A process of the stack exited at start; see the messages above." >&2
    stop 1
done
# nginx -e: its error log before the configuration is read (else /var/log/nginx). Its master
# gets SIGTERM if this script dies; its workers end with their master.
start nginx -c "$run_dir/nginx.conf" -e "$run_dir/nginx-error.log" -g 'daemon off;'

echo "Serving https://127.0.0.1:$port (user demo, password in $run_dir/demo-password). Ctrl-C stops." >&2
# If any of the three exits on its own, stop the others and report failure. A trapped
# signal interrupts `wait` and runs `stop`, which exits.
wait -n "${pids[@]}" || true
[ -n "$stopping" ] || { echo "A process of the stack exited; see the messages above." >&2; stop 1; }
