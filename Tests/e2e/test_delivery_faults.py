"""Delivery against relays that misbehave on purpose: outages longer than every retry, a
stall at the end of DATA, refused recipients, STARTTLS and AUTH missing from the EHLO answer,
and the relay's credentials kept out of the responder."""
import base64
import json
import os
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from certificates import make_ca_and_server_cert
from queue_files import base_name, new_request_id, queued_email
from smtp_server import RecordingHandler, WireProxy, start_smtp_server
from stack import BIN_DIR, RELAY_SETTINGS, ROOT, Stack, free_port, wait_until
from test_delivery import parse

PASSWORD = "Relay-Pa55word-7"
USER = "dispatch@example.org"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_ca_and_server_cert(tmp_path_factory.mktemp("pki"))


def relay_stack(base, port, store, **env):
    return Stack(base, {"SMTP_SERVER": "127.0.0.1", "PORT": str(port), "SMTP_TLS": "none", **env}, store).start()


def post(stack, n, **fields):
    ids = []
    for i in range(n):
        response = stack.post_email({"to_email": f"u{i}@example.com", "subject": f"s{i}", "body": "b", **fields})
        assert response.status_code == 200, response.text
        ids.append(response.json()["request_id"])
    return ids


def entries(stack, folder):
    """The JSON of every entry in data/`folder` (temp files skipped): the file store's."""
    found = []
    for name in stack.files(folder):
        if name.startswith("."):
            continue
        try:
            found.append(json.loads((stack.data / folder / name).read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            pass
    return found


def sender_health(stack):
    return stack.request("GET", "/health").json()["components"]["email_sender"]


# -- 1. Outages ------------------------------------------------------------------------


def test_a_relay_down_longer_than_every_retry_dead_letters_nothing(tmp_path, store):
    """All retries would take under 1 s (3 at 0.1 s doubling); the relay is away for 6 s."""
    port = free_port()
    stack = relay_stack(tmp_path, port, store, MAX_RETRIES="3", RETRY_BASE_DELAY="0.1", DELIVERY_PAUSE_MAX="1",
                        SMTP_CONNECT_TIMEOUT="1")
    controller = None
    try:
        ids = post(stack, 40)
        health = wait_until(lambda: "paused" in (h := sender_health(stack)) and h, what="a paused sender")
        assert "retries are not spent" in health and "next probe in" in health, health
        time.sleep(6)
        counts = stack.counts()
        assert counts["dead_letter"] == 0 and counts["waiting"] == 40
        pending = [stack.lookup(i) for i in ids]
        assert all(e["retry_count"] == 0 for e in pending)
        tried = [e for e in pending if e["attempts"]]
        # One probe at a time while paused: only the emails in flight when the outage
        # began carry an attempt, the rest waited untouched.
        assert 1 <= len(tried) <= 3, len(tried)
        assert all(a["scope"] == "sender" and a["counted"] is False and a["relay_saw"] is False
                   for e in tried for a in e["attempts"])
        controller, handler = start_smtp_server(port)
        handler.wait_for(40, timeout=30)
        wait_until(lambda: stack.counts()["waiting"] == 0, what="the queue to drain")
        assert sorted(handler.message_ids()) == sorted(f"<{i}@example.org>" for i in ids)
        assert stack.counts()["dead_letter"] == 0
        wait_until(lambda: sender_health(stack) == "healthy", what="the sender healthy again")
    finally:
        stack.stop()
        if controller:
            controller.stop()


def test_421_too_many_connections_pauses_without_spending_retries(tmp_path, smtp, store):
    proxy = WireProxy(smtp.port, refuse_first=4)
    stack = relay_stack(tmp_path, proxy.port, store, MAX_RETRIES="0", DELIVERY_PAUSE_MAX="1")
    try:
        ids = post(stack, 5)
        smtp.wait_for(5, timeout=30)
        wait_until(lambda: stack.counts()["waiting"] == 0, what="the queue to drain")
        assert stack.counts()["dead_letter"] == 0, "MAX_RETRIES=0, yet no 421 at greeting cost an email"
        assert sorted(smtp.message_ids()) == sorted(f"<{i}@example.org>" for i in ids)
        assert proxy.connections >= 5
        assert "421" in stack.log("mailworkerd")
    finally:
        stack.stop()
        proxy.close()


def test_an_email_older_than_max_queue_lifetime_is_dead_lettered_whatever_the_cause(tmp_path, store):
    port = free_port()  # nothing listens: the relay is down for the whole test
    stack = relay_stack(tmp_path, port, store, MAX_QUEUE_LIFETIME="2", DELIVERY_PAUSE_MAX="1")
    try:
        (request_id,) = post(stack, 1)
        letter = wait_until(lambda: (e := stack.lookup(request_id))["state"] == "dead_letter" and e, timeout=15,
                            what="the expired email")
        assert letter["dead_letter"]["kind"] == "expired"
        assert "MAX_QUEUE_LIFETIME" in letter["dead_letter"]["reason"]
        assert letter["retry_count"] == 0
        assert stack.counts()["waiting"] == 0
    finally:
        stack.stop()


# -- 2. A failed connection is never reused ------------------------------------------------


def test_a_stall_at_the_end_of_data_then_a_healthy_email_arrives_on_its_first_try(tmp_path, smtp, store):
    smtp.stall_data, smtp.stall_seconds = 1, 4
    stack = relay_stack(tmp_path, smtp.port, store, NUM_WORKERS="1", SMTP_TIMEOUT="2", RETRY_BASE_DELAY="1")
    try:
        (stalled,) = post(stack, 1)
        wait_until(lambda: smtp.sessions == 1 and stack.counts()["processing"], what="the stalled send")
        (healthy,) = post(stack, 1, to_email="next@example.com")
        wait_until(lambda: f"<{healthy}@example.org>" in smtp.message_ids(), timeout=10, what="the healthy email")
        smtp.wait_for(2, timeout=15)
        # Both filed as finished (a delivery's record follows the relay's answer).
        wait_until(lambda: stack.counts()["trash"] == 2, what="both emails filed")
        assert sorted(smtp.message_ids()) == sorted([f"<{stalled}@example.org>", f"<{healthy}@example.org>"])
        assert smtp.sessions >= 2  # the timed-out session was dropped, not reused
        trash = {i: stack.lookup(i) for i in (stalled, healthy)}
        assert trash[healthy]["attempts"] == [] and trash[healthy]["retry_count"] == 0
        stalled_attempt, retry = trash[stalled]["attempts"]
        assert stalled_attempt["scope"] == "email" and stalled_attempt["counted"] is True
        assert stalled_attempt["relay_saw"] is True  # it may have been delivered: the relay had it
        assert "timeout" in stalled_attempt["error"].lower(), stalled_attempt["error"]
        assert [r["status"] for r in retry["recipients"]] == ["accepted"]
        assert stack.counts()["dead_letter"] == 0
    finally:
        stack.stop()


# -- 3. Recipients one by one ----------------------------------------------------------


def test_one_refused_recipient_of_three_costs_the_others_nothing(tmp_path, smtp, store):
    smtp.rcpt_by_address = {"b@example.com": ["550 5.1.1 <b@example.com>: no such user"]}
    stack = relay_stack(tmp_path, smtp.port, store)
    try:
        response = stack.post_email({"to_email": "a@example.com", "cc": ["b@example.com", "c@example.com"],
                                     "subject": "three", "body": "b"})
        request_id = response.json()["request_id"]
        (message,) = smtp.wait_for(1)
        wait_until(lambda: stack.counts()["trash"] == 1, what="the finished record")
        time.sleep(0.5)  # time for a second copy to arrive, were one sent
        assert len(smtp.messages) == 1
        assert sorted(message.rcpt_tos) == ["a@example.com", "c@example.com"]
        assert parse(message.data)["Cc"] == "b@example.com, c@example.com"  # the headers are unchanged
        assert stack.counts()["dead_letter"] == 0
        record = stack.lookup(request_id)
        outcomes = {r["address"]: r for r in record["recipients"]}
        assert outcomes["a@example.com"]["state"] == outcomes["c@example.com"]["state"] == "sent"
        assert outcomes["b@example.com"]["state"] == "failed" and outcomes["b@example.com"]["code"] == 550
        assert "no such user" in outcomes["b@example.com"]["reply"]
        assert record["request_id"] == request_id
        (attempt,) = record["attempts"]
        assert {r["address"]: r["status"] for r in attempt["recipients"]} == {
            "a@example.com": "accepted", "b@example.com": "refused", "c@example.com": "accepted"}
    finally:
        stack.stop()


def test_a_deferred_recipient_alone_is_retried_with_the_same_message_id(tmp_path, smtp, store):
    smtp.rcpt_by_address = {"b@example.com": ["451 4.2.1 mailbox busy"]}
    stack = relay_stack(tmp_path, smtp.port, store, RETRY_BASE_DELAY="0.3")
    try:
        (request_id,) = post(stack, 1, to_email="a@example.com", cc=["b@example.com"], bcc=["c@example.com"])
        first, second = smtp.wait_for(2, timeout=15)
        wait_until(lambda: stack.counts()["trash"] == 1, what="the finished record")
        time.sleep(0.5)  # time for a second copy to arrive, were one sent
        assert len(smtp.messages) == 2
        assert sorted(first.rcpt_tos) == ["a@example.com", "c@example.com"]
        assert second.rcpt_tos == ["b@example.com"]
        assert smtp.message_ids() == [f"<{request_id}@example.org>"] * 2
        record = stack.lookup(request_id)
        assert {r["address"]: r["state"] for r in record["recipients"]} == {
            "a@example.com": "sent", "b@example.com": "sent", "c@example.com": "sent"}
        assert record["retry_count"] == 1
    finally:
        stack.stop()


def test_process_batch_answers_each_recipients_outcome(tmp_path, smtp, store):
    smtp.rcpt_by_address = {"b@example.com": ["550 5.1.1 no such user"]}
    stack = relay_stack(tmp_path, smtp.port, store, AUTO_PROCESSING_ENABLED="false")
    try:
        post(stack, 1, to_email="a@example.com", cc=["b@example.com"])
        answer = stack.request("POST", "/process-batch").json()
        assert answer["processed"] is True and answer["outcome"] == "sent"
        assert "some recipients" in answer["message"]
        states = {r["address"]: (r["state"], r.get("code")) for r in answer["recipients"]}
        assert states == {"a@example.com": ("sent", 250), "b@example.com": ("failed", 550)}
    finally:
        stack.stop()


def test_every_recipient_refused_for_good_is_a_dead_letter_naming_each(tmp_path, smtp, store):
    smtp.rcpt_by_address = {"a@example.com": ["550 5.1.1 gone"], "b@example.com": ["553 5.1.3 bad"]}
    stack = relay_stack(tmp_path, smtp.port, store)
    try:
        (request_id,) = post(stack, 1, to_email="a@example.com", cc=["b@example.com"])
        letter = wait_until(lambda: (e := stack.lookup(request_id))["state"] == "dead_letter" and e,
                            what="the dead letter")
        assert letter["dead_letter"]["kind"] == "permanent"
        assert "gone" in letter["dead_letter"]["reason"] and "bad" in letter["dead_letter"]["reason"]
        assert {r["address"]: r["state"] for r in letter["recipients"]} == {
            "a@example.com": "failed", "b@example.com": "failed"}
        assert smtp.messages == []
    finally:
        stack.stop()


# -- 4. Credentials never in clear -------------------------------------------------------


def credential_forms():
    """Every way the password could cross the wire: as is, and in AUTH PLAIN and LOGIN."""
    forms = [PASSWORD.encode(), base64.b64encode(PASSWORD.encode()),
             base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()),
             base64.b64encode(f"{USER}\0{USER}\0{PASSWORD}".encode())]
    return forms


@pytest.mark.parametrize("relay", ["plain relay", "STARTTLS stripped on the path"])
def test_no_starttls_means_no_auth_and_no_send(tmp_path, pki, store, relay):
    ca, cert, key = pki
    backend = free_port()
    handler = RecordingHandler()
    if relay == "plain relay":
        controller, handler = start_smtp_server(backend, auth=(USER, PASSWORD), handler=handler)
    else:
        handler.strip_ehlo = ("STARTTLS",)
        controller, handler = start_smtp_server(backend, tls="starttls", cert=cert, key=key,
                                                auth=(USER, PASSWORD), handler=handler)
    proxy = WireProxy(backend)
    stack = Stack(tmp_path, {"SMTP_SERVER": "127.0.0.1", "PORT": str(proxy.port), "SMTP_TLS": "auto",
                             "PASSWORD": PASSWORD, "SMTP_CA_FILE": str(ca), "MAX_RETRIES": "0"}, store).start()
    try:
        post(stack, 1)
        health = wait_until(lambda: "STARTTLS" in (h := sender_health(stack)) and h, what="the STARTTLS refusal")
        assert "paused" in health
        time.sleep(1.5)  # a probe or two more
        transcript = proxy.transcript()
        assert b"EHLO" in transcript
        assert b"AUTH" not in transcript and b"MAIL FROM" not in transcript
        for form in credential_forms():
            assert form not in transcript
        assert handler.messages == [] and stack.counts()["dead_letter"] == 0
        assert PASSWORD not in stack.log("mailworkerd")
    finally:
        stack.stop()
        proxy.close()
        controller.stop()


def test_a_relay_that_offers_no_auth_gets_nothing_while_a_password_is_set(tmp_path, smtp, store):
    proxy = WireProxy(smtp.port)
    stack = relay_stack(tmp_path, proxy.port, store, PASSWORD=PASSWORD, MAX_RETRIES="0")
    try:
        (request_id,) = post(stack, 1)
        health = wait_until(lambda: "did not offer AUTH" in (h := sender_health(stack)) and h,
                            what="the missing AUTH to be reported")
        assert "paused" in health
        transcript = proxy.transcript()
        assert b"EHLO" in transcript and b"MAIL FROM" not in transcript
        for form in credential_forms():
            assert form not in transcript
        assert smtp.messages == [] and stack.counts()["dead_letter"] == 0
        assert stack.counts()["waiting"] == 1
        entry = stack.lookup(request_id)
        assert entry["retry_count"] == 0 and "did not offer AUTH" in entry["last_error"]
    finally:
        stack.stop()
        proxy.close()


def test_a_password_with_smtp_tls_none_is_refused_at_start_unless_the_relay_is_loopback(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in RELAY_SETTINGS}
    env.update(DATA_DIR=str(tmp_path / "data"), SENDER_EMAIL=USER, SMTP_TLS="none", PASSWORD=PASSWORD,
               PORT="587", LOG_DIR=str(tmp_path / "logs"))
    refused = subprocess.run([BIN_DIR / "mailworkerd", "--check-config", "--env-file", tmp_path / ".env"],
                             env={**env, "SMTP_SERVER": "smtp.example.com"}, capture_output=True, text=True)
    assert refused.returncode == 1
    assert "PASSWORD" in refused.stderr and "not loopback" in refused.stderr and "SMTP_TLS" in refused.stderr
    assert PASSWORD not in refused.stderr
    for loopback in ("127.0.0.1", "localhost", "::1"):
        accepted = subprocess.run([BIN_DIR / "mailworkerd", "--check-config", "--env-file", tmp_path / ".env"],
                                  env={**env, "SMTP_SERVER": loopback}, capture_output=True, text=True)
        assert accepted.returncode == 0, accepted.stderr


# -- 5. Only mailworkerd holds the relay's settings ----------------------------------------------


def test_process_batch_without_mailworkerd_answers_503_saying_so(tmp_path, smtp, store):
    stack = relay_stack(tmp_path, smtp.port, store, AUTO_PROCESSING_ENABLED="false")
    try:
        post(stack, 1)
        stack.stop_daemon("mailworkerd")
        response = stack.request("POST", "/process-batch")
        assert response.status_code == 503
        assert "mailworkerd is not running" in response.json()["detail"]
        assert smtp.messages == [] and stack.counts()["waiting"] == 1
    finally:
        stack.stop()


def working_in(pid):
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None  # ended meanwhile


def environ(pid):
    raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    return {item.split(b"=", 1)[0].decode(): item.split(b"=", 1)[1] for item in raw if b"=" in item}


def test_make_run_gives_mailfcgi_no_relay_setting(tmp_path, smtp):
    port = free_port()
    (tmp_path / ".env").write_text(
        f"MAIL_HTTPS_PORT={port}\nMAIL_DEMO_PASSWORD=demo-pass\nRUN_DIR={tmp_path / 'run'}\n"
        f"DATA_DIR={tmp_path / 'data'}\nLOG_DIR={tmp_path / 'logs'}\nSENDER_EMAIL={USER}\n"
        f"SMTP_SERVER=127.0.0.1\nPORT={smtp.port}\nSMTP_TLS=none\n")
    for part in ("scripts", "deploy"):
        subprocess.run(["cp", "-r", ROOT / part, tmp_path / part], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAIL_", "SMTP_"))}
    # A relay setting exported in the shell that starts make run reaches mailworkerd only.
    env.update(BIN_DIR=str(BIN_DIR), SMTP_TIMEOUT="30")
    proc = subprocess.Popen([tmp_path / "scripts" / "run.sh"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        cert = str(tmp_path / "run" / "tls" / "cert.pem")

        def answers():
            try:
                return requests.get(f"https://127.0.0.1:{port}/health", verify=cert, timeout=1).status_code
            except (requests.ConnectionError, OSError):
                return None
        wait_until(answers, timeout=20, what="make run to answer")
        pids = subprocess.run(["pgrep", "-f", str(BIN_DIR)], capture_output=True, text=True).stdout.split()
        # This make run's daemons, which work in its folder (other tests' may run beside them).
        daemons = {open(f"/proc/{p}/comm").read().strip(): p for p in pids if working_in(p) == str(tmp_path)}
        fcgi, worker = environ(daemons["mailfcgi"]), environ(daemons["mailworkerd"])
        assert not RELAY_SETTINGS & set(fcgi), sorted(RELAY_SETTINGS & set(fcgi))
        assert worker.get("SMTP_TIMEOUT") == b"30"
        # And it still works: mailworkerd delivers, and process-batch goes through it.
        response = requests.post(f"https://127.0.0.1:{port}/email", auth=("demo", "demo-pass"), verify=cert,
                                 json={"to_email": "a@example.com", "subject": "s", "body": "b"}, timeout=5)
        assert response.status_code == 200
        smtp.wait_for(1)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        output = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert proc.returncode == 0, output


def test_mailfcgi_warns_when_its_environment_holds_relay_settings_and_ignores_them(tmp_path, store):
    stack = Stack(tmp_path, {}, store)
    (tmp_path / ".env").write_text(f"SMTP_SERVER=127.0.0.1\nPASSWORD={PASSWORD}\n")
    env = {**stack.env, "SMTP_SERVER": "127.0.0.1", "PASSWORD": PASSWORD}
    result = subprocess.run([BIN_DIR / "mailfcgi", "--check-config", "--env-file", tmp_path / ".env"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "PASSWORD, SMTP_SERVER" in result.stderr and "only mailworkerd" in result.stderr
    assert PASSWORD not in result.stderr
    # The .env's relay names are known (no typo warning), not read.
    assert "which no setting reads" not in result.stderr


def test_the_units_give_the_relay_settings_to_mailworkerd_only():
    fcgi = (ROOT / "deploy" / "systemd" / "mailfcgi.service").read_text()
    worker = (ROOT / "deploy" / "systemd" / "mailworkerd.service").read_text()
    files = lambda unit: [line.split("=", 1)[1].lstrip("-") for line in unit.splitlines()
                          if line.startswith("EnvironmentFile=")]
    assert "/etc/mail-dispatch/relay.env" in files(worker)
    assert "/etc/mail-dispatch/relay.env" not in files(fcgi)
    assert not any(name in line for line in fcgi.splitlines() if line.startswith("Environment=")
                   for name in RELAY_SETTINGS)


# -- Found by a hostile review: refusals that must not hold the pool, crashes mid-delivery ---------


def test_an_email_the_relay_keeps_refusing_with_421_spends_its_retries_and_holds_no_one(tmp_path, smtp, store):
    smtp.rcpt_by_address = {"poison@example.com": ["421 4.7.0 Try again later, closing connection"] * 1000}
    stack = relay_stack(tmp_path, smtp.port, store, NUM_WORKERS="1", MAX_RETRIES="2", RETRY_BASE_DELAY="0.2")
    try:
        (poison,) = post(stack, 1, to_email="poison@example.com")
        others = post(stack, 3)
        smtp.wait_for(3, timeout=20)
        assert sorted(smtp.message_ids()) == sorted(f"<{i}@example.org>" for i in others)
        letter = wait_until(lambda: (e := stack.lookup(poison))["state"] == "dead_letter" and e, timeout=20,
                            what="the refused email")
        assert letter["dead_letter"]["kind"] == "retries_exhausted"
        assert [a["counted"] for a in letter["attempts"]] == [True, True, True]
        assert all(a["scope"] == "email" and a["code"] == 421 for a in letter["attempts"])
    finally:
        stack.stop()


def test_a_relay_that_authenticates_but_refuses_every_mail_from_is_tried_ever_less_often(tmp_path, smtp, store):
    """The probe (EHLO, NOOP) works, every MAIL FROM gets 530: a setup problem, so no retry is
    spent, and the pause doubles (1, 2, 4, 4 s) instead of starting again at 1 s."""
    smtp.mail_reply = "530 5.7.0 Authentication required"
    stack = relay_stack(tmp_path, smtp.port, store, NUM_WORKERS="1", MAX_RETRIES="0", DELIVERY_PAUSE_MAX="4")
    try:
        (request_id,) = post(stack, 1)
        time.sleep(10)
        counts = stack.counts()
        assert counts["waiting"] == 1 and counts["dead_letter"] == 0
        entry = stack.lookup(request_id)
        assert entry["retry_count"] == 0
        # Attempts at about 0, 1, 3 and 7 s; a pause starting again at 1 s would make ten.
        assert 2 <= len(entry["attempts"]) <= 6, len(entry["attempts"])
        assert "530" in sender_health(stack)
    finally:
        stack.stop()


def test_a_client_trickling_bytes_to_the_control_socket_holds_process_batch_for_5_s_at_most(tmp_path, smtp, store):
    import socket
    stack = relay_stack(tmp_path, smtp.port, store, AUTO_PROCESSING_ENABLED="false")
    try:
        post(stack, 1)
        trickler = socket.socket(socket.AF_UNIX)
        trickler.connect(str(stack.data / "status" / "mailworkerd.sock"))
        for _ in range(3):
            trickler.send(b"p")
            time.sleep(1)
        # Served after the trickler's 5 s, well before mailfcgi's 55 s.
        response = stack.request("POST", "/process-batch", timeout=30)
        assert response.status_code == 200 and response.json()["outcome"] == "sent"
        assert trickler.recv(100).startswith(b"400")
        trickler.close()
    finally:
        stack.stop()


def test_an_expired_email_goes_while_paused_though_newer_ones_of_higher_priority_wait(tmp_path, store):
    port = free_port()  # the relay is down throughout
    stack = relay_stack(tmp_path, port, store, MAX_QUEUE_LIFETIME="3", DELIVERY_PAUSE_MAX="1")
    try:
        (low,) = post(stack, 1, priority=3)
        for _ in range(6):
            post(stack, 1, priority=1)
            time.sleep(0.7)
        wait_until(lambda: stack.lookup(low)["state"] == "dead_letter", timeout=10,
                   what="the old low-priority email to expire")
    finally:
        stack.stop()


@pytest.mark.file_store("the README's recipe requeues a dead letter by editing its file with jq")
def test_the_readme_recipe_requeues_an_expired_dead_letter(tmp_path, store):
    port = free_port()
    stack = relay_stack(tmp_path, port, store, MAX_QUEUE_LIFETIME="2", DELIVERY_PAUSE_MAX="1")
    controller = None
    try:
        (request_id,) = post(stack, 1)
        # Not a temp file of the dead letter's write in progress: the letter in place.
        (name,) = wait_until(lambda: [n for n in stack.files("dead_letter") if not n.startswith(".")], timeout=15,
                             what="the expired email")
        controller, handler = start_smtp_server(port)
        letter = stack.data / "dead_letter" / name
        temp = stack.data / "queue" / ".tmp-requeue"
        subprocess.run(f"jq '.email | .retry_count = 0 | .requeued_at = (now | todate)' {letter} > {temp} "
                       f"&& mv {temp} {stack.data / 'queue' / name} && rm {letter}", shell=True, check=True)
        handler.wait_for(1, timeout=15)
        assert handler.message_ids() == [f"<{request_id}@example.org>"]
        assert stack.files("dead_letter") == []
    finally:
        stack.stop()
        if controller:
            controller.stop()


PARTIAL_GAPS = [
    # (crash point, replies for b@, how many copies a@ may get, how many b@ gets in the end)
    # The relay accepted a@ and deferred b@; the deferral listing a@ as sent was not written.
    ("defer.before-rename", ["451 4.2.1 busy"], 2, 1),
    # Written (and in place): the claim is older and loses; a@ is not sent again.
    ("defer.before-unlink-claim", ["451 4.2.1 busy"], 1, 1),
    # b@ refused for good; the record of the partial delivery was not in place.
    ("sent-record.before-rename", ["550 5.1.1 no", "550 5.1.1 no"], 2, 0),
    # It was: recovery files it and removes the claim.
    ("sent-record.before-unlink-claim", ["550 5.1.1 no"], 1, 0),
]


@pytest.mark.file_store("kill -9 at the file queue's crash points (MAIL_CRASH_AT), then reads the queue files")
@pytest.mark.parametrize("point,b_replies,a_most,b_count", PARTIAL_GAPS, ids=[g[0] for g in PARTIAL_GAPS])
def test_kill_9_in_a_partial_delivery_loses_no_recipient(tmp_path, smtp, store, point, b_replies, a_most, b_count):
    smtp.rcpt_by_address = {"b@example.com": list(b_replies)}
    stack = relay_stack(tmp_path, smtp.port, store, MAIL_CRASH_AT=point, RETRY_BASE_DELAY="0.2")
    try:
        (request_id,) = post(stack, 1, to_email="a@example.com", cc=["b@example.com"])
        assert stack.procs.pop("mailworkerd").wait(timeout=30) == -signal.SIGKILL, "the crash point was not reached"
        del stack.env["MAIL_CRASH_AT"]
        stack.start_daemon("mailworkerd")
        # (A temp file the crash left in queue/ is removed by recovery after a minute.)
        settled = lambda: not entries(stack, "queue") and not entries(stack, "queue/active") and entries(stack, "trash")
        wait_until(settled, timeout=20, what="the queue to settle")
        time.sleep(0.5)
        got = [tuple(m.rcpt_tos) for m in smtp.messages]
        a_copies = sum("a@example.com" in r for r in got)
        b_copies = sum("b@example.com" in r for r in got)
        assert 1 <= a_copies <= a_most, got
        assert b_copies == b_count, got
        assert smtp.message_ids() == [f"<{request_id}@example.org>"] * len(got)
        (record,) = entries(stack, "trash")
        # No "recipients" when the attempt after the restart went to everyone at once.
        states = {r["address"]: r["state"] for r in record.get("recipients", [])} or {
            "a@example.com": "sent", "b@example.com": "sent"}
        assert states == {"a@example.com": "sent", "b@example.com": "sent" if b_count else "failed"}
        wait_until(lambda: stack.request("GET", "/health").status_code == 200, what="/health healthy")
    finally:
        stack.stop()


# -- Found by the second hostile review ----------------------------------------------------


def test_more_workers_than_the_relay_allows_connections_pause_no_one_but_the_refused(tmp_path, smtp, store):
    proxy = WireProxy(smtp.port, max_concurrent=2)
    stack = relay_stack(tmp_path, proxy.port, store, NUM_WORKERS="4", MAX_RETRIES="0")
    try:
        ids = post(stack, 60)
        smtp.wait_for(60, timeout=60)
        wait_until(lambda: stack.counts()["waiting"] == 0, what="the queue to drain")
        assert sorted(smtp.message_ids()) == sorted(f"<{i}@example.org>" for i in ids)
        assert stack.counts()["dead_letter"] == 0 and proxy.refused >= 1
        log = stack.log("mailworkerd")
        assert "connection refused while other workers deliver" in log
        # The pool pauses only while no connection works (at most at the very start).
        assert log.count("delivery paused for every worker") <= 2, log.count("delivery paused for every worker")
    finally:
        stack.stop()
        proxy.close()


def iso(moment):
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def plant(folder, entry, name=None):
    name = name or base_name(entry["request_id"]) + ".json"
    (folder / (".tmp-" + name)).write_text(json.dumps(entry))
    os.rename(folder / (".tmp-" + name), folder / name)


@pytest.mark.file_store("plants queue files (old names, a foreign name) before the start")
def test_many_requeued_old_emails_and_a_foreign_name_do_not_shield_an_expired_one(tmp_path, store):
    port = free_port()  # the relay is down throughout
    queue = tmp_path / "data" / "queue"
    queue.mkdir(parents=True)
    now = datetime.now(timezone.utc)
    ten_days_ago = int((time.time() - 10 * 86400) * 1000)
    # Older by name than anything else, requeued just now (the README's recipe): not expired.
    for i in range(105):
        plant(queue, queued_email(to=f"r{i}@example.com", request_id=new_request_id(ten_days_ago + i),
                                  created_at=iso(now - timedelta(days=10)), requeued_at=iso(now)))
    expired = queued_email(to="old@example.com", request_id=new_request_id(ten_days_ago + 86_400_000),
                           created_at=iso(now - timedelta(days=9)))
    plant(queue, expired)
    foreign = queued_email(to="foreign@example.com", created_at=iso(now - timedelta(days=9)))
    plant(queue, foreign, name="batch_handmade.json")
    stack = relay_stack(tmp_path, port, store, DELIVERY_PAUSE_MAX="1", SMTP_CONNECT_TIMEOUT="1")
    try:
        gone = lambda: {e["email"]["request_id"] for e in entries(stack, "dead_letter")}
        wait_until(lambda: {expired["request_id"], foreign["request_id"]} <= gone(), timeout=20,
                   what="the two expired emails")
        assert len(gone()) == 2  # the requeued ones wait for the relay
        assert len(entries(stack, "queue")) == 105
    finally:
        stack.stop()


def test_sigterm_with_a_stalled_send_and_a_stalled_process_batch_puts_both_back_in_time(tmp_path, smtp, store):
    import threading
    smtp.stall_data, smtp.stall_seconds = 2, 40
    stack = relay_stack(tmp_path, smtp.port, store, NUM_WORKERS="1", SHUTDOWN_TIMEOUT="3", SMTP_TIMEOUT="60")
    try:
        post(stack, 1)
        wait_until(lambda: stack.counts()["processing"] == 1, what="the worker's stalled send")
        post(stack, 1)
        answers = []
        batch = threading.Thread(target=lambda: answers.append(stack.request("POST", "/process-batch", timeout=70)))
        batch.start()
        wait_until(lambda: stack.counts()["processing"] == 2, what="the stalled process-batch")
        worker = stack.procs.pop("mailworkerd")
        worker.send_signal(signal.SIGTERM)
        # One SHUTDOWN_TIMEOUT for both (twice would be 6 s; the stalls last 40 s).
        assert worker.wait(timeout=20) == 0
        counts = stack.counts()
        assert counts["processing"] == 0 and counts["waiting"] == 2
        batch.join(70)
        # And after SIGTERM no new process-batch is taken up.
        assert stack.request("POST", "/process-batch").status_code == 503
        assert smtp.messages == []
    finally:
        stack.stop()
