"""The queue across processes: exactly once without crashes, at least once across kill -9,
and corrupt files set aside without stopping delivery."""
import json
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import requests

import pytest

from stack import wait_until


def post_many(stack, count, threads=8):
    """Posts `count` emails from `threads` client threads; returns their request ids."""
    def worker(offset):
        session = requests.Session()
        session.auth = ("demo", stack.password)
        ids = []
        for n in range(offset, count, threads):
            # verify= per call: a session's own setting loses to REQUESTS_CA_BUNDLE.
            r = session.post(stack.url("/email"), timeout=30, verify=stack.cert,
                             json={"to_email": f"user{n}@example.com", "subject": f"n{n}", "body": "b"})
            assert r.status_code == 200, r.text
            ids.append(r.json()["request_id"])
        return ids
    with ThreadPoolExecutor(threads) as pool:
        return [i for ids in pool.map(worker, range(threads)) for i in ids]


def test_8_producers_3_worker_processes_10000_emails_each_delivered_once(stack, smtp):
    # Two more mailworkerd processes on the same data directory: three consumers in all.
    stack.env["WORKERD_SHARED"] = "true"
    stack.start_daemon("mailworkerd", instance="2")
    stack.start_daemon("mailworkerd", instance="3")
    ids = post_many(stack, 10_000)
    assert len(set(ids)) == 10_000
    smtp.wait_for(10_000, timeout=600)
    wait_until(lambda: stack.counts()["waiting"] == 0, timeout=60, what="the queue to drain")
    received = smtp.message_ids()
    domain = "example.org"
    assert len(received) == 10_000, f"{len(received) - len(set(received))} duplicates"
    assert sorted(received) == sorted(f"<{i}@{domain}>" for i in ids)
    # Work was really shared between the processes.
    delivered_by = [stack.log(name).count(" delivered") for name in ("mailworkerd", "mailworkerd-2", "mailworkerd-3")]
    assert sum(delivered_by) == 10_000
    assert all(n > 0 for n in delivered_by), delivered_by


def test_kill_9_while_sending_loses_nothing(stack, smtp):
    smtp.delay = 0.05  # every send is in flight for a while
    ids = post_many(stack, 60, threads=4)
    wait_until(lambda: len(smtp.messages) >= 10, timeout=30, what="some deliveries")
    assert stack.stop_daemon("mailworkerd", sig=signal.SIGKILL) == -signal.SIGKILL
    in_flight = stack.counts()["processing"]
    stack.start_daemon("mailworkerd")
    wait_until(lambda: set(smtp.message_ids()) >= {f"<{i}@example.org>" for i in ids},
               timeout=60, what="every email after the restart")
    wait_until(lambda: stack.counts()["waiting"] == 0, timeout=30, what="the queue to drain")
    assert stack.counts()["dead_letter"] == 0
    # At least once: a message killed mid-send may arrive twice, nothing is missing.
    assert len(smtp.message_ids()) <= 60 + in_flight


@pytest.mark.file_store("plants empty, truncated and foreign files in data/queue/")
def test_corrupt_empty_and_truncated_files_are_set_aside_and_delivery_goes_on(stack, smtp):
    stack.stop_daemon("mailworkerd")
    ids = post_many(stack, 3, threads=1)
    queue = stack.data / "queue"
    good = (queue / stack.files("queue")[0]).read_bytes()
    (queue / "batch_1000000000000_0000000a.json").write_bytes(b"")
    (queue / "batch_1000000000001_0000000b.json").write_bytes(good[: len(good) // 2])
    (queue / "batch_1000000000002_0000000c.json").write_bytes(b"\x00\xff not json")
    (queue / "batch_1000000000003_0000000d.json").write_text(json.dumps({"to_email": 5}))
    stack.start_daemon("mailworkerd")
    smtp.wait_for(3)
    assert sorted(smtp.message_ids()) == sorted(f"<{i}@example.org>" for i in ids)
    wait_until(lambda: len(stack.files("corrupt")) == 4, what="corrupt entries")
    assert len(stack.files("trash")) == 3  # the delivered ones; corrupt files are never pruned
    corrupt = stack.files("corrupt")
    assert [n for n in corrupt if n.startswith("batch_1000000000000_0000000a.processing.json.invalid_json.")]
    assert [n for n in corrupt if n.startswith("batch_1000000000001_0000000b.processing.json.invalid_json.")]
    assert [n for n in corrupt if n.startswith("batch_1000000000002_0000000c.processing.json.invalid_json.")]
    assert [n for n in corrupt if n.startswith("batch_1000000000003_0000000d.processing.json.invalid_entry.")]
    assert stack.log("mailworkerd").count("set aside in corrupt/") == 4
    health = stack.request("GET", "/health", auth=False)
    assert health.status_code == 503
    assert "4 entries set aside" in health.json()["components"]["queue_manager"]


def test_status_counts_the_queue_and_describes_at_most_limit_files(stack, smtp):
    stack.stop_daemon("mailworkerd")
    ids = post_many(stack, 12, threads=2)
    body = stack.request("GET", "/status").json()
    assert body["queue"] == {"total_files": 12, "pending": 12, "deferred": 0, "processing": 0,
                             "dead_letter": 0, "trash": 0, "corrupt": 0}
    assert body["total_files"] == 12 and body["pending_emails"] == 12
    assert body["limit"] == 100
    assert sorted(f["request_id"] for f in body["files"]) == sorted(ids)
    assert all(f["state"] == "pending" and f["priority"] == 2 and f["size_bytes"] > 0 for f in body["files"])
    limited = stack.request("GET", "/status?limit=5").json()
    assert len(limited["files"]) == 5 and limited["limit"] == 5
    for bad in ("-1", "1001", "ten"):
        response = stack.request("GET", f"/status?limit={bad}")
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "limit"]


def test_new_email_is_noticed_through_inotify_not_the_poll(tmp_path, smtp, store):
    # A polling interval far longer than the wait: only the change notification (the store's:
    # inotify on the file queue) can wake the idle worker in time.
    from stack import Stack
    s = Stack(tmp_path, {"SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
                         "WORKER_POLLING_INTERVAL": "600"}, store).start()
    try:
        import time
        time.sleep(1)  # let the worker go idle
        for n in range(3):
            assert s.post_email({"to_email": f"n{n}@example.com", "subject": "s", "body": "b"}).status_code == 200
            smtp.wait_for(n + 1, timeout=10)
    finally:
        s.stop()


def test_kill_9_of_the_responder_mid_write_leaves_no_partial_file(stack, smtp):
    accepted, stop = [], threading.Event()

    def producer(n):
        session = requests.Session()
        session.auth = ("demo", stack.password)
        i = 0
        while not stop.is_set():
            try:
                r = session.post(stack.url("/email"), timeout=10, verify=stack.cert,
                                 json={"to_email": f"p{n}-{i}@example.com", "subject": "s", "body": "x" * 50_000})
            except requests.RequestException:
                continue
            if r.status_code == 200:
                accepted.append(r.json()["request_id"])
            i += 1

    threads = [threading.Thread(target=producer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(accepted) >= 50, timeout=30, what="some accepted emails")
    stack.stop_daemon("mailfcgi", sig=signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join()
    stack.start_daemon("mailfcgi")
    wait_until(lambda: set(smtp.message_ids()) >= {f"<{i}@example.org>" for i in accepted},
               timeout=60, what="every accepted email")
    if stack.store.name == "file":
        # A half-written file would have been set aside as invalid_json; none was ever visible.
        assert not [n for n in stack.files("trash") if ".invalid_" in n]
