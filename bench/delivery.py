#!/usr/bin/env python3
"""Delivery throughput: mailworkerd emptying a backlog of 20,000 queued emails into postfix's
`smtp-sink` with NUM_WORKERS 1, 4, 8 and 16, beside the ceiling from the same run: postfix's
`smtp-source` sending as many messages of the same size into the same sink over as many
sessions, each reusing its connection (`-d`) as a worker does. Also the peak RSS of
mailworkerd while it delivers.

A run's rate counts from mailworkerd's start (so it includes reading the backlog into its
index) to the last email recorded as sent; the end is exact, read from the change times of
the trash files (set by the rename that files each one). The backlog is written once, as mailfcgi writes queue files, and each run's
`data/queue/` is filled from it before mailworkerd starts, so filling it costs nothing measured.

With BENCH_DATABASE_URL (a server's URL, as bench/postgres.sh prints it), mailworkerd with
QUEUE_STORE=postgres empties the same backlog, at POSTGRES_WORKERS, each run right after the
file store's run at the same worker count, with a budget of its own. Its queue is the
backlog's rows, copied into `mail_emails` as the store inserts them, then vacuumed and
checkpointed before mailworkerd starts (the database's counterpart of the sync above); its
end is the last row's `updated_at`, which the statement recording the email as sent sets.

Installs postfix (for smtp-sink and smtp-source) if missing, without configuring or starting
it. usage: bench/delivery.py BIN_DIR   prints one JSON object, progress on stderr."""
import csv
import datetime
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from procmem import memory_mib

BIN = Path(sys.argv[1]).resolve()  # absolute: mailworkerd runs in its own folder
BACKLOG = 20_000
WORKERS = (1, 4, 8, 16)
ROUNDS = 3
# Wall time for all rounds (make bench must stay under 15 minutes): a configuration gets
# another round only while its first round's duration still fits.
BUDGET_SECONDS = 200
# The postgres store's runs: the fewest and the most workers of the file store's (the pool's
# claims contend for the head of the same index only with several), in a budget of their own
# so that they take no run from the file store's figures.
POSTGRES_WORKERS = (4, 16)
POSTGRES_BUDGET_SECONDS = 120
SENDER, RECIPIENT = "bench@example.com", "user@example.com"
# The same small raw email as bench/post-email.lua posts in the enqueue benchmark.
SUBJECT, BODY = "Your code", "Your code is 123456.\nIt expires in 30 minutes."
SINK, SOURCE = "/usr/sbin/smtp-sink", "/usr/sbin/smtp-source"
RUN_TIMEOUT = 300

running = []  # every process started and not yet stopped: main's finally stops them


def log(message):
    print(message, file=sys.stderr, flush=True)


def ensure_postfix():
    if Path(SINK).exists() and Path(SOURCE).exists():
        return
    log("installing postfix for smtp-sink and smtp-source ...")
    as_root = [] if os.geteuid() == 0 else ["sudo"]
    # "No configuration" writes no main.cf, so neither the package nor systemd starts postfix;
    # --no-remove refuses to replace another installed MTA.
    subprocess.run(as_root + ["debconf-set-selections"], check=True, text=True,
                   input="postfix postfix/main_mailer_type select No configuration\n")
    subprocess.run(as_root + ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
                              "--no-remove", "postfix"], check=True, stdout=subprocess.DEVNULL)


def start(args, **kwargs):
    proc = subprocess.Popen(args, **kwargs)
    running.append(proc)
    return proc


