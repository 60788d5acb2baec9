"""mailworkerd's metrics through the status file, and /health following it."""
import signal
import time

import pytest

from smtp_server import start_smtp_server
from stack import Stack, wait_until
from test_queue import post_many


def test_three_workers_share_300_emails_and_report_it(stack, smtp):
    ids = post_many(stack, 300)
    smtp.wait_for(300, timeout=60)

    def settled():
        body = stack.request("GET", "/workers/status").json()
        workers = body["status"]["workers"]
        return sum(w["emails_sent"] for w in workers) == 300 and body
    body = wait_until(settled, what="the status file to count 300")
    assert body["auto_processing_enabled"] is True
    assert body["worker_pool_status"] == "running"
    assert body["status"]["total_workers"] == 3 and body["status"]["active_workers"] == 3
    workers = body["status"]["workers"]
    assert sorted(w["worker_id"] for w in workers) == [1, 2, 3]
    assert all(w["running"] and w["avg_latency_ms"] > 0 and w["emails_failed"] == 0 for w in workers)
    assert all("current_batch" in w for w in workers)
    assert isinstance(body["status"]["sender"]["last_success_at"], str)  # ISO 8601, not a number
    assert body["status"]["sender"]["healthy"] is True
    assert len(ids) == 300


@pytest.mark.serial  # 503 within 4.5 s of the kill
def test_killed_worker_makes_health_503_within_three_heartbeats_and_back(stack):
    assert stack.request("GET", "/health").status_code == 200
    stack.stop_daemon("mailworkerd", sig=signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: stack.request("GET", "/health").status_code == 503, timeout=10, what="/health 503")
    assert time.monotonic() - killed <= 4.5  # three 1-second heartbeats, plus scheduling slack
    health = stack.request("GET", "/health").json()
    assert health["status"] == "degraded" and "not running" in health["components"]["email_sender"]
    workers = stack.request("GET", "/workers/status").json()
    assert workers["worker_pool_status"] == "not_running" and workers["status"]["active_workers"] == 0
    stack.start_daemon("mailworkerd")
    wait_until(lambda: stack.request("GET", "/health").status_code == 200, timeout=10, what="/health 200")


def test_stopped_smtp_server_leaves_the_email_pending_and_health_degraded(tmp_path, smtp, store):
    stack = Stack(tmp_path, {"SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
                             "RETRY_BASE_DELAY": "0.5", "DELIVERY_PAUSE_MAX": "2"}, store).start()
    try:
        smtp.controller.stop()
        assert stack.post_email({"to_email": "a@example.com", "subject": "s", "body": "b"}).status_code == 200
        wait_until(lambda: stack.request("GET", "/health").status_code == 503, timeout=10, what="/health 503")
        health = stack.request("GET", "/health").json()
        assert "delivery paused" in health["components"]["email_sender"]
        assert "next probe in" in health["components"]["email_sender"]
        counts = stack.counts()
        assert counts["dead_letter"] == 0 and counts["waiting"] == 1
        controller, handler = start_smtp_server(smtp.port)
        try:
            handler.wait_for(1, timeout=30)
            wait_until(lambda: stack.request("GET", "/health").status_code == 200, timeout=10, what="/health 200")
        finally:
            controller.stop()
    finally:
        stack.stop()


def test_auto_processing_disabled_delivers_nothing_and_says_so(tmp_path, smtp, store):
    stack = Stack(tmp_path, {"SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
                             "AUTO_PROCESSING_ENABLED": "false"}, store).start()
    try:
        assert stack.post_email({"to_email": "a@example.com", "subject": "s", "body": "b"}).status_code == 200
        body = wait_until(lambda: (b := stack.request("GET", "/workers/status").json())["worker_pool_status"] == "disabled" and b,
                          what="the disabled state")
        assert body["auto_processing_enabled"] is False
        time.sleep(1)
        assert smtp.messages == [] and stack.counts()["waiting"] == 1
        assert stack.request("GET", "/health").status_code == 200
    finally:
        stack.stop()


