"""The email's lifecycle through the API on the real stack: GET /email/{request_id} in every
state, DELETE to cancel (and its race with delivery), send_at, and tags."""
import datetime
import os
import signal
import subprocess
import time
import uuid

import pytest

from stack import Stack, wait_until


def relay_stack(tmp_path, smtp, store, **env):
    settings = {"SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
                "WORKER_POLLING_INTERVAL": "5", **env}
    return Stack(tmp_path, settings, store).start()


def rfc3339(seconds_from_now):
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return moment.isoformat(timespec="milliseconds")


def email(**extra):
    return {"to_email": "rcpt@example.org", "subject": "lifecycle", "body": "hello", **extra}


def submit(stack, **extra):
    answer = stack.post_email(email(**extra))
    assert answer.status_code == 200, answer.text
    return answer.json()["request_id"]


def lookup(stack, request_id, **kwargs):
    return stack.request("GET", f"/email/{request_id}", **kwargs)


def state(stack, request_id):
    answer = lookup(stack, request_id)
    assert answer.status_code == 200, answer.text
    return answer.json()["state"]


def add_user(stack, name, password):
    entry = subprocess.run(["openssl", "passwd", "-apr1", password], check=True, capture_output=True, text=True)
    with open(stack.run_dir / "htpasswd", "a") as f:
        f.write(f"{name}:{entry.stdout.strip()}\n")


@pytest.fixture
def held(tmp_path, smtp, store):
    """The stack with mailworkerd stopped: what is accepted stays queued."""
    s = relay_stack(tmp_path, smtp, store)
    assert s.stop_daemon("mailworkerd") == 0
    yield s
    s.stop()


def test_lookup_answers_every_field_of_a_queued_email(held):
    request_id = submit(held, cc=["cc@example.org"], priority=1,
                        tags=[{"name": "category", "value": "signup"}, {"name": "tenant", "value": "t-42"}])
    answer = lookup(held, request_id)
    assert answer.status_code == 200
    body = answer.json()
    assert body["request_id"] == request_id and body["state"] == "queued"
    assert body["message_id"].startswith("<") and body["retry_count"] == 0
    assert body["send_at"] is None and body["finished_at"] is None and body["dead_letter"] is None
    assert body["submitted_by"] == "demo" and body["priority"] == 1
    assert body["tags"] == [{"name": "category", "value": "signup"}, {"name": "tenant", "value": "t-42"}]
    assert [(r["address"], r["state"]) for r in body["recipients"]] == [
        ("rcpt@example.org", "pending"), ("cc@example.org", "pending")]
    assert body["attempts"] == []
    datetime.datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))


@pytest.mark.parametrize("bad", ["nope", "1234", "0190aaaa-bbbb-7ccc-8ddd-eeeeffff000", "../../etc/passwd"])
def test_a_malformed_id_is_a_422_naming_the_path_parameter(held, bad):
    answer = lookup(held, bad)
    assert answer.status_code in (422, 404), answer.text  # nginx normalises "../" away: then a 404
    if answer.status_code == 422:
        assert answer.json()["detail"][0]["loc"] == ["path", "request_id"]


def test_an_unknown_id_is_a_404(held):
    for unknown in [str(uuid.uuid4()), "0190aaaa-bbbb-7ccc-8ddd-eeeeffff0000"]:
        answer = lookup(held, unknown)
        assert answer.status_code == 404 and "request_id" in answer.json()["detail"]


def test_a_user_sees_only_their_own_emails(held):
    add_user(held, "other", "other-password-1")
    mine = submit(held)
    theirs = held.post_email(email(), auth=("other", "other-password-1")).json()["request_id"]
    assert lookup(held, mine, auth=("other", "other-password-1")).status_code == 404
    assert held.request("DELETE", f"/email/{mine}", auth=("other", "other-password-1")).status_code == 404
    assert state(held, mine) == "queued"  # the stranger's cancel changed nothing
    assert lookup(held, theirs, auth=("other", "other-password-1")).json()["submitted_by"] == "other"
    assert lookup(held, theirs).status_code == 404


def test_an_email_moves_from_queued_to_sent_and_stays_findable(held, smtp):
    request_id = submit(held)
    assert state(held, request_id) == "queued"
    held.start_daemon("mailworkerd")
    smtp.wait_for(1)
    wait_until(lambda: state(held, request_id) == "sent", what="state sent")
    body = lookup(held, request_id).json()
    assert body["recipients"][0]["state"] == "sent" and body["finished_at"] is not None
    assert body["next_attempt_at"] is None
    assert held.counts()["trash"] == 1


