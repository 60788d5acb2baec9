#!/usr/bin/env python3
"""Lookups by request id through the whole stack: GET /email/{request_id} through nginx (TLS +
basic auth) and mailfcgi, at 1,000 and at 100,000 stored emails (half delivered, half pending,
all the user demo's: `lookup-bench --fill-only`). Two stacks run side by side, one per data
directory, and wrk measures them in alternating slices, so both depths see the same machine;
the figure is the median of the slices, with the large depth's rate as a ratio of the small
one's. mailworkerd is not started: the pending emails stay where they are.

usage: bench/lookup_http.py BIN_DIR   prints one JSON object."""
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from enqueue import PASSWORD, free_port, wrk

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.argv[1]).resolve()
DEPTHS = (1_000, 100_000)
CONNECTIONS = 16
SLICES = 10
SLICE_SECONDS = 3


def start_stack(base, data):
    port = free_port()
    run_dir = base / f"run-{data.name}"
    env = {**os.environ, "DATA_DIR": str(data), "FCGI_SOCKET": str(run_dir / "mailfcgi.sock"),
           "AUTO_PROCESSING_ENABLED": "false", "LOG_DIR": str(base / f"logs-{data.name}"),
           "LOG_STDERR": "false", "TEMPLATES_DIR": str(base / "templates"),
           "MAIL_DEMO_PASSWORD": PASSWORD, "LOG_LEVEL": "warning",
           "MAIL_RATE_LIMIT": "1000000", "MAIL_RATE_BURST": "1000000"}
    subprocess.run([ROOT / "scripts/prepare-run-dir.sh", run_dir, str(port), run_dir / "mailfcgi.sock"],
                   env=env, check=True, capture_output=True)
    fcgi = subprocess.Popen([BIN / "mailfcgi"], cwd=base, env=env)
    while not (run_dir / "mailfcgi.sock").exists():
        time.sleep(0.05)
    nginx = subprocess.Popen(["nginx", "-c", run_dir / "nginx.conf", "-e", run_dir / "nginx-error.log",
                              "-g", "daemon off;"], cwd=base)
    return port, [fcgi, nginx]


def main():
    base = Path(tempfile.mkdtemp(prefix="lookup-http-bench-"))
    subprocess.run([BIN / "lookup-bench", "--fill-only", "--dir", str(base),
                    "--depths", ",".join(map(str, DEPTHS))], check=True)
    subprocess.run(["sync"], check=True)  # the fill's writeback is not measured
    stacks, procs = {}, []
    try:
        for depth in DEPTHS:
            port, started = start_stack(base, base / f"depth-{depth}")
            stacks[depth] = port
            procs += started
        time.sleep(1)
        rows = {depth: [] for depth in DEPTHS}
        for _ in range(SLICES):
            for depth, port in stacks.items():
                os.environ["BENCH_IDS"] = str(base / f"depth-{depth}" / "ids.txt")
                result = wrk(f"https://127.0.0.1:{port}/email/x", CONNECTIONS, ROOT / "bench/get-email.lua",
                             seconds=SLICE_SECONDS)
                if result["non_2xx"]:
                    raise SystemExit(f"{result['non_2xx']} lookups at depth {depth} were not answered 200")
                rows[depth].append(result)
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        shutil.rmtree(base, ignore_errors=True)
    results = []
    for depth, slices in rows.items():
        rates = [s["requests_per_second"] for s in slices]
        results.append({"depth": depth, "lookups_per_second": round(statistics.median(rates)),
                        "min": round(min(rates)), "max": round(max(rates)),
                        "p99_ms": statistics.median(s["p99_ms"] for s in slices)})
    ratio = results[-1]["lookups_per_second"] / results[0]["lookups_per_second"]
    print(json.dumps({"benchmark": "lookup_http", "connections": CONNECTIONS, "slices": SLICES,
                      "seconds_per_slice": SLICE_SECONDS, "results": results,
                      "ratio_last_to_first": round(ratio, 3)}, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
