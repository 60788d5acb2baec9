"""POST /emails/batch: strict and permissive validation, limits, durability, idempotency."""
import json

import pytest

from stack import Stack, wait_until
from test_email_lifecycle import email, lookup
from test_idempotency import held, queue_files, queued  # noqa: F401  (the fixture)


def batch(stack, items, query="", **kwargs):
    return stack.request("POST", "/emails/batch" + query, json=items, **kwargs)


def test_a_valid_batch_stores_every_email_in_order(held):
    items = [email(subject=f"n{i}", tags=[{"name": "n", "value": str(i)}]) for i in range(5)]
    answer = batch(held, items)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["stored"] == 5 and body["refused"] == 0
    assert [item["index"] for item in body["data"]] == list(range(5))
    assert all(item["status"] == "queued" for item in body["data"])
    assert len(queued(held)) == 5
    for i, item in enumerate(body["data"]):
        found = lookup(held, item["request_id"]).json()
        assert found["subject"] == f"n{i}" and found["tags"] == [{"name": "n", "value": str(i)}]


def test_strict_refuses_the_whole_batch_listing_errors_by_index(held):
    items = [email(), {"to_email": "not-an-address", "subject": "s", "body": "b"}, email(), {"subject": "x"}]
    answer = batch(held, items)
    assert answer.status_code == 422
    locs = [e["loc"] for e in answer.json()["detail"]]
    assert ["body", 1, "to_email"] in locs and ["body", 3, "to_email"] in locs
    assert all(loc[1] in (1, 3) for loc in locs)
    assert queued(held) == []


def test_permissive_stores_the_valid_items_and_names_the_others(held):
    items = [email(subject="a"), {"to_email": "bad"}, email(subject="c", template_name="no-such-template")]
    answer = batch(held, items, "?validation=permissive")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["stored"] == 1 and body["refused"] == 2
    first, second, third = body["data"]
    assert first["index"] == 0 and first["status"] == "queued" and "errors" not in first
    assert second["index"] == 1 and "request_id" not in second
    assert ["body", 1, "to_email"] in [e["loc"] for e in second["errors"]]
    assert third["errors"][0]["loc"] == ["body", 2, "template_name"]
    assert len(queued(held)) == 1


def test_permissive_with_nothing_valid_is_a_422(held):
    assert batch(held, [{"to_email": "bad"}], "?validation=permissive").status_code == 422


@pytest.mark.parametrize("body, why", [
    ({"to_email": "a@example.org"}, "list"),
    ([], "at least 1"),
    ([email()] * 101, "at most 100"),
])
def test_the_batch_itself_must_be_a_list_of_1_to_max_batch(held, body, why):
    answer = batch(held, body)
    assert answer.status_code == 422 and why in answer.json()["detail"][0]["msg"]
    assert answer.json()["detail"][0]["loc"] == ["body"]
    assert queued(held) == []


def test_an_unknown_validation_mode_is_a_422(held):
    answer = batch(held, [email()], "?validation=lenient")
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["query", "validation"]


def test_a_keyed_batch_is_stored_once(held):
    items = [email(subject=f"k{i}") for i in range(3)]
    first = batch(held, items, headers={"Idempotency-Key": "batch-1"})
    again = batch(held, items, headers={"Idempotency-Key": "batch-1"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json() and len(queued(held)) == 3
    other = batch(held, items[:2], headers={"Idempotency-Key": "batch-1"})
    assert other.status_code == 422 and other.json()["detail"][0]["type"] == "idempotency_key_reused"


def test_a_batch_is_delivered(tmp_path, smtp, store):
    stack = Stack(tmp_path, {"SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
                             "WORKER_POLLING_INTERVAL": "5"}, store).start()
    try:
        answer = batch(stack, [email(subject=f"d{i}") for i in range(10)])
        assert answer.status_code == 200
        smtp.wait_for(10)
        ids = [item["request_id"] for item in answer.json()["data"]]
        wait_until(lambda: all(lookup(stack, i).json()["state"] == "sent" for i in ids), what="all sent")
    finally:
        stack.stop()


@pytest.mark.file_store("kill -9 at the file queue's crash points (MAIL_CRASH_AT), then reads the queue files")
@pytest.mark.parametrize("point", ["enqueue-batch.before-renames", "enqueue-batch.before-directory-sync"])
def test_kill_9_while_storing_a_batch_then_a_keyed_retry_stores_each_email_once(tmp_path, store, point):
    import requests
    import signal
    stack = Stack(tmp_path, {"WORKER_POLLING_INTERVAL": "5", "MAIL_CRASH_AT": point}, store).start()
    try:
        assert stack.stop_daemon("mailworkerd") == 0
        items = [email(subject=f"c{i}") for i in range(4)]
        try:
            assert batch(stack, items, headers={"Idempotency-Key": "crash-batch"}).status_code >= 500
        except requests.ConnectionError:
            pass
        assert stack.procs.pop("mailfcgi").wait(timeout=10) == -signal.SIGKILL
        assert len(queue_files(stack)) == (0 if point.endswith("renames") else 4)
        del stack.env["MAIL_CRASH_AT"]
        stack.start_daemon("mailfcgi")
        wait_until(lambda: stack.request("GET", "/templates").status_code == 200, what="mailfcgi back")
        retry = batch(stack, items, headers={"Idempotency-Key": "crash-batch"})
        assert retry.status_code == 200, retry.text
        subjects = sorted(json.loads((stack.data / "queue" / f).read_text())["subject"] for f in queue_files(stack))
        assert subjects == ["c0", "c1", "c2", "c3"]
        assert {item["request_id"] for item in retry.json()["data"]} == {
            json.loads((stack.data / "queue" / f).read_text())["request_id"] for f in queue_files(stack)}
    finally:
        stack.stop()