def stop(proc, timeout=60):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    running.remove(proc)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sink(dump_dir=None):
    """smtp-sink on a free port; with dump_dir, each message is also written there."""
    port = free_port()
    args = [SINK]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]  # smtp-sink refuses to run as root
    if dump_dir:
        args += ["-d", f"{dump_dir}/msg."]
    proc = start(args + [f"127.0.0.1:{port}", "256"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"smtp-sink did not start on port {port}")
            time.sleep(0.05)


def write_backlog(directory, count):
    """`count` queue files as mailfcgi writes them (QueuedEmail's JSON), each through a temp
    file and a rename, then synced to disk, as a real backlog would be."""
    directory.mkdir()
    now = datetime.datetime.now(datetime.timezone.utc)
    ms = int(now.timestamp() * 1000)
    created = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    for i in range(count):
        # UUIDv7: the time, version 7, random bits, variant 10; the last 8 hex digits (which
        # name the file) are a counter so that names never collide.
        rand = uuid.uuid4().hex
        hex_id = f"{ms:012x}7{rand[:3]}{8 | int(rand[3], 16) & 3:x}{rand[4:11]}{i:08x}"
        request_id = f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-{hex_id[20:]}"
        email = {"attempts": [], "bcc": [], "body": BODY, "cc": [], "created_at": created, "format": "plain",
                 "message_id": f"<{request_id}@example.com>", "priority": 2, "request_id": request_id,
                 "retry_count": 0, "subject": SUBJECT, "to_email": RECIPIENT}
        name = f"batch_{ms}_{hex_id[-8:]}.json"
        temp = directory / f".tmp-{name}"
        temp.write_text(json.dumps(email))
        temp.rename(directory / name)
    os.sync()


def copy_backlog(backlog, queue_dir):
    """Fills a fresh queue with copies of the backlog's files, synced before the run so that
    no dirty pages are flushed during it. Not hard links: the queue sets aside a file with two
    names (each could be sent), as it must."""
    queue_dir.mkdir(parents=True)
    for name in os.listdir(backlog):
        shutil.copyfile(backlog / name, queue_dir / name)
    os.sync()


def psql(database, sql):
    """Runs `sql` with psql against `database` (a URL); returns its unaligned output."""
    return subprocess.run(["psql", "-X", "-At", "-q", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
                          capture_output=True, text=True, check=True).stdout.strip()


def backlog_rows(backlog, path):
    """The backlog as the postgres store's rows (a CSV for COPY): what `enqueue` inserts for
    each email, its JSON as the body."""
    with open(path, "w", newline="") as out:
        rows = csv.writer(out)
        for name in sorted(os.listdir(backlog)):
            body = (backlog / name).read_text()
            email = json.loads(body)
            rows.writerow([email["request_id"], "waiting", email["priority"], email["created_at"], body])


def fill_database(database, rows):
    """A fresh queue in `database`: the rows copied in, vacuumed (hint bits and statistics
    set, as a queue that has sat for a while has them) and checkpointed (no dirty page left
    to be flushed during the run)."""
    psql(database, "TRUNCATE mail_emails")
    psql(database, f"\\copy mail_emails (request_id, state, priority, created_at, body) FROM '{rows}' WITH (FORMAT csv)")
    psql(database, "VACUUM ANALYZE mail_emails")
    psql(database, "CHECKPOINT")


def sent_at(path):
    """When a delivered email was filed in the trash (`B.sent.json`): its change time, which
    the rename into the trash sets, epoch seconds."""
    return os.stat(path).st_ctime


def sent_so_far(data):
    """Emails sent, from the status file (data/status/workers.json); 0 before it exists."""
    try:
        status = json.loads((data / "status/workers.json").read_text())
    except (OSError, ValueError):  # not written yet, or caught between write and rename
        return 0
    return sum(worker["emails_sent"] for worker in status["workers"])


def failed_so_far(data):
    """Emails that failed an attempt, from the status file; 0 before it exists."""
    try:
        status = json.loads((data / "status/workers.json").read_text())
    except (OSError, ValueError):
        return 0
    return sum(worker["emails_failed"] for worker in status["workers"])


def deliver(workers, port, backlog, work, extra_env=None, database=None):
    """One run: mailworkerd with `workers` threads empties a copy of `backlog` into the sink
    at `port` (`extra_env`: settings added, DKIM's say). With `database` (a URL), the postgres
    store's queue there instead, `backlog` then being its rows (`backlog_rows`). Returns
    emails/s from its start to the last email sent, the seconds to the first one, its peak
    RSS and its CPU time per email."""
    base = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    data = base / "data"
    if database:
        fill_database(database, backlog)
        count = int(psql(database, "SELECT count(*) FROM mail_emails"))
        extra_env = {**(extra_env or {}), "QUEUE_STORE": "postgres", "DATABASE_URL": database}
    else:
        copy_backlog(backlog, data / "queue")
        count = len(os.listdir(data / "queue"))
    for folder in ("trash", "dead_letter"):  # watched below before mailworkerd makes them
        (data / folder).mkdir(parents=True)
    # Only what this run sets: a PASSWORD or SMTP_* in the caller's environment must not leak in.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATA_DIR": str(data), "LOG_DIR": str(base / "logs"),
           "LOG_STDERR": "false", "SENDER_EMAIL": SENDER, "SMTP_SERVER": "127.0.0.1", "PORT": str(port),
           "SMTP_TLS": "none", "NUM_WORKERS": str(workers), **(extra_env or {})}
    try:
        started = time.time()
        # Core dumps allowed (core_pattern permitting), for the crash kept above.
        proc = start([BIN / "mailworkerd"], cwd=base, env=env,
                     preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2))
        try:
            # Progress comes from the status file mailworkerd rewrites every second: listing
            # a trash folder of up to 20,000 names four times a second took a tenth of the
            # machine's CPU from the run. The end time comes from the names, listed once.
            while (done := sent_so_far(data)) < count:
                failed = failed_so_far(data) if database else len(os.listdir(data / "dead_letter"))
                if proc.poll() is not None or failed or time.time() - started > RUN_TIMEOUT:
                    tail = (base / "logs/mailworkerd.log").read_text().splitlines()[-5:]
                    kept = ""
                    if (proc.poll() or 0) < 0:
                        # Killed by a signal (a crash): its folder, with any core file, outlives the run.
                        kept = tempfile.mkdtemp(prefix="mailworkerd-crash-")
                        shutil.copytree(base, kept, dirs_exist_ok=True, ignore=shutil.ignore_patterns("queue", "trash"))
                        kept = f" (run folder kept in {kept})"
                    raise RuntimeError(f"delivery stopped at {done} of {count} (exit {proc.poll()}, "
                                       f"{failed} failed){kept}: " + " | ".join(tail))
                time.sleep(0.1)
            sent = None if database else os.listdir(data / "trash")
            memory = memory_mib(proc.pid)
            # utime and stime, fields 14 and 15 of proc(5)'s stat, after the ")" ending field 2.
            ticks = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu_seconds = (int(ticks[11]) + int(ticks[12])) / os.sysconf("SC_CLK_TCK")
        finally:
            stop(proc)
        if database:
            first, last = map(float, psql(database, "SELECT extract(epoch FROM min(updated_at)), "
                                                    "extract(epoch FROM max(updated_at)) FROM mail_emails "
                                                    "WHERE state = 'sent'").split("|"))
            times = [first, last]
        else:
            times = [sent_at(data / "trash" / name) for name in sent]
        return {"emails_per_second": count / (max(times) - started), "first_sent_seconds": min(times) - started,
                # From the first email sent to the last: the steady rate, start-up left out.
                "span_emails_per_second": (count - 1) / max(1e-6, max(times) - min(times)),
                **memory, "cpu_ms_per_email": 1000 * cpu_seconds / count}
    finally:
        shutil.rmtree(base)


