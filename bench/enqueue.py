#!/usr/bin/env python3
"""Enqueue throughput: POST /email through nginx (TLS + basic auth) into the durable queue,
measured with wrk at 16 and 64 connections, beside two ceilings from the same run:
nginx answering `return 200` on the same TLS + auth location, and the disk's rate of durable
file creation (write, fsync, rename, directory fsync) at the same concurrency. Beside them,
POST /emails/batch with 100 of the same emails per request, in emails per second: what a
batch's shared directory sync saves against 100 single requests.
Delivery is off (AUTO_PROCESSING_ENABLED=false) so the figure is the enqueue path alone.
mailfcgi runs with FCGI_THREADS equal to the most connections, so that as many requests can
wait in fsync(2) at once as the ceiling's writer threads: a thread blocked in fsync costs a
stack, not a core, and that is how a deployment expecting this concurrency would set it.
With BENCH_DATABASE_URL (a server's URL, as bench/postgres.sh prints it), a second stack
with QUEUE_STORE=postgres is measured beside the first, its POST /email in the same rounds
right after the file store's, so that both see the same machine noise.

usage: bench/enqueue.py BIN_DIR   prints one JSON object."""
import base64
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procmem import memory_mib

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.argv[1]).resolve()  # absolute: the daemons run in their own folder
CONNECTIONS = (16, 64)
SECONDS = 8
ROUNDS = 3
PASSWORD = "bench-password"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url, connections, script=None, seconds=SECONDS):
    auth = base64.b64encode(f"demo:{PASSWORD}".encode()).decode()
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"Authorization: Basic {auth}"]
    if script:
        args += ["-s", str(script)]
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    def ms(label):
        value, unit = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests_per_second": rate, "p50_ms": ms("50"), "p99_ms": ms("99"),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def start_stack(procs, base, port, extra_env=None):
    """mailfcgi, mailworkerd and nginx on `port`, their files under `base`, appended to
    `procs` as each starts (so that the caller stops what started, also on a failure);
    returns once nginx answers."""
    run_dir, data = base / "run", base / "data"
    env = {**os.environ, "DATA_DIR": str(data), "FCGI_SOCKET": str(run_dir / "mailfcgi.sock"),
           "AUTO_PROCESSING_ENABLED": "false", "FCGI_THREADS": str(max(CONNECTIONS)), "LOG_DIR": str(base / "logs"), "LOG_STDERR": "false",
           "TEMPLATES_DIR": str(base / "templates"), "MAIL_DEMO_PASSWORD": PASSWORD, "LOG_LEVEL": "warning",
           "MAIL_RATE_LIMIT": "1000000", "MAIL_RATE_BURST": "1000000",  # the bench measures the path, not the limit
           **(extra_env or {})}
    subprocess.run([ROOT / "scripts/prepare-run-dir.sh", run_dir, str(port), run_dir / "mailfcgi.sock"],
                   env=env, check=True, capture_output=True)
    procs.append(subprocess.Popen([BIN / "mailfcgi"], cwd=base, env=env))
    procs.append(subprocess.Popen([BIN / "mailworkerd"], cwd=base, env=env))
    while not (run_dir / "mailfcgi.sock").exists():
        if procs[0].poll() is not None:
            raise RuntimeError(f"mailfcgi exited: {(base / 'logs/mailfcgi.log').read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    procs.append(subprocess.Popen(["nginx", "-c", run_dir / "nginx.conf", "-e", run_dir / "nginx-error.log",
                                   "-g", "daemon off;"], cwd=base))
    time.sleep(1)


