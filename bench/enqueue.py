#!/usr/bin/env python3
"""Enqueue throughput: POST /email through nginx (TLS + basic auth) into the durable queue,
measured with wrk at 16 and 64 connections against its ceiling in alternating short slices:
each of PAIRS rounds runs, at each concurrency, a slice of the disk's durable file creation
(durable-file-bench: as many writer threads as mailfcgi has FCGI_THREADS, each writing a
file, fsync, rename, directory fsync, as an enqueue without group commit does) and a slice of
POST /email, the two in turns, so that both see the same minutes of this machine's uneven
disk. Beside them in the same rounds: nginx answering `return 200` on the same TLS + auth
location, POST /emails/batch with 100 emails a request, and (with BENCH_DATABASE_URL, a
server's URL as bench/postgres.sh prints it) POST /email into a second stack with
QUEUE_STORE=postgres. Reported: medians and (slowest, fastest) slice of each, and the median
of the per-round ratios POST / ceiling.
Delivery is off (AUTO_PROCESSING_ENABLED=false) so the figure is the enqueue path alone.
mailfcgi runs with its default FCGI_THREADS unless BENCH_FCGI_THREADS says otherwise.

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
# BENCH_PAIRS and BENCH_CONNECTIONS (comma-separated, 64 among them) shorten a run by hand.
CONNECTIONS = tuple(int(c) for c in os.environ.get("BENCH_CONNECTIONS", "16,64").split(","))
SLICE_SECONDS = 2
PAIRS = int(os.environ.get("BENCH_PAIRS", "10"))
PASSWORD = "bench-password"
# POST /email's p99 at 64 connections with `make run`'s defaults before group commit (issue
# #21's figure, this machine kind): the target is to be no worse.
P99_BEFORE_GROUP_COMMIT_MS = 116


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url, connections, script=None, seconds=SLICE_SECONDS):
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
           "AUTO_PROCESSING_ENABLED": "false", "LOG_DIR": str(base / "logs"), "LOG_STDERR": "false",
           "TEMPLATES_DIR": str(base / "templates"), "MAIL_DEMO_PASSWORD": PASSWORD, "LOG_LEVEL": "warning",
           "MAIL_RATE_LIMIT": "1000000", "MAIL_RATE_BURST": "1000000",  # the bench measures the path, not the limit
           **({"FCGI_THREADS": os.environ["BENCH_FCGI_THREADS"]} if os.environ.get("BENCH_FCGI_THREADS") else {}),
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


def fcgi_threads(pid):
    """mailfcgi's worker threads, counted by name (FastCGIServer names them fcgi-worker-N)."""
    return sum(1 for task in Path(f"/proc/{pid}/task").iterdir()
               if (task / "comm").read_text().startswith("fcgi-worker"))


def spread(values, digits=1):
    """Median and the slowest and fastest slice."""
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits)}