def smtp_source(sessions, port, length, count=BACKLOG):
    """smtp-source sends `count` messages with `length` bytes of payload over `sessions`
    parallel sessions, each reusing its connection (-d). Returns emails/s."""
    started = time.monotonic()
    subprocess.run([SOURCE, "-s", str(sessions), "-d", "-m", str(count), "-l", str(length),
                    "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}"],
                   check=True, stdout=subprocess.DEVNULL, timeout=RUN_TIMEOUT)
    return count / (time.monotonic() - started)


def dumped_message_bytes(dump_dir):
    """Size on the wire (CRLF line ends) of the one message smtp-sink dumped, without the
    X-* and Received: lines the sink adds and the empty line it appends; removes the dump."""
    [dump] = list(dump_dir.iterdir())
    lines = dump.read_bytes().split(b"\n")
    dump.unlink()
    i = 0
    while lines[i].startswith(b"X-"):
        i += 1
    i += 1  # Received:
    while lines[i][:1] in (b" ", b"\t"):
        i += 1
    message = lines[i:-2]  # the file ends with the empty line and a final newline
    return sum(len(line) + 2 for line in message)


def message_sizes(work, one_email):
    """The size of the message mailworkerd sends for one backlog email, and the smtp-source
    `-l` that gives its messages (its own headers plus the payload) the same size; both
    measured as a dumping smtp-sink receives them."""
    dump_dir = work / "dump"
    dump_dir.mkdir()
    dump_dir.chmod(0o777)  # smtp-sink writes as nobody
    sink, port = start_sink(dump_dir)
    try:
        deliver(1, port, one_email, work)
        ours = dumped_message_bytes(dump_dir)
        smtp_source(1, port, ours, count=1)
        length = ours - (dumped_message_bytes(dump_dir) - ours)
        smtp_source(1, port, length, count=1)
        return ours, length, dumped_message_bytes(dump_dir)
    finally:
        stop(sink)