def test_deferred_then_dead_letter_with_every_attempt(tmp_path, smtp, store):
    smtp.rcpt_replies = ["451 4.2.0 try later", "550 5.1.1 no such user"]
    stack = relay_stack(tmp_path, smtp, store, RETRY_BASE_DELAY="3", MAX_RETRIES="3")
    try:
        request_id = submit(stack)
        wait_until(lambda: state(stack, request_id) == "deferred", what="state deferred")
        body = lookup(stack, request_id).json()
        assert body["retry_count"] == 1 and body["next_attempt_at"] is not None
        assert body["attempts"][0]["code"] == 451 and "try later" in body["last_error"]
        wait_until(lambda: state(stack, request_id) == "dead_letter", timeout=15, what="state dead_letter")
        body = lookup(stack, request_id).json()
        assert body["dead_letter"]["kind"] == "permanent" and "550" in body["dead_letter"]["reason"]
        assert [a["code"] for a in body["attempts"]] == [451, 550]
        assert body["recipients"][0]["state"] == "failed"
        assert stack.request("DELETE", f"/email/{request_id}").status_code == 409
    finally:
        stack.stop()


def test_partially_sent_names_each_recipients_outcome(tmp_path, smtp, store):
    smtp.rcpt_by_address = {"gone@example.org": ["550 5.1.1 no such user"]}
    stack = relay_stack(tmp_path, smtp, store)
    try:
        request_id = submit(stack, cc=["gone@example.org"])
        wait_until(lambda: state(stack, request_id) == "partially_sent", what="state partially_sent")
        recipients = {r["address"]: r for r in lookup(stack, request_id).json()["recipients"]}
        assert recipients["rcpt@example.org"]["state"] == "sent"
        assert recipients["gone@example.org"]["state"] == "failed"
        assert recipients["gone@example.org"]["code"] == 550
    finally:
        stack.stop()


def test_sending_then_a_crash_mid_delivery_then_sent(tmp_path, smtp, store):
    smtp.stall_data, smtp.stall_seconds = 1, 30
    stack = relay_stack(tmp_path, smtp, store, NUM_WORKERS="1")
    try:
        request_id = submit(stack)
        wait_until(lambda: state(stack, request_id) == "sending", what="state sending")
        assert stack.request("DELETE", f"/email/{request_id}").json()["state"] == "sending"
        stack.stop_daemon("mailworkerd", sig=signal.SIGKILL)
        assert state(stack, request_id) == "sending"  # the claim is there until recovery
        stack.start_daemon("mailworkerd")  # recovery at start puts it back; it is sent
        wait_until(lambda: state(stack, request_id) == "sent", timeout=15, what="state sent after the crash")
    finally:
        stack.stop()


def test_cancel_a_scheduled_email_and_it_is_never_sent(tmp_path, smtp, store):
    stack = relay_stack(tmp_path, smtp, store)
    try:
        request_id = submit(stack, send_at=rfc3339(2))
        assert state(stack, request_id) == "scheduled"
        answer = stack.request("DELETE", f"/email/{request_id}")
        assert answer.status_code == 200 and answer.json()["state"] == "canceled"
        assert answer.json()["recipients"][0]["state"] == "canceled"
        again = stack.request("DELETE", f"/email/{request_id}")
        assert again.status_code == 409 and again.json()["state"] == "canceled"
        time.sleep(3.5)
        assert smtp.messages == [] and state(stack, request_id) == "canceled"
        counts = stack.counts()
        assert counts["waiting"] == 0 and counts["trash"] == 1
    finally:
        stack.stop()


def test_cancel_racing_delivery_has_exactly_one_winner(tmp_path, smtp, store):
    stack = relay_stack(tmp_path, smtp, store, NUM_WORKERS="4")
    try:
        outcomes = {}
        for _ in range(30):
            request_id = submit(stack)
            outcomes[request_id] = stack.request("DELETE", f"/email/{request_id}").status_code
        assert set(outcomes.values()) <= {200, 409}
        sent_ids = set()
        for request_id, code in outcomes.items():
            if code == 409:
                wait_until(lambda: state(stack, request_id) == "sent", what="a 409's email to be sent")
        wait_until(lambda: len(smtp.messages) == list(outcomes.values()).count(409), what="every 409 delivered")
        time.sleep(0.5)
        for request_id, code in outcomes.items():
            final = state(stack, request_id)
            assert final == ("canceled" if code == 200 else "sent"), (request_id, code, final)
            body = lookup(stack, request_id).json()
            sent_ids.add(body["message_id"]) if final == "sent" else None
        assert set(smtp.message_ids()) == sent_ids and len(smtp.message_ids()) == len(sent_ids)
    finally:
        stack.stop()


