"""GET /metrics: the Prometheus text format, parsed by prometheus_client's parser and checked
by promtool; the counters move as the test sends, defers, dead-letters and cancels."""
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from stack import Stack, wait_until


@pytest.fixture
def stack(tmp_path, smtp, store):
    s = Stack(tmp_path, {
        "SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
        "MAX_RETRIES": "1", "RETRY_BASE_DELAY": "0", "WORKER_POLLING_INTERVAL": "1",
    }, store).start()
    yield s
    s.stop()


def scrape(stack, **kwargs):
    response = stack.request("GET", "/metrics", **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.text


def samples(text):
    """{(name, frozenset(labels)): value} for every sample, through prometheus_client's parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text, name, **labels):
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def promtool(text):
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                            timeout=30)
    return result.returncode, result.stdout + result.stderr


def test_metrics_parse_and_pass_promtool(stack, smtp):
    wait_until(lambda: value(scrape(stack), "mail_worker_up") == 1, what="mailworkerd's metrics")
    text = scrape(stack)
    code, out = promtool(text)
    assert code == 0, out
    names = {family.name for family in text_string_to_metric_families(text)}
    for name in ("mail_emails_accepted", "mail_emails_canceled", "mail_enqueue_duration_seconds",
                 "mail_queue_emails", "mail_queue_oldest_due_age_seconds", "mail_build_info", "mail_worker_up",
                 "mail_emails_sent", "mail_emails_deferred", "mail_emails_dead_lettered",
                 "mail_delivery_duration_seconds", "mail_relay_healthy", "mail_delivery_paused", "mail_workers"):
        assert name in names, (name, sorted(names))
    assert value(text, "mail_relay_healthy") == 1
    assert value(text, "mail_delivery_paused") == 0


def test_counters_move_with_sends_deferrals_dead_letters_and_cancels(stack, smtp):
    wait_until(lambda: value(scrape(stack), "mail_worker_up") == 1, what="mailworkerd's metrics")
    before = scrape(stack)
    for i in range(3):
        assert stack.post_email({"to_email": f"ok{i}@example.com", "subject": "s", "body": "b"}).status_code == 200
    smtp.wait_for(3)
    wait_until(lambda: value(scrape(stack), "mail_emails_sent_total") >= 3, what="3 sent")

    # Refused for now, then for now again: one deferral, then a dead letter (MAX_RETRIES 1).
    smtp.rcpt_by_address["flaky@example.com"] = ["451 4.7.1 try later", "451 4.7.1 try later"]
    assert stack.post_email({"to_email": "flaky@example.com", "subject": "s", "body": "b"}).status_code == 200
    wait_until(lambda: value(scrape(stack), "mail_emails_dead_lettered_total") >= 1, timeout=20,
               what="the dead letter")

    later = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    scheduled = stack.post_email({"to_email": "later@example.com", "subject": "s", "body": "b", "send_at": later})
    batch = stack.request("POST", "/emails/batch", json=[
        {"to_email": "b1@example.com", "subject": "s", "body": "b", "send_at": later},
        {"to_email": "b2@example.com", "subject": "s", "body": "b", "send_at": later}])
    assert batch.status_code == 200, batch.text
    assert stack.request("DELETE", f"/email/{scheduled.json()['request_id']}").status_code == 200

    after = scrape(stack)
    assert promtool(after)[0] == 0
    assert value(after, "mail_emails_accepted_total") - value(before, "mail_emails_accepted_total") == 7
    assert value(after, "mail_emails_canceled_total") - value(before, "mail_emails_canceled_total") == 1
    assert value(after, "mail_emails_sent_total") - value(before, "mail_emails_sent_total") == 3
    assert value(after, "mail_emails_deferred_total") - value(before, "mail_emails_deferred_total") >= 1
    assert value(after, "mail_emails_dead_lettered_total") - value(before, "mail_emails_dead_lettered_total") == 1
    assert value(after, "mail_queue_emails", state="dead_letter") == 1
    assert value(after, "mail_queue_emails", state="scheduled") == 2
    assert value(after, "mail_queue_emails", state="finished") == 4  # 3 sent, 1 canceled
    # Histograms count every stored request and every attempt.
    assert value(after, "mail_enqueue_duration_seconds_count") - value(before, "mail_enqueue_duration_seconds_count") == 6
    assert value(after, "mail_delivery_duration_seconds_count") >= 5


def test_relay_down_shows_as_paused_and_the_oldest_due_email_ages(stack, smtp):
    wait_until(lambda: value(scrape(stack), "mail_worker_up") == 1, what="mailworkerd's metrics")
    smtp.controller.stop()  # the relay goes away: a sender-side failure pauses delivery
    assert stack.post_email({"to_email": "waiting@example.com", "subject": "s", "body": "b"}).status_code == 200
    wait_until(lambda: value(scrape(stack), "mail_delivery_paused") == 1, timeout=15, what="the pause")
    text = scrape(stack)
    assert value(text, "mail_relay_healthy") == 0
    wait_until(lambda: value(scrape(stack), "mail_queue_oldest_due_age_seconds") >= 1, timeout=15,
               what="the waiting email to age")


def test_metrics_need_no_password_from_this_host_and_stop_showing_a_stopped_worker(stack, smtp):
    wait_until(lambda: value(scrape(stack), "mail_worker_up") == 1, what="mailworkerd's metrics")
    # nginx lets this host in without credentials (as /health), like a local Prometheus.
    response = requests.get(stack.url("/metrics"), verify=stack.cert, timeout=10)
    assert response.status_code == 200
    stack.stop_daemon("mailworkerd")
    wait_until(lambda: value(scrape(stack), "mail_worker_up") == 0, timeout=15, what="mail_worker_up 0")
    text = scrape(stack)
    assert "mail_emails_sent_total" not in text  # a stopped worker's figures are not served as current
    assert promtool(text)[0] == 0