def main():
    ensure_postfix()
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="delivery-bench-"))
    try:
        work.chmod(0o755)  # so that smtp-sink, as nobody, reaches its dump folder
        write_backlog(work / "one", 1)
        message_bytes, source_length, source_bytes = message_sizes(work, work / "one")
        log(f"  message: {message_bytes} bytes; smtp-source -l {source_length} sends {source_bytes} bytes")
        write_backlog(work / "backlog", BACKLOG)
        database = None
        if server := os.environ.get("BENCH_DATABASE_URL"):
            database = subprocess.run([Path(__file__).parent / "postgres.sh", "createdb", server, "bench_delivery"],
                                      capture_output=True, text=True, check=True).stdout.strip()
            # mailctl migrates the schema, as any program opening the store does.
            subprocess.run([BIN / "mailctl", "stats"], check=True, stdout=subprocess.DEVNULL, cwd=work,
                           env={"PATH": os.environ["PATH"], "DATA_DIR": str(work / "mailctl"), "LOG_STDERR": "false",
                                "LOG_DIR": str(work / "mailctl"), "QUEUE_STORE": "postgres", "DATABASE_URL": database})
            backlog_rows(work / "backlog", work / "backlog.csv")
        sink, port = start_sink()
        runs = {n: {"ours": [], "source": [], "seconds": None} for n in WORKERS}
        pg_runs = {n: {"ours": [], "seconds": None} for n in POSTGRES_WORKERS if database}
        pg_spent = 0.0  # the postgres runs' wall time, which the file store's budget leaves out
        for round_number in range(ROUNDS):
            for n in WORKERS:
                r = runs[n]
                if not (r["seconds"] and time.monotonic() - began - pg_spent + r["seconds"] > BUDGET_SECONDS):
                    run_began = time.monotonic()
                    r["source"].append(smtp_source(n, port, source_length))
                    r["ours"].append(deliver(n, port, work / "backlog", work))
                    r["seconds"] = r["seconds"] or time.monotonic() - run_began
                    log(f"  round {round_number + 1}, {n} workers: {r['ours'][-1]['emails_per_second']:,.0f} emails/s, "
                        f"smtp-source {r['source'][-1]:,.0f} emails/s")
                p = pg_runs.get(n)
                if p is None or (p["seconds"] and pg_spent + p["seconds"] > POSTGRES_BUDGET_SECONDS):
                    continue
                run_began = time.monotonic()
                p["ours"].append(deliver(n, port, work / "backlog.csv", work, database=database))
                p["seconds"] = p["seconds"] or time.monotonic() - run_began
                pg_spent += time.monotonic() - run_began
                log(f"  round {round_number + 1}, {n} workers, postgres store: "
                    f"{p['ours'][-1]['emails_per_second']:,.0f} emails/s")
        stop(sink)
    finally:  # also on Ctrl-C, SIGTERM or a failed run: no process or file is left behind
        for proc in list(running):
            stop(proc, timeout=10)
        shutil.rmtree(work)

    result = {"benchmark": "delivery", "backlog": BACKLOG, "rounds": ROUNDS, "budget_seconds": BUDGET_SECONDS,
              "message_bytes": message_bytes, "smtp_source_length": source_length,
              "smtp_source_message_bytes": source_bytes, "by_workers": {}}
    for n, r in runs.items():
        ours = statistics.median(x["emails_per_second"] for x in r["ours"])
        source = statistics.median(r["source"])
        result["by_workers"][str(n)] = {
            "runs": len(r["ours"]), "emails_per_second": round(ours),
            "runs_emails_per_second": [round(x["emails_per_second"]) for x in r["ours"]],
            "first_sent_seconds": round(statistics.median(x["first_sent_seconds"] for x in r["ours"]), 3),
            "smtp_source_emails_per_second": round(source), "ratio": round(ours / source, 3),
            "peak_rss_mib": max(x["peak_rss_mib"] for x in r["ours"]),
            "rss_anon_mib_at_end": max(x["rss_anon_mib"] for x in r["ours"]),
            "rss_file_mib_at_end": max(x["rss_file_mib"] for x in r["ours"]),
            "cpu_ms_per_email": round(statistics.median(x["cpu_ms_per_email"] for x in r["ours"]), 3)}
    reduced = [n for n in WORKERS if len(runs[n]["ours"]) < ROUNDS]
    if reduced:
        result["note"] = (f"NUM_WORKERS {', '.join(map(str, reduced))}: fewer than {ROUNDS} runs, "
                          f"more did not fit the {BUDGET_SECONDS} s budget")
    for n, p in pg_runs.items():
        ours = statistics.median(x["emails_per_second"] for x in p["ours"])
        result.setdefault("postgres", {"budget_seconds": POSTGRES_BUDGET_SECONDS, "by_workers": {}})
        result["postgres"]["by_workers"][str(n)] = {
            "runs": len(p["ours"]), "emails_per_second": round(ours),
            "runs_emails_per_second": [round(x["emails_per_second"]) for x in p["ours"]],
            "first_sent_seconds": round(statistics.median(x["first_sent_seconds"] for x in p["ours"]), 3),
            "span_emails_per_second": round(statistics.median(x["span_emails_per_second"] for x in p["ours"])),
            "vs_file_store": round(ours / result["by_workers"][str(n)]["emails_per_second"], 3),
            "peak_rss_mib": max(x["peak_rss_mib"] for x in p["ours"]),
            "cpu_ms_per_email": round(statistics.median(x["cpu_ms_per_email"] for x in p["ours"]), 3)}
    result["peak_rss_mib"] = max(r["peak_rss_mib"] for r in result["by_workers"].values())
    result["ratio_at_16"] = result["by_workers"]["16"]["ratio"]
    result["target_at_16_met"] = result["ratio_at_16"] >= 0.5
    result["seconds"] = round(time.monotonic() - began)
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    # SIGTERM (e.g. from a killed make) unwinds like Ctrl-C, through the finally clauses.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