def stop_stack(procs):
    for proc in reversed(procs):
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def main():
    base = Path(tempfile.mkdtemp(prefix="enqueue-bench-"))
    port = free_port()
    data = base / "data"
    rows = {c: {"enqueue": [], "nginx_only": [], "durable_files": [], "batch": [], "postgres": []} for c in CONNECTIONS}
    procs, pg_procs, pg_port, pg_url = [], [], None, None
    try:
        start_stack(procs, base, port)
        # The postgres stack: a database of its own on the bench's server; mailfcgi migrates it.
        if pg_server := os.environ.get("BENCH_DATABASE_URL"):
            pg_url = subprocess.run([ROOT / "bench/postgres.sh", "createdb", pg_server, "bench_enqueue"],
                                    capture_output=True, text=True, check=True).stdout.strip()
            pg_port = free_port()
            start_stack(pg_procs, base / "postgres", pg_port, {"QUEUE_STORE": "postgres", "DATABASE_URL": pg_url})
        for _ in range(ROUNDS):
            for c in CONNECTIONS:
                rows[c]["nginx_only"].append(wrk(f"https://127.0.0.1:{port}/_bench/nginx-only", c))
                rows[c]["enqueue"].append(wrk(f"https://127.0.0.1:{port}/email", c, ROOT / "bench/post-email.lua"))
                if pg_port:
                    rows[c]["postgres"].append(wrk(f"https://127.0.0.1:{pg_port}/email", c, ROOT / "bench/post-email.lua"))
                rows[c]["batch"].append(wrk(f"https://127.0.0.1:{port}/emails/batch", c, ROOT / "bench/post-batch.lua"))
                out = subprocess.run([BIN / "durable-file-bench", "--dir", str(data / "fsync-ceiling"),
                                      "--threads", str(c), "--seconds", str(SECONDS)],
                                     capture_output=True, text=True, check=True).stdout
                rows[c]["durable_files"].append(json.loads(out)["files_per_second_by_threads"][str(c)])
        memory = {name: memory_mib(proc.pid) for name, proc in (("mailfcgi", procs[0]), ("mailworkerd", procs[1]))}
        peak_rss = {name: m["peak_rss_mib"] for name, m in memory.items()}
        if pg_procs:
            memory_postgres = {name: memory_mib(proc.pid) for name, proc in (("mailfcgi", pg_procs[0]),
                                                                            ("mailworkerd", pg_procs[1]))}
    finally:
        stop_stack(pg_procs)
        stop_stack(procs)
    queued = len([n for n in os.listdir(data / "queue") if n.endswith(".json")])
    median = lambda xs, key=None: statistics.median([x[key] for x in xs] if key else xs)
    result = {"benchmark": "enqueue", "seconds_per_run": SECONDS, "rounds": ROUNDS, "emails_queued": queued,
              "peak_rss_mib": peak_rss, "memory_at_end": memory, "by_connections": {}}
    for c, r in rows.items():
        enqueue = {k: median(r["enqueue"], k) for k in ("requests_per_second", "p50_ms", "p99_ms", "non_2xx")}
        nginx = {k: median(r["nginx_only"], k) for k in ("requests_per_second", "p50_ms", "p99_ms")}
        files = median(r["durable_files"])
        batch = {k: median(r["batch"], k) for k in ("requests_per_second", "p50_ms", "p99_ms", "non_2xx")}
        batch["emails_per_second"] = 100 * batch["requests_per_second"]
        result["by_connections"][str(c)] = {
            "enqueue": enqueue, "nginx_only": nginx, "durable_files_per_second": files,
            "batch_of_100": batch,
            "batch_vs_single_emails_per_second": round(batch["emails_per_second"] / enqueue["requests_per_second"], 2),
            "enqueue_vs_durable_files": round(enqueue["requests_per_second"] / files, 3) if files else None,
            "enqueue_vs_nginx_only": round(enqueue["requests_per_second"] / nginx["requests_per_second"], 3),
        }
        if r["postgres"]:
            postgres = {k: median(r["postgres"], k) for k in ("requests_per_second", "p50_ms", "p99_ms", "non_2xx")}
            postgres["runs_requests_per_second"] = [round(x["requests_per_second"]) for x in r["postgres"]]
            result["by_connections"][str(c)]["postgres_enqueue"] = postgres
            result["by_connections"][str(c)]["enqueue_runs_requests_per_second"] = [
                round(x["requests_per_second"]) for x in r["enqueue"]]
            result["by_connections"][str(c)]["postgres_vs_file"] = round(
                postgres["requests_per_second"] / enqueue["requests_per_second"], 3)
    if pg_url:
        count = subprocess.run(["psql", "-X", "-At", "-d", pg_url, "-c", "SELECT count(*) FROM mail_emails"],
                               capture_output=True, text=True, check=True).stdout.strip()
        result["postgres"] = {"emails_queued": int(count), "memory_at_end": memory_postgres}
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
