"""Mail queued by the Python service (its queue files: one object with a list of emails, local
times without a zone, claims renamed in place) is converted and delivered exactly once."""
import json
import signal
import time
import uuid
from datetime import datetime

import pytest

from stack import Stack, wait_until


def legacy_email(n, **fields):
    entry = {"request_id": str(uuid.uuid4()), "subject": f"old {n}", "body": f"queued by Python {n}",
             "to_email": f"old{n}@example.com", "from_email": "python@example.com", "template_name": None,
             "template_vars": {}, "priority": 2, "status": "pending",
             "created_at": datetime.now().isoformat(), "retry_count": 0, "max_retries": 3}
    entry.update(fields)
    return entry


def write_legacy(queue, emails, claimed=False):
    ms = int(time.time() * 1000)
    name = f"batch_{ms}_{uuid.uuid4().hex[:8]}" + (".processing.json" if claimed else ".json")
    (queue / name).write_text(json.dumps({"batch_id": name.split(".")[0], "created_at": datetime.now().isoformat(),
                                          "emails": emails}))
    time.sleep(0.002)
    return emails


def plant(stack):
    """Python-format files in data/queue/, before mailworkerd starts; returns their emails."""
    queue = stack.data / "queue"
    queue.mkdir(parents=True, exist_ok=True)
    emails = write_legacy(queue, [legacy_email(0)])
    emails += write_legacy(queue, [legacy_email(1, priority=1, retry_count=2, last_error="451 busy"),
                                   legacy_email(2, created_at="2026-11-30T06:35:46"), legacy_email(3, priority=3)])
    emails += write_legacy(queue, [legacy_email(4, status="processing")], claimed=True)
    return emails


def start_without_worker(stack):
    """Starts nginx and mailfcgi; mailworkerd is started by the test."""
    stack.start()
    stack.stop_daemon("mailworkerd")


@pytest.mark.file_store("plants the Python service's queue files, which the file store converts")
@pytest.mark.parametrize("crash", [None, "legacy.before-unlink"])
def test_mail_queued_by_the_python_service_is_delivered_once(tmp_path, smtp, store, crash):
    env = {"SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none", "WORKER_POLLING_INTERVAL": "1"}
    stack = Stack(tmp_path, env, store)
    start_without_worker(stack)
    try:
        emails = plant(stack)
        if crash:
            stack.env["MAIL_CRASH_AT"] = crash + ":2"  # in the middle: one file converted, one not
            stack.start_daemon("mailworkerd")
            assert stack.procs.pop("mailworkerd").wait(timeout=30) == -signal.SIGKILL
            del stack.env["MAIL_CRASH_AT"]
        stack.start_daemon("mailworkerd")
        expected = {f"<{e['request_id']}@example.org>" for e in emails}
        wait_until(lambda: set(smtp.message_ids()) >= expected, timeout=30, what="every old email")
        wait_until(lambda: [n for n in stack.files("queue") if not n.startswith(".tmp-")] == []
                   and stack.files("queue/active") == [], what="the queue to drain")
        time.sleep(1.5)
        received = smtp.message_ids()
        assert sorted(received) == sorted(expected), "each delivered exactly once"
        assert stack.files("corrupt") == [] and stack.files("dead_letter") == []
        # Request id, retry count and priority kept; the subject and body as queued.
        records = [json.loads((stack.data / "trash" / n).read_text()) for n in stack.files("trash")]
        by_id = {r["request_id"]: r for r in records}
        assert by_id[emails[1]["request_id"]]["retry_count"] == 2
        assert by_id[emails[1]["request_id"]]["priority"] == 1
        assert by_id[emails[3]["request_id"]]["priority"] == 3
        bodies = [m.data for m in smtp.messages]
        assert all(any(f"queued by Python {n}".encode() in b for b in bodies) for n in range(5))
        assert "converted" in stack.log("mailworkerd")
    finally:
        stack.stop()


@pytest.mark.file_store("plants the Python service's queue files, which the file store converts")
def test_one_bad_email_in_a_python_queue_file_costs_the_others_nothing(tmp_path, smtp, store):
    env = {"SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none", "WORKER_POLLING_INTERVAL": "1"}
    stack = Stack(tmp_path, env, store)
    start_without_worker(stack)
    try:
        queue = stack.data / "queue"
        good = [legacy_email(0, priority="1", subject="Grüße 😀"), legacy_email(2, extra_field="ignored")]
        bad = legacy_email(1)
        del bad["to_email"]
        write_legacy(queue, [good[0], bad, good[1]])
        write_legacy(queue, [])  # an empty batch is simply removed
        stack.start_daemon("mailworkerd")
        expected = {f"<{e['request_id']}@example.org>" for e in good}
        wait_until(lambda: set(smtp.message_ids()) >= expected, timeout=30, what="the good emails")
        wait_until(lambda: [n for n in stack.files("queue") if not n.startswith(".tmp-")] == [], what="the queue")
        time.sleep(1)
        assert sorted(smtp.message_ids()) == sorted(expected)
        corrupt = stack.files("corrupt")
        assert len(corrupt) == 1 and ".email-1.json.invalid_entry." in corrupt[0]
        kept = json.loads((stack.data / "corrupt" / corrupt[0]).read_text())
        assert kept["request_id"] == bad["request_id"]  # the bad email is kept whole, not dropped
    finally:
        stack.stop()
