#!/usr/bin/env python3
"""mailfcgi's resident memory over a long run of POST /email through nginx: its resident set
(and anonymous part) after 50,000 requests and after 500,000, which should be within 1 MiB of
each other (issue #21: a responder that grows with every request it answers is a leak). wrk
at 16 connections in 5 s slices until the counts pass; delivery off; the queue grows to
500,000 files, as a long outage of the relay would make it.

usage: bench/responder_memory.py BIN_DIR   prints one JSON object."""
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.argv = sys.argv[:2]
import enqueue as stack  # start_stack, stop_stack, free_port, PASSWORD
from procmem import memory_mib

MARKS = (50_000, 500_000)


def main():
    base = Path(tempfile.mkdtemp(prefix="responder-memory-"))
    port = stack.free_port()
    procs = []
    done, at = 0, {}
    try:
        stack.start_stack(procs, base, port)
        while len(at) < len(MARKS):
            out = subprocess.run(["wrk", "-t2", "-c16", "-d5s", "-s", str(stack.ROOT / "bench/post-email.lua"),
                                  "-H", "Authorization: Basic " + __import__("base64").b64encode(
                                      f"demo:{stack.PASSWORD}".encode()).decode(),
                                  f"https://127.0.0.1:{port}/email"], capture_output=True, text=True, check=True).stdout
            done += int(re.search(r"(\d+) requests in", out).group(1))
            for mark in MARKS:
                if done >= mark and mark not in at:
                    at[mark] = {"requests": done, **memory_mib(procs[0].pid)}
    finally:
        stack.stop_stack(procs)
    first, last = at[MARKS[0]], at[MARKS[-1]]
    growth = round(last["rss_anon_mib"] - first["rss_anon_mib"], 1)
    print(json.dumps({
        "benchmark": "responder_memory", "marks": {str(k): v for k, v in at.items()},
        "rss_growth_mib": round((last["rss_anon_mib"] + last["rss_file_mib"]) - (first["rss_anon_mib"] + first["rss_file_mib"]), 1),
        "anonymous_growth_mib": growth,
        "bytes_per_request": round(growth * 2**20 / (last["requests"] - first["requests"]), 1),
        "target_within_1_mib_met": abs(growth) <= 1.0,
    }, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
