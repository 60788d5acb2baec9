"""Delivery over SMTP (libcurl) against aiosmtpd: TLS modes with AUTH, certificate checks,
connection reuse, and how each class of failure is handled."""
import json

import pytest

from certificates import make_ca_and_server_cert
from smtp_server import start_smtp_server
from stack import Stack, free_port, wait_until
from test_delivery import parse

LOGIN = ("dispatch@example.org", "s3cret-password")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_ca_and_server_cert(tmp_path_factory.mktemp("pki"))


def smtp_stack(base, port, mode, **env):
    settings = {"SMTP_SERVER": "127.0.0.1", "PORT": str(port), "SMTP_TLS": mode,
                "PASSWORD": LOGIN[1], "RETRY_BASE_DELAY": "0.2", **env}
    return Stack(base, settings).start()


def queued_entry(stack):
    names = [n for n in stack.files("queue") if not n.startswith(".")]
    if len(names) != 1:
        return None
    try:
        return json.loads((stack.data / "queue" / names[0]).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@pytest.mark.parametrize("mode", ["implicit", "starttls", "none"])
def test_delivered_in_each_tls_mode_with_auth(tmp_path, pki, mode):
    ca, cert, key = pki
    port = free_port()
    controller, handler = start_smtp_server(port, tls=None if mode == "none" else mode,
                                            cert=cert, key=key, auth=LOGIN)
    stack = smtp_stack(tmp_path, port, mode, SMTP_CA_FILE=str(ca))
    try:
        response = stack.post_email({"to_email": "tls@example.com", "subject": f"over {mode}", "body": "b"})
        assert response.status_code == 200
        message = parse(handler.wait_for(1)[0].data)
        assert message["Subject"] == f"over {mode}"
        assert handler.authenticator.attempts == [LOGIN[0]]
    finally:
        stack.stop()
        controller.stop()


def test_untrusted_certificate_is_refused_until_the_ca_is_given(tmp_path, pki):
    ca, cert, key = pki
    port = free_port()
    controller, handler = start_smtp_server(port, tls="implicit", cert=cert, key=key, auth=LOGIN)
    stack = smtp_stack(tmp_path, port, "implicit")
    try:
        assert stack.post_email({"to_email": "a@example.com", "subject": "s", "body": "b"}).status_code == 200
        entry = wait_until(lambda: (e := queued_entry(stack)) and e["attempts"] and e, what="a failed attempt")
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


def test_451_at_rcpt_is_retried_and_then_delivered(tmp_path, smtp):
    smtp.rcpt_replies = ["451 4.3.0 Mailbox busy, try again later"]
    stack = smtp_stack(tmp_path, smtp.port, "none", PASSWORD="")
    try:
        assert stack.post_email({"to_email": "a@example.com", "subject": "s", "body": "b"}).status_code == 200
        smtp.wait_for(1)
        wait_until(lambda: any(".sent." in n for n in stack.files("trash")), what="the trash entry")
        assert stack.files("dead_letter") == []
        assert "451" in stack.log("mailworkerd")
    finally:
        stack.stop()


def test_550_at_rcpt_goes_to_the_dead_letters_with_the_reply(tmp_path, smtp):
    smtp.rcpt_replies = ["550 5.1.1 No such user here"]
    stack = smtp_stack(tmp_path, smtp.port, "none", PASSWORD="")
    try:
        assert stack.post_email({"to_email": "gone@example.com", "subject": "s", "body": "b"}).status_code == 200
        (name,) = wait_until(lambda: [n for n in stack.files("dead_letter") if not n.startswith(".")],
                             what="a dead letter")
        letter = json.loads((stack.data / "dead_letter" / name).read_text())
        assert letter["kind"] == "permanent"
        assert "550" in letter["reason"] and "No such user here" in letter["reason"]
        assert letter["email"]["to_email"] == "gone@example.com"
        assert len(letter["attempts"]) == 1
        assert smtp.messages == []
        assert stack.files("queue") == []
    finally:
        stack.stop()


def test_connection_dropped_during_data_is_retried_and_delivered_once(tmp_path, smtp):
    smtp.drop_in_data = 1
    stack = smtp_stack(tmp_path, smtp.port, "none", PASSWORD="")
    try:
        assert stack.post_email({"to_email": "a@example.com", "subject": "s", "body": "b"}).status_code == 200
        smtp.wait_for(1)
        wait_until(lambda: stack.files("queue") == [], what="the queue to empty")
        assert len(smtp.messages) == 1
        assert stack.files("dead_letter") == []
    finally:
        stack.stop()


def test_refused_authentication_keeps_the_email_and_marks_the_sender_degraded(tmp_path, pki):
    ca, cert, key = pki
    port = free_port()
    controller, handler = start_smtp_server(port, tls="starttls", cert=cert, key=key, auth=LOGIN)
    stack = smtp_stack(tmp_path, port, "starttls", SMTP_CA_FILE=str(ca), PASSWORD="wrong-password",
                       MAX_RETRIES="0")
    try:
        assert stack.post_email({"to_email": "a@example.com", "subject": "s", "body": "b"}).status_code == 200
        wait_until(lambda: stack.request("GET", "/health").status_code == 503, what="/health 503")
        sender = stack.request("GET", "/health").json()["components"]["email_sender"]
        assert "535" in sender and "paused" in sender, sender
        entry = wait_until(lambda: (e := queued_entry(stack)) and e["attempts"] and e, what="the pending email")
        # Refused AUTH is the sender's setup, not the email's: with no retries at all, it waits.
        assert entry["retry_count"] == 0 and stack.files("dead_letter") == []
        assert "wrong-password" not in stack.log("mailworkerd")
    finally:
        stack.stop()
        controller.stop()


def test_turning_certificate_checks_off_is_explicit_and_warned_about(tmp_path, pki):
    ca, cert, key = pki
    port = free_port()
    controller, handler = start_smtp_server(port, tls="implicit", cert=cert, key=key, auth=LOGIN)
    stack = smtp_stack(tmp_path, port, "implicit", SMTP_TLS_VERIFY="false")
    try:
        assert stack.post_email({"to_email": "a@example.com", "subject": "s", "body": "b"}).status_code == 200
        handler.wait_for(1)
        assert "SMTP_TLS_VERIFY=false" in stack.log("mailworkerd")
    finally:
        stack.stop()
        controller.stop()
