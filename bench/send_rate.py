#!/usr/bin/env python3
"""SMTP_MAX_RATE: how closely the pool's token bucket holds the configured rate. mailworkerd
(16 workers) empties a backlog of RATE x 30 emails into postfix's smtp-sink with
SMTP_MAX_RATE=RATE; the rate is counted from the first email sent to the last (the trash
files' change times), so over 30 s. Two runs; the target is within 10% of the limit.

usage: bench/send_rate.py BIN_DIR   prints one JSON object, progress on stderr."""
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import delivery
from delivery import log, start_sink, stop

RATE = 50
SECONDS = 30
WORKERS = 16
RUNS = 2


def main():
    delivery.ensure_postfix()
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="rate-bench-"))
    try:
        delivery.write_backlog(work / "backlog", RATE * SECONDS)
        sink, port = start_sink()
        rates = []
        try:
            for run in range(RUNS):
                result = delivery.deliver(WORKERS, port, work / "backlog", work, extra_env={"SMTP_MAX_RATE": str(RATE)})
                rates.append(result["span_emails_per_second"])
                log(f"  run {run + 1}: {rates[-1]:.2f} emails/s against a limit of {RATE}")
        finally:
            stop(sink)
    finally:
        for proc in list(delivery.running):
            stop(proc, timeout=10)
        shutil.rmtree(work)
    median = statistics.median(rates)
    print(json.dumps({
        "benchmark": "send_rate", "limit_per_second": RATE, "emails": RATE * SECONDS, "workers": WORKERS,
        "runs_emails_per_second": [round(r, 2) for r in rates], "emails_per_second": round(median, 2),
        "ratio": round(median / RATE, 3), "target_met": abs(median / RATE - 1) <= 0.1,
        "seconds": round(time.monotonic() - began),
    }, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
