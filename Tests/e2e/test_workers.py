"""mailworkerd's metrics through the status file, and /health following it."""
import signal
import time

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
    assert len(ids) == 300


def test_killed_worker_makes_health_503_within_three_heartbeats_and_back(stack):
    assert stack.request("GET", "/health").status_code == 200
    stack.stop_daemon("mailworkerd", sig=signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: stack.request("GET", "/health").status_code == 503, timeout=10, what="/health 503")
    assert time.monotonic() - killed <= 4.5  # three 1-second heartbeats, plus scheduling slack
    health = stack.request("GET", "/health").json()
    assert health["status"] == "degraded" and "not running" in health["components"]["sender"]
    workers = stack.request("GET", "/workers/status").json()
    assert workers["worker_pool_status"] == "not_running" and workers["status"]["active_workers"] == 0
    stack.start_daemon("mailworkerd")
    wait_until(lambda: stack.request("GET", "/health").status_code == 200, timeout=10, what="/health 200")


def test_stopped_smtp_server_leaves_the_email_pending_and_health_degraded(tmp_path, smtp):
    stack = Stack(tmp_path, {"SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
                             "RETRY_BASE_DELAY": "0.5", "MAX_RETRIES": "50"}).start()
    try:
        smtp.controller.stop()
        assert stack.post_email({"to_email": "a@example.com", "subject": "s", "body": "b"}).status_code == 200
        wait_until(lambda: stack.request("GET", "/health").status_code == 503, timeout=10, what="/health 503")
        health = stack.request("GET", "/health").json()
        assert "delivery failing" in health["components"]["sender"]
        assert stack.files("dead_letter") == [] and len(stack.files("queue")) == 1
        controller, handler = start_smtp_server(smtp.port)
        try:
            handler.wait_for(1, timeout=30)
            wait_until(lambda: stack.request("GET", "/health").status_code == 200, timeout=10, what="/health 200")
        finally:
            controller.stop()
    finally:
        stack.stop()


def test_auto_processing_disabled_delivers_nothing_and_says_so(tmp_path, smtp):
    stack = Stack(tmp_path, {"SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
                             "AUTO_PROCESSING_ENABLED": "false"}).start()
    try:
        assert stack.post_email({"to_email": "a@example.com", "subject": "s", "body": "b"}).status_code == 200
        body = wait_until(lambda: (b := stack.request("GET", "/workers/status").json())["worker_pool_status"] == "disabled" and b,
                          what="the disabled state")
        assert body["auto_processing_enabled"] is False
        time.sleep(1)
        assert smtp.messages == [] and len(stack.files("queue")) == 1
        assert stack.request("GET", "/health").status_code == 200
    finally:
        stack.stop()
