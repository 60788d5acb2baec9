#!/usr/bin/env python3
"""Large messages: sending emails with a 1 MiB attachment, and the memory a 10 MiB message costs.

1. Send: mailworkerd (4 workers) empties a backlog of emails that each carry a 1 MiB
   attachment into postfix's smtp-sink, unsigned and DKIM-signed (rsa-sha256, 2048 bits),
   beside smtp-source sending as many messages of the same size over as many sessions; the
   three alternate, ROUNDS times, and each figure is the median.
2. Memory: the whole stack (nginx, mailfcgi, mailworkerd signing with DKIM into smtp-sink)
   takes one POST /email whose composed message is just under MAX_MESSAGE_BYTES (10 MiB);
   the peak resident set (VmHWM) of each daemon before and after it was accepted and sent.

usage: bench/large_messages.py BIN_DIR   prints one JSON object, progress on stderr."""
import base64
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import delivery
from delivery import log, smtp_source, start, start_sink, stop
from enqueue import PASSWORD, free_port
from procmem import memory_mib

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.argv[1]).resolve()
BACKLOG = 300
WORKERS = 4
ROUNDS = 3
ATTACHMENT = os.urandom(1 << 20)
# Raw bytes whose composed message is just under 10 MiB: base64 is 4/3 of them, plus 2 bytes
# a 76-column line, plus the headers and the text part.
LARGE = os.urandom(7_650_000)


def make_key(directory):
    subprocess.run([ROOT / "scripts/dkim-keygen.sh", "example.com", "bench", "rsa", directory],
                   check=True, capture_output=True)
    return directory / "bench.private"


def write_backlog(directory, count):
    """`count` queue files, each with the same 1 MiB attachment, as mailfcgi writes them."""
    delivery.write_backlog(directory, count)
    content = base64.b64encode(ATTACHMENT).decode()
    for path in directory.iterdir():
        email = json.loads(path.read_text())
        email["attachments"] = [{"filename": "report.pdf", "content_type": "application/pdf", "content": content}]
        path.write_text(json.dumps(email))
    os.sync()


def send_rounds(work, key):
    write_backlog(work / "one", 1)
    # The size on the wire and smtp-source's -l for the same, from a dumping sink.
    message_bytes, source_length, _ = delivery.message_sizes(work, work / "one")
    write_backlog(work / "backlog", BACKLOG)
    sink, port = start_sink()
    try:
        runs = {"unsigned": [], "signed": [], "source": []}
        signing = {"DKIM_DOMAIN": "example.com", "DKIM_SELECTOR": "bench", "DKIM_PRIVATE_KEY_FILE": str(key)}
        for round_number in range(ROUNDS):
            runs["source"].append(smtp_source(WORKERS, port, source_length, count=BACKLOG))
            runs["unsigned"].append(delivery.deliver(WORKERS, port, work / "backlog", work))
            runs["signed"].append(delivery.deliver(WORKERS, port, work / "backlog", work, extra_env=signing))
            log(f"  round {round_number + 1}: {runs['unsigned'][-1]['emails_per_second']:,.0f} emails/s unsigned, "
                f"{runs['signed'][-1]['emails_per_second']:,.0f} signed, smtp-source {runs['source'][-1]:,.0f}")
    finally:
        stop(sink)
    mib = message_bytes / (1 << 20)
    result = {"message_bytes": message_bytes, "workers": WORKERS, "backlog": BACKLOG, "rounds": ROUNDS,
              "smtp_source_emails_per_second": round(statistics.median(runs["source"]), 1)}
    for name in ("unsigned", "signed"):
        rate = statistics.median(r["emails_per_second"] for r in runs[name])
        result[name] = {"emails_per_second": round(rate, 1), "mib_per_second": round(rate * mib, 1),
                        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs[name]),
                        "cpu_ms_per_email": round(statistics.median(r["cpu_ms_per_email"] for r in runs[name]), 2)}
    return result