def test_second_mailworkerd_is_refused_unless_shared(stack):
    import subprocess
    from stack import BIN_DIR
    result = subprocess.run([BIN_DIR / "mailworkerd"], cwd=stack.base, env=stack.env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "another mailworkerd" in result.stderr and "WORKERD_SHARED" in result.stderr
    stack.env["WORKERD_SHARED"] = "true"
    stack.start_daemon("mailworkerd", instance="2")
    wait_until(lambda: [n for n in stack.files("status") if n.startswith("workers-")], what="its own status file")
    assert stack.stop_daemon("mailworkerd-2") == 0
    assert not [n for n in stack.files("status") if n.startswith("workers-")]


def test_sigterm_while_sending_exits_0_and_loses_nothing(stack, smtp):
    smtp.delay = 0.3
    ids = post_many(stack, 30, threads=3)
    wait_until(lambda: len(smtp.messages) >= 3, what="sends in flight")
    started = time.monotonic()
    assert stack.stop_daemon("mailworkerd") == 0
    assert time.monotonic() - started < 30
    assert stack.counts()["processing"] == 0
    status = stack.request("GET", "/workers/status").json()
    assert status["worker_pool_status"] == "stopped"
    stack.start_daemon("mailworkerd")
    wait_until(lambda: set(smtp.message_ids()) >= {f"<{i}@example.org>" for i in ids}, timeout=60,
               what="every email after the restart")


def test_sends_stuck_past_shutdown_timeout_go_back_to_the_queue(tmp_path, smtp, store):
    smtp.delay = 8
    stack = Stack(tmp_path, {"SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
                             "SHUTDOWN_TIMEOUT": "1", "NUM_WORKERS": "1"}, store).start()
    try:
        assert stack.post_email({"to_email": "a@example.com", "subject": "s", "body": "b"}).status_code == 200
        wait_until(lambda: stack.counts()["processing"], what="the claim")
        started = time.monotonic()
        assert stack.stop_daemon("mailworkerd") == 0
        assert time.monotonic() - started < 5
        counts = stack.counts()
        assert counts["waiting"] == 1 and counts["processing"] == 0
        assert "back to the queue" in stack.log("mailworkerd")
    finally:
        stack.stop()


def test_log_file_rotates_keeping_its_backups(tmp_path, smtp, store):
    stack = Stack(tmp_path, {"SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
                             "LOG_MAX_BYTES": "4096", "LOG_BACKUPS": "3", "LOG_LEVEL": "debug"}, store).start()
    try:
        post_many(stack, 120, threads=4)
        smtp.wait_for(120, timeout=60)
        logs = sorted(p.name for p in (tmp_path / "logs").iterdir())
        assert logs == ["mailfcgi.log", "mailfcgi.log.1", "mailfcgi.log.2", "mailfcgi.log.3",
                        "mailworkerd.log", "mailworkerd.log.1", "mailworkerd.log.2", "mailworkerd.log.3"]
        for name in logs:
            assert (tmp_path / "logs" / name).stat().st_size <= 4096
        text = (tmp_path / "logs" / "mailfcgi.log").read_text()
        assert "request_id=" in text and "user=demo" in text
        assert "PASSWORD" not in text and "b\n" not in text
    finally:
        stack.stop()


def test_process_batch_delivers_the_next_email_by_hand(tmp_path, smtp, store):
    stack = Stack(tmp_path, {"SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
                             "AUTO_PROCESSING_ENABLED": "false"}, store).start()
    try:
        empty = stack.request("POST", "/process-batch").json()
        assert empty["processed"] is False
        ids = post_many(stack, 2, threads=1)
        first = stack.request("POST", "/process-batch").json()
        assert first["processed"] is True and first["outcome"] == "sent"
        assert first["request_id"] in ids
        assert smtp.message_ids() == [f"<{first['request_id']}@example.org>"]
        smtp.rcpt_replies = ["550 5.1.1 unknown user"]
        second = stack.request("POST", "/process-batch").json()
        assert second["outcome"] == "dead_letter" and "550" in second["error"]
        assert stack.request("GET", "/process-batch").status_code == 405
    finally:
        stack.stop()


def test_process_batch_while_mailworkerd_runs_never_sends_twice(stack, smtp):
    ids = post_many(stack, 60, threads=3)
    for _ in range(30):
        stack.request("POST", "/process-batch")
    smtp.wait_for(60, timeout=30)
    wait_until(lambda: stack.counts()["waiting"] == 0, what="the queue to drain")
    assert sorted(smtp.message_ids()) == sorted(f"<{i}@example.org>" for i in ids)
