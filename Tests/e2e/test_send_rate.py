"""SMTP_MAX_RATE holds across the pool, and a relay's "slow down" (a 421/454 that says rate
or too many) lowers the rate instead of spending the emails' retries. Timing is checked with
a wide margin (the machine is shared); the figure itself belongs in bench/."""
import time

import pytest

from stack import Stack, wait_until


def relay_stack(tmp_path, smtp, store, **env):
    return Stack(tmp_path, {"SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
                            "NUM_WORKERS": "8", **env}, store).start()


def send(stack, count):
    for start in range(0, count, 100):
        batch = [{"to_email": f"u{i}@example.com", "subject": "s", "body": "b"} for i in range(start, min(count, start + 100))]
        assert stack.request("POST", "/emails/batch", json=batch).status_code == 200


@pytest.mark.serial  # measures the send rate to within -40%/+25%
def test_the_rate_limit_holds_across_every_worker(tmp_path, smtp, store):
    stack = relay_stack(tmp_path, smtp, store, SMTP_MAX_RATE="25")
    try:
        arrivals = []
        original = smtp.handle_DATA

        async def timed(server, session, envelope):
            arrivals.append(time.monotonic())
            return await original(server, session, envelope)

        smtp.handle_DATA = timed
        send(stack, 125)
        smtp.wait_for(125, timeout=60)
        # 125 at 25 a second: the first second's burst, then 25 a second.
        rate = (len(arrivals) - 25) / (arrivals[-1] - arrivals[24])
        assert 25 * 0.6 <= rate <= 25 * 1.25, rate
        status = stack.request("GET", "/workers/status").json()["status"]
        assert status["send_rate"] == {"configured": 25.0, "current": 25.0, "throttled": False}
    finally:
        stack.stop()


# Serial: the pool recovers from a throttle after 10 s without one; under the parallel pass's
# load the 40 sends took long enough once for it to recover before the check.
@pytest.mark.serial
def test_a_relay_throttle_slows_the_pool_and_spends_no_retry(tmp_path, smtp, store):
    stack = relay_stack(tmp_path, smtp, store, MAX_RETRIES="0")  # any counted failure would dead-letter
    try:
        smtp.data_replies = ["454 4.7.0 Throttling failure: Maximum sending rate exceeded"] * 4 + \
            ["421 4.7.0 Error: too many messages in this connection"] * 2
        send(stack, 40)
        smtp.wait_for(40, timeout=60)
        assert stack.counts()["dead_letter"] == 0
        status = stack.request("GET", "/workers/status").json()["status"]
        assert stack.request("GET", "/health").json()["send_rate"] == status["send_rate"]
        assert status["send_rate"]["configured"] is None
        assert status["send_rate"]["throttled"] is True and status["send_rate"]["current"] > 0
        log = stack.log("mailworkerd")
        assert "the relay asks to slow down" in log
        text = stack.request("GET", "/metrics").text
        assert "mail_send_rate_per_second" in text and "mail_emails_dead_lettered_total 0" in text
    finally:
        stack.stop()


def test_fewer_connections_than_workers_runs_fewer_workers(tmp_path, smtp, store):
    stack = relay_stack(tmp_path, smtp, store, SMTP_MAX_CONNECTIONS="2")
    try:
        status = wait_until(lambda: stack.request("GET", "/workers/status").json()["status"], what="status")
        assert status["total_workers"] == 2
        send(stack, 10)
        smtp.wait_for(10)
        assert smtp.sessions <= 2
    finally:
        stack.stop()


@pytest.mark.parametrize("value", ["fast", "-1"])
def test_bad_rate_settings_are_named(tmp_path, value):
    import os
    import subprocess
    from stack import BIN_DIR
    result = subprocess.run([BIN_DIR / "mailworkerd", "--check-config"], cwd=tmp_path,
                            env={**os.environ, "DATA_DIR": str(tmp_path / "data"), "SMTP_MAX_RATE": value},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "SMTP_MAX_RATE" in result.stderr


def test_a_throttle_to_rcpt_spends_no_retry_and_a_word_containing_rate_is_not_one(tmp_path, smtp, store):
    stack = relay_stack(tmp_path, smtp, store, MAX_RETRIES="1", RETRY_BASE_DELAY="0.2")
    try:
        smtp.rcpt_by_address["busy@example.com"] = ["454 4.7.0 Throttling failure: Maximum sending rate exceeded"] * 2
        smtp.rcpt_by_address["b2@example.com"] = ["451 4.7.1 Too many messages, slow down"] * 2
        # One throttled recipient beside one accepted: delivered to the one, the other tried again free.
        assert stack.post_email({"to_email": "busy@example.com", "subject": "s", "body": "b"}).status_code == 200
        assert stack.post_email({"to_email": "fine@example.com", "cc": ["b2@example.com"], "subject": "s",
                                 "body": "b"}).status_code == 200
        wait_until(lambda: {"busy@example.com", "b2@example.com"} <= {a for r in smtp.messages for a in r.rcpt_tos},
                   timeout=30, what="both delivered after the throttles")
        assert stack.counts()["dead_letter"] == 0
        # "migrated" holds the letters r-a-t-e but is no rate limit: it spends retries as usual.
        smtp.data_replies = ["451 4.3.0 Message could not be migrated, try later"] * 2
        assert stack.post_email({"to_email": "m@example.com", "subject": "s", "body": "b"}).status_code == 200
        wait_until(lambda: stack.counts()["dead_letter"], timeout=20, what="dead-lettered after its retry")
    finally:
        stack.stop()