@pytest.mark.serial  # sent within a second of send_at
def test_a_scheduled_email_goes_out_within_a_second_of_its_time(tmp_path, smtp, store):
    stack = relay_stack(tmp_path, smtp, store)
    try:
        due = time.time() + 3
        moment = datetime.datetime.fromtimestamp(due, datetime.timezone.utc).astimezone(
            datetime.timezone(datetime.timedelta(hours=2)))  # a zone other than Z
        answer = stack.post_email(email(send_at=moment.isoformat(timespec="milliseconds")))
        assert answer.status_code == 200 and answer.json()["status"] == "scheduled"
        request_id = answer.json()["request_id"]
        body = lookup(stack, request_id).json()
        assert body["state"] == "scheduled" and body["send_at"] is not None
        time.sleep(1)
        assert smtp.messages == []
        smtp.wait_for(1, timeout=10)
        arrived = time.time()
        assert due - 0.05 <= arrived <= due + 1.0, arrived - due
        wait_until(lambda: state(stack, request_id) == "sent", what="state sent")
    finally:
        stack.stop()


@pytest.mark.parametrize("send_at, problem", [
    ("2026-12-02T10:00:00", "time zone"),
    ("tomorrow", "time zone"),
    (12345, "valid string"),
    ("9999-01-01T00:00:00Z", "MAX_SCHEDULE_DAYS"),
])
def test_bad_send_at_is_a_422_naming_it(held, send_at, problem):
    answer = held.post_email(email(send_at=send_at))
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "send_at"] and problem in error["msg"]
    assert held.counts()["waiting"] == 0


def test_send_at_in_the_past_means_now(held):
    answer = held.post_email(email(send_at="2020-01-01T00:00:00Z"))
    assert answer.status_code == 200 and answer.json()["status"] == "queued"
    assert state(held, answer.json()["request_id"]) == "queued"


@pytest.mark.parametrize("tags, loc", [
    ([{"name": "bad name", "value": "x"}], ["body", "tags", 0, "name"]),
    ([{"name": "ok", "value": "ü"}], ["body", "tags", 0, "value"]),
    ([{"name": "ok"}], ["body", "tags", 0, "value"]),
    ([{"name": "a", "value": "1"}, {"name": "a", "value": "2"}], ["body", "tags", 1, "name"]),
    ([{"name": f"t{i}", "value": "v"} for i in range(11)], ["body", "tags"]),
    ([{"name": "x" * 257, "value": "v"}], ["body", "tags", 0, "name"]),
    ({"name": "a"}, ["body", "tags"]),
    (["a"], ["body", "tags", 0]),
])
def test_bad_tags_are_a_422_naming_the_item(held, tags, loc):
    answer = held.post_email(email(tags=tags))
    assert answer.status_code == 422, answer.text
    assert loc in [e["loc"] for e in answer.json()["detail"]]
    assert held.counts()["waiting"] == 0


def test_tags_are_kept_with_the_stored_email(held):
    request_id = submit(held, tags=[{"name": "k", "value": "v-1_2"}])
    assert held.counts()["waiting"] == 1
    stored = held.record(request_id)["email"]
    assert stored["tags"] == [{"name": "k", "value": "v-1_2"}] and stored["request_id"] == request_id


def test_a_cancel_after_a_hung_claim_was_put_back_yields_to_the_delivery(tmp_path, smtp, store):
    """CLAIM_TIMEOUT shorter than one send: the sweep puts the claim back while the relay is
    still answering, a cancel then takes the put-back file; the relay does accept the email,
    so its record must end as sent, not canceled."""
    smtp.delay = 5
    stack = relay_stack(tmp_path, smtp, store, NUM_WORKERS="1", **store.claim_timeout(2))
    try:
        request_id = submit(stack)
        wait_until(lambda: state(stack, request_id) == "queued", timeout=15, what="the claim put back")
        answer = stack.request("DELETE", f"/email/{request_id}")
        assert answer.status_code == 200, answer.text
        smtp.wait_for(1, timeout=15)
        wait_until(lambda: state(stack, request_id) == "sent", timeout=10, what="the record corrected to sent")
        assert stack.counts()["trash"] == 1  # the sent record alone, no canceled one beside it
    finally:
        stack.stop()
