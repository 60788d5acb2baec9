"""Delivery over SMTP (libcurl) against aiosmtpd: TLS modes with AUTH, certificate checks,
connection reuse, and how each class of failure is handled."""
import pytest

from certificates import make_ca_and_server_cert
from smtp_server import start_smtp_server
from stack import Stack, free_port, wait_until
from test_delivery import parse

LOGIN = ("dispatch@example.org", "s3cret-password")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_ca_and_server_cert(tmp_path_factory.mktemp("pki"))


def smtp_stack(base, port, mode, store, **env):
    settings = {"SMTP_SERVER": "127.0.0.1", "PORT": str(port), "SMTP_TLS": mode,
                "PASSWORD": LOGIN[1], "RETRY_BASE_DELAY": "0.2", **env}
    return Stack(base, settings, store).start()


def post(stack, to="a@example.com", subject="s"):
    response = stack.post_email({"to_email": to, "subject": subject, "body": "b"})
    assert response.status_code == 200, response.text
    return response.json()["request_id"]


def waiting_entry(stack, request_id):
    """The email, once it waits in the queue after an attempt (else None)."""
    entry = stack.lookup(request_id)
    return entry if entry["attempts"] and entry["state"] in ("queued", "deferred") else None


@pytest.mark.parametrize("mode", ["implicit", "starttls", "none"])
def test_delivered_in_each_tls_mode_with_auth(tmp_path, pki, store, mode):
    ca, cert, key = pki
    port = free_port()
    controller, handler = start_smtp_server(port, tls=None if mode == "none" else mode,
                                            cert=cert, key=key, auth=LOGIN)
    stack = smtp_stack(tmp_path, port, mode, store, SMTP_CA_FILE=str(ca))
    try:
        response = stack.post_email({"to_email": "tls@example.com", "subject": f"over {mode}", "body": "b"})
        assert response.status_code == 200
        message = parse(handler.wait_for(1)[0].data)
        assert message["Subject"] == f"over {mode}"
        assert handler.authenticator.attempts == [LOGIN[0]]
    finally:
        stack.stop()
        controller.stop()


def test_untrusted_certificate_is_refused_until_the_ca_is_given(tmp_path, pki, store):
    ca, cert, key = pki
    port = free_port()
    controller, handler = start_smtp_server(port, tls="implicit", cert=cert, key=key, auth=LOGIN)
    stack = smtp_stack(tmp_path, port, "implicit", store)
    try:
        request_id = post(stack)
        entry = wait_until(lambda: waiting_entry(stack, request_id), what="a failed attempt")
        assert "certificate" in entry["last_error"].lower(), entry["last_error"]
        # The sending side's fault: recorded, and no retry spent on it.
        assert entry["retry_count"] == 0
        assert entry["attempts"][-1]["scope"] == "sender" and entry["attempts"][-1]["relay_saw"] is False
        assert handler.messages == []
        stack.stop_daemon("mailworkerd")
        stack.env["SMTP_CA_FILE"] = str(ca)
        stack.start_daemon("mailworkerd")
        handler.wait_for(1)
    finally:
        stack.stop()
        controller.stop()


def test_100_messages_use_far_fewer_connections(stack, smtp):
    for n in range(100):
        assert stack.post_email({"to_email": f"u{n}@example.com", "subject": "s", "body": "b"}).status_code == 200
    smtp.wait_for(100, timeout=60)
    assert smtp.sessions <= 6, smtp.sessions  # 3 workers, each keeping its connection


def test_451_at_rcpt_is_retried_and_then_delivered(tmp_path, smtp, store):
    smtp.rcpt_replies = ["451 4.3.0 Mailbox busy, try again later"]
    stack = smtp_stack(tmp_path, smtp.port, "none", store, PASSWORD="")
    try:
        request_id = post(stack)
        smtp.wait_for(1)
        wait_until(lambda: stack.lookup(request_id)["state"] == "sent", what="state sent")
        assert stack.counts()["dead_letter"] == 0
        assert "451" in stack.log("mailworkerd")
    finally:
        stack.stop()


def test_550_at_rcpt_goes_to_the_dead_letters_with_the_reply(tmp_path, smtp, store):
    smtp.rcpt_replies = ["550 5.1.1 No such user here"]
    stack = smtp_stack(tmp_path, smtp.port, "none", store, PASSWORD="")
    try:
        request_id = post(stack, to="gone@example.com")
        letter = wait_until(lambda: (e := stack.lookup(request_id))["state"] == "dead_letter" and e,
                            what="a dead letter")
        assert stack.counts()["dead_letter"] == 1
        assert letter["dead_letter"]["kind"] == "permanent"
        assert "550" in letter["dead_letter"]["reason"] and "No such user here" in letter["dead_letter"]["reason"]
        assert letter["to_email"] == "gone@example.com"
        assert len(letter["attempts"]) == 1
        assert smtp.messages == []
        assert stack.counts()["waiting"] == 0
    finally:
        stack.stop()


def test_connection_dropped_during_data_is_retried_and_delivered_once(tmp_path, smtp, store):
    smtp.drop_in_data = 1
    stack = smtp_stack(tmp_path, smtp.port, "none", store, PASSWORD="")
    try:
        assert stack.post_email({"to_email": "a@example.com", "subject": "s", "body": "b"}).status_code == 200
        smtp.wait_for(1)
        wait_until(lambda: stack.counts()["waiting"] == 0, what="the queue to empty")
        assert len(smtp.messages) == 1
        assert stack.counts()["dead_letter"] == 0
    finally:
        stack.stop()


def test_refused_authentication_keeps_the_email_and_marks_the_sender_degraded(tmp_path, pki, store):
    ca, cert, key = pki
    port = free_port()
    controller, handler = start_smtp_server(port, tls="starttls", cert=cert, key=key, auth=LOGIN)
    stack = smtp_stack(tmp_path, port, "starttls", store, SMTP_CA_FILE=str(ca), PASSWORD="wrong-password",
                       MAX_RETRIES="0")
    try:
        request_id = post(stack)
        wait_until(lambda: stack.request("GET", "/health").status_code == 503, what="/health 503")
        sender = stack.request("GET", "/health").json()["components"]["email_sender"]
        assert "535" in sender and "paused" in sender, sender
        entry = wait_until(lambda: waiting_entry(stack, request_id), what="the pending email")
        # Refused AUTH is the sender's setup, not the email's: with no retries at all, it waits.
        assert entry["retry_count"] == 0 and stack.counts()["dead_letter"] == 0
        assert "wrong-password" not in stack.log("mailworkerd")
    finally:
        stack.stop()
        controller.stop()


def test_turning_certificate_checks_off_is_explicit_and_warned_about(tmp_path, pki, store):
    ca, cert, key = pki
    port = free_port()
    controller, handler = start_smtp_server(port, tls="implicit", cert=cert, key=key, auth=LOGIN)
    stack = smtp_stack(tmp_path, port, "implicit", store, SMTP_TLS_VERIFY="false")
    try:
        assert stack.post_email({"to_email": "a@example.com", "subject": "s", "body": "b"}).status_code == 200
        handler.wait_for(1)
        assert "SMTP_TLS_VERIFY=false" in stack.log("mailworkerd")
    finally:
        stack.stop()
        controller.stop()
