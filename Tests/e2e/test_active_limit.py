"""QUEUE_ACTIVE_LIMIT: mailworkerd's claim index (the file store's) holds at most that many
pending emails. A backlog deeper than that is delivered whole and once each, also across a
kill -9 while the index holds only part of it, and an urgent email accepted behind the backlog
takes the place of one held instead of waiting for the backlog. The database store orders in
the database and has no such index: the same outcomes hold there too."""
import os
import signal
import subprocess

import pytest

from stack import BIN_DIR, Stack, wait_until

LIMIT = 20


def backlog_stack(tmp_path, smtp, store, **env):
    return Stack(tmp_path, {"SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
                            "QUEUE_ACTIVE_LIMIT": str(LIMIT), **env}, store)


def post_backlog(stack, count):
    for start in range(0, count, 100):
        batch = [{"to_email": f"u{i}@example.com", "subject": "s", "body": "b"}
                 for i in range(start, min(count, start + 100))]
        assert stack.request("POST", "/emails/batch", json=batch).status_code == 200


def recipients(smtp):
    return [message.rcpt_tos[0] for message in smtp.messages]


def test_a_backlog_deeper_than_the_index_is_delivered_once_each_across_a_kill_9(tmp_path, smtp, store):
    stack = backlog_stack(tmp_path, smtp, store, NUM_WORKERS="4").start(daemons=("mailfcgi", "nginx"))
    try:
        post_backlog(stack, 400)
        smtp.delay = 0.01  # keeps the backlog long enough to kill in the middle of it
        stack.start_daemon("mailworkerd")
        smtp.wait_for(60, timeout=60)
        assert stack.stop_daemon("mailworkerd", signal.SIGKILL) == -signal.SIGKILL
        smtp.delay = 0
        stack.start_daemon("mailworkerd")
        smtp.wait_for(400, timeout=120)
        wait_until(lambda: stack.counts()["trash"] == 400, timeout=30, what="every email filed as sent")
        sent = recipients(smtp)
        assert set(sent) == {f"u{i}@example.com" for i in range(400)}
        # Sent twice only within the documented window: the sends in flight at the kill.
        assert len(sent) - 400 <= 4, len(sent) - 400
        assert stack.counts()["waiting"] == 0
        status = wait_until(lambda: stack.request("GET", "/workers/status").json()["status"], what="status")
        wait_until(lambda: stack.request("GET", "/workers/status").json()["status"]["queue_pending"] == 0,
                   what="the workers' pending count back to 0")
        assert status["total_workers"] == 4
    finally:
        stack.stop()


def test_an_urgent_email_behind_the_backlog_goes_before_it(tmp_path, smtp, store):
    stack = backlog_stack(tmp_path, smtp, store, NUM_WORKERS="1").start(daemons=("mailfcgi", "nginx"))
    try:
        post_backlog(stack, 300)
        smtp.delay = 0.02
        stack.start_daemon("mailworkerd")
        smtp.wait_for(30, timeout=60)
        urgent = stack.post_email({"to_email": "urgent@example.com", "subject": "code", "body": "123456",
                                   "priority": 1})
        assert urgent.status_code == 200, urgent.text
        before = len(smtp.messages)
        smtp.delay = 0
        smtp.wait_for(301, timeout=120)
        position = recipients(smtp).index("urgent@example.com")
        # At most the index's worth of the backlog (plus the send in flight) went before it.
        assert position - before <= LIMIT + 1, (before, position)
        assert sorted(recipients(smtp)) == sorted([f"u{i}@example.com" for i in range(300)] + ["urgent@example.com"])
    finally:
        stack.stop()


@pytest.mark.parametrize("value", ["5", "many", "20000000"])
def test_an_active_limit_out_of_range_is_named(tmp_path, value):
    result = subprocess.run([BIN_DIR / "mailworkerd", "--check-config"], cwd=tmp_path,
                            env={**os.environ, "DATA_DIR": str(tmp_path / "data"), "QUEUE_ACTIVE_LIMIT": value},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "QUEUE_ACTIVE_LIMIT" in result.stderr, result.stderr
