"""Idempotency-Key on POST /email: replay, mismatch, in-progress, per-user scope, and a kill -9
of mailfcgi at every step of a keyed request followed by a retry after the restart."""
import fcntl
import hashlib
import json
import signal

import pytest
import requests

from stack import Stack, wait_until
from test_email_lifecycle import add_user, email


@pytest.fixture
def held(tmp_path, store):
    """The stack with mailworkerd stopped: what is accepted stays queued."""
    s = Stack(tmp_path, {"WORKER_POLLING_INTERVAL": "5"}, store).start()
    assert s.stop_daemon("mailworkerd") == 0
    yield s
    s.stop()


def keyed(stack, key, payload=None, **kwargs):
    headers = {"Idempotency-Key": key, **kwargs.pop("headers", {})}
    return stack.post_email(payload or email(), headers=headers, **kwargs)


def queued(stack):
    """The request ids of the emails waiting, as GET /status lists them (the first 100)."""
    return [f["request_id"] for f in stack.request("GET", "/status").json()["files"]]


def queue_files(stack):
    """The file store's queue files (for a test whose responder may be down)."""
    return [f for f in stack.files("queue") if not f.startswith(".")]


def test_a_repeat_answers_the_first_answer_and_stores_nothing(held):
    first = keyed(held, "order-1001")
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    again = keyed(held, "order-1001")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert len(queued(held)) == 1


def test_the_same_json_in_another_order_and_spacing_is_the_same_request(held):
    first = keyed(held, "k-spacing", {"to_email": "a@example.org", "subject": "s", "body": "b"})
    raw = b'{ "body" : "b",\n "subject":"s", "to_email":"a@example.org" }'
    again = held.request("POST", "/email", data=raw, headers={"Idempotency-Key": "k-spacing",
                                                                "Content-Type": "application/json"})
    assert again.status_code == 200 and again.json()["request_id"] == first.json()["request_id"]
    assert len(queued(held)) == 1


def test_the_same_key_with_another_body_is_a_422(held):
    assert keyed(held, "k-reused", email(subject="one")).status_code == 200
    answer = keyed(held, "k-reused", email(subject="two"))
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["type"] == "idempotency_key_reused" and error["loc"] == ["header", "Idempotency-Key"]
    assert len(queued(held)) == 1


def test_keys_are_scoped_to_the_user(held):
    add_user(held, "other", "other-password-1")
    mine = keyed(held, "shared-key").json()["request_id"]
    theirs = keyed(held, "shared-key", auth=("other", "other-password-1"))
    assert theirs.status_code == 200 and theirs.json()["request_id"] != mine
    assert len(queued(held)) == 2


@pytest.mark.parametrize("key", ["", "x" * 257, "caf\u00e9", "tab\there"])
def test_a_bad_key_is_a_422_naming_the_header(held, key):
    answer = held.request("POST", "/email", data=json.dumps(email()).encode("utf-8"),
                          headers={"Idempotency-Key": key.encode("utf-8"), "Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert queued(held) == []


@pytest.mark.file_store("holds the key's lock file in data/idempotency/ as a request being handled does")
def test_a_repeat_while_the_first_is_handled_is_a_409_with_retry_after(held):
    name = hashlib.sha256(b"demo\0busy-key").hexdigest() + ".json"
    path = held.data / "idempotency" / name
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # as a request being handled holds it
        answer = keyed(held, "busy-key")
    assert answer.status_code == 409 and answer.headers["Retry-After"] == "1"
    assert queued(held) == []
    assert keyed(held, "busy-key").status_code == 200  # free again


def test_a_validation_error_does_not_take_the_key(held):
    assert keyed(held, "k-invalid", {"to_email": "nope"}).status_code == 422
    assert keyed(held, "k-invalid", email()).status_code == 200


# Every step of a keyed request where mailfcgi can die, and what the crash leaves stored.
CRASHES = [
    ("idempotency.reserved", False),
    ("enqueue.before-rename", False),
    ("enqueue.before-directory-sync", True),
    ("idempotency.before-answer", True),
]


@pytest.mark.file_store("kill -9 at the file queue's crash points (MAIL_CRASH_AT), then reads the queue files")
@pytest.mark.parametrize("point,stored", CRASHES, ids=[c[0] for c in CRASHES])
def test_kill_9_during_a_keyed_request_then_a_retry_makes_exactly_one_email(tmp_path, store, point, stored):
    stack = Stack(tmp_path, {"WORKER_POLLING_INTERVAL": "5", "MAIL_CRASH_AT": point}, store).start()
    try:
        assert stack.stop_daemon("mailworkerd") == 0
        try:
            answer = keyed(stack, "crash-key")
            assert answer.status_code >= 500, answer.text  # nginx: the responder went away
        except requests.ConnectionError:
            pass
        assert stack.procs.pop("mailfcgi").wait(timeout=10) == -signal.SIGKILL, "the crash point was not reached"
        left = queue_files(stack)
        assert len(left) == (1 if stored else 0), left
        del stack.env["MAIL_CRASH_AT"]
        stack.start_daemon("mailfcgi")
        wait_until(lambda: keyed(stack, "other-key", email(subject="probe")).status_code == 200,
                   what="mailfcgi back")
        retry = keyed(stack, "crash-key")
        assert retry.status_code == 200, retry.text
        request_id = retry.json()["request_id"]
        assert (retry.headers.get("Idempotent-Replayed") == "true") == stored
        mine = [f for f in queue_files(stack)
                if json.loads((stack.data / "queue" / f).read_text())["subject"] == "lifecycle"]
        assert len(mine) == 1
        assert json.loads((stack.data / "queue" / mine[0]).read_text())["request_id"] == request_id
        assert keyed(stack, "crash-key").json()["request_id"] == request_id  # and it stays so
    finally:
        stack.stop()