def start_stack(base, key, smtp_port):
    port = free_port()
    run_dir = base / "run"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATA_DIR": str(base / "data"),
           "FCGI_SOCKET": str(run_dir / "mailfcgi.sock"), "LOG_DIR": str(base / "logs"), "LOG_STDERR": "false",
           "TEMPLATES_DIR": str(base / "templates"), "MAIL_DEMO_PASSWORD": PASSWORD, "LOG_LEVEL": "warning",
           "SENDER_EMAIL": "bench@example.com", "MAIL_RATE_LIMIT": "1000", "MAIL_RATE_BURST": "1000"}
    worker_env = {**env, "SMTP_SERVER": "127.0.0.1", "PORT": str(smtp_port), "SMTP_TLS": "none",
                  "DKIM_DOMAIN": "example.com", "DKIM_SELECTOR": "bench", "DKIM_PRIVATE_KEY_FILE": str(key)}
    subprocess.run([ROOT / "scripts/prepare-run-dir.sh", run_dir, str(port), run_dir / "mailfcgi.sock"],
                   env=env, check=True, capture_output=True)
    fcgi = start([BIN / "mailfcgi"], cwd=base, env=env)
    workerd = start([BIN / "mailworkerd"], cwd=base, env=worker_env)
    while not (run_dir / "mailfcgi.sock").exists():
        time.sleep(0.05)
    nginx = start(["nginx", "-c", run_dir / "nginx.conf", "-e", run_dir / "nginx-error.log", "-g", "daemon off;"],
                  cwd=base)
    return port, run_dir / "tls/cert.pem", fcgi, workerd, nginx


def post(port, cert, payload):
    """POST /email through nginx with the stack's certificate and the demo user (urllib: the
    benchmarks use the system's python3 alone)."""
    context = ssl.create_default_context(cafile=str(cert))
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}/email", data=json.dumps(payload).encode(), method="POST",
        headers={"Content-Type": "application/json",
                 "Authorization": "Basic " + base64.b64encode(f"demo:{PASSWORD}".encode()).decode()})
    with urllib.request.urlopen(request, context=context, timeout=60) as response:
        return json.load(response)["request_id"]


def memory_with_a_large_message(work, key):
    sink, smtp_port = start_sink()
    base = work / "stack"
    base.mkdir()
    port, cert, fcgi, workerd, nginx = start_stack(base, key, smtp_port)
    try:
        for _ in range(200):
            try:
                post(port, cert, {"to_email": "user@example.com", "subject": "warm-up", "body": "small"})
                break
            except Exception:
                time.sleep(0.1)
        trash = base / "data/trash"
        wait_sent(trash, 1)
        before = {"mailfcgi": memory_mib(fcgi.pid), "mailworkerd": memory_mib(workerd.pid)}
        post(port, cert, {"to_email": "user@example.com", "subject": "A large report", "body": "Attached.",
                          "attachments": [{"filename": "large.bin", "content": base64.b64encode(LARGE).decode()}]})
        wait_sent(trash, 2)
        after = {"mailfcgi": memory_mib(fcgi.pid), "mailworkerd": memory_mib(workerd.pid)}
    finally:
        for proc in (nginx, fcgi, workerd):
            stop(proc)
        stop(sink)
    return {"attachment_bytes": len(LARGE), "before": before, "after": after,
            "peak_growth_mib": {name: round(after[name]["peak_rss_mib"] - before[name]["peak_rss_mib"], 1)
                                for name in after}}


def wait_sent(trash, count, timeout=120):
    deadline = time.monotonic() + timeout
    while not (trash.exists() and sum(".sent." in name for name in os.listdir(trash)) >= count):
        if time.monotonic() > deadline:
            raise RuntimeError("the large message was not delivered")
        time.sleep(0.05)


def main():
    delivery.ensure_postfix()
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="large-bench-"))
    try:
        work.chmod(0o755)  # smtp-sink, as nobody, reaches its dump folder
        key = make_key(work / "keys")
        result = {"benchmark": "large_messages", "send": send_rounds(work, key),
                  "memory": memory_with_a_large_message(work, key)}
    finally:
        for proc in list(delivery.running):
            stop(proc, timeout=10)
        shutil.rmtree(work)
    result["seconds"] = round(time.monotonic() - began)
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