def main():
    base = Path(tempfile.mkdtemp(prefix="enqueue-bench-"))
    port = free_port()
    data = base / "data"
    kinds = ("enqueue", "durable_files", "nginx_only", "batch", "postgres")
    rows = {c: {k: [] for k in kinds} for c in CONNECTIONS}
    procs, pg_procs, pg_port, pg_url = [], [], None, None
    try:
        start_stack(procs, base, port)
        threads = fcgi_threads(procs[0].pid)
        # The postgres stack: a database of its own on the bench's server; mailfcgi migrates it.
        if pg_server := os.environ.get("BENCH_DATABASE_URL"):
            pg_url = subprocess.run([ROOT / "bench/postgres.sh", "createdb", pg_server, "bench_enqueue"],
                                    capture_output=True, text=True, check=True).stdout.strip()
            pg_port = free_port()
            start_stack(pg_procs, base / "postgres", pg_port, {"QUEUE_STORE": "postgres", "DATABASE_URL": pg_url})

        def ceiling():
            out = subprocess.run([BIN / "durable-file-bench", "--dir", str(data / "fsync-ceiling"),
                                  "--threads", str(threads), "--seconds", str(SLICE_SECONDS)],
                                 capture_output=True, text=True, check=True).stdout
            return json.loads(out)["files_per_second_by_threads"][str(threads)]

        for pair in range(PAIRS):
            for c in CONNECTIONS:
                r = rows[c]
                # The ceiling and the product in turns, which one first alternating by round.
                slices = [lambda: r["durable_files"].append(ceiling()),
                          lambda: r["enqueue"].append(wrk(f"https://127.0.0.1:{port}/email", c,
                                                          ROOT / "bench/post-email.lua"))]
                for run in (slices if pair % 2 == 0 else reversed(slices)):
                    run()
                r["nginx_only"].append(wrk(f"https://127.0.0.1:{port}/_bench/nginx-only", c))
                r["batch"].append(wrk(f"https://127.0.0.1:{port}/emails/batch", c, ROOT / "bench/post-batch.lua"))
                if pg_port:
                    r["postgres"].append(wrk(f"https://127.0.0.1:{pg_port}/email", c, ROOT / "bench/post-email.lua"))
        memory = {name: memory_mib(proc.pid) for name, proc in (("mailfcgi", procs[0]), ("mailworkerd", procs[1]))}
        peak_rss = {name: m["peak_rss_mib"] for name, m in memory.items()}
        if pg_procs:
            memory_postgres = {name: memory_mib(proc.pid) for name, proc in (("mailfcgi", pg_procs[0]),
                                                                            ("mailworkerd", pg_procs[1]))}
    finally:
        stop_stack(pg_procs)
        stop_stack(procs)
    queued = len([n for n in os.listdir(data / "queue") if n.endswith(".json")])
    result = {"benchmark": "enqueue", "seconds_per_slice": SLICE_SECONDS, "pairs": PAIRS, "fcgi_threads": threads,
              "ceiling_writer_threads": threads, "emails_queued": queued, "peak_rss_mib": peak_rss,
              "memory_at_end": memory, "p99_before_group_commit_ms": P99_BEFORE_GROUP_COMMIT_MS,
              "by_connections": {}}
    for c, r in rows.items():
        rate = lambda kind: spread([x["requests_per_second"] for x in r[kind]])
        latency = lambda kind, q: round(statistics.median([x[f"p{q}_ms"] for x in r[kind]]), 1)
        ratios = [e["requests_per_second"] / f for e, f in zip(r["enqueue"], r["durable_files"]) if f]
        row = {
            "enqueue": {**rate("enqueue"), "p50_ms": latency("enqueue", 50), "p99_ms": latency("enqueue", 99),
                        "p99_ms_worst_slice": max(x["p99_ms"] for x in r["enqueue"]),
                        "non_2xx": sum(x["non_2xx"] for x in r["enqueue"])},
            "durable_files_per_second": spread(r["durable_files"]),
            "enqueue_vs_durable_files": spread(ratios, 3),
            "nginx_only": {**rate("nginx_only"), "p99_ms": latency("nginx_only", 99)},
        }
        batch = {**rate("batch"), "p99_ms": latency("batch", 99), "non_2xx": sum(x["non_2xx"] for x in r["batch"])}
        batch["emails_per_second"] = round(100 * batch["median"])
        row["batch_of_100"] = batch
        row["batch_vs_single_emails_per_second"] = round(batch["emails_per_second"] / row["enqueue"]["median"], 2)
        if r["postgres"]:
            row["postgres_enqueue"] = {**rate("postgres"), "p50_ms": latency("postgres", 50),
                                       "p99_ms": latency("postgres", 99),
                                       "non_2xx": sum(x["non_2xx"] for x in r["postgres"])}
            row["postgres_vs_file"] = round(row["postgres_enqueue"]["median"] / row["enqueue"]["median"], 3)
        result["by_connections"][str(c)] = row
    at64 = result["by_connections"]["64"]
    result["targets"] = {
        "enqueue_at_64_vs_ceiling_at_least_1_5": at64["enqueue_vs_durable_files"]["median"] >= 1.5,
        "p99_at_64_no_worse_than_before": at64["enqueue"]["p99_ms"] <= P99_BEFORE_GROUP_COMMIT_MS,
    }
    if pg_url:
        count = subprocess.run(["psql", "-X", "-At", "-d", pg_url, "-c", "SELECT count(*) FROM mail_emails"],
                               capture_output=True, text=True, check=True).stdout.strip()
        result["postgres"] = {"emails_queued": int(count), "memory_at_end": memory_postgres}
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
