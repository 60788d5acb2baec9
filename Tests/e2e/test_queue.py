"""The queue across processes: exactly once without crashes, at least once across kill -9,
and corrupt files set aside without stopping delivery."""
import json
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import requests

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
    stack.start_daemon("mailworkerd", instance="2")
    stack.start_daemon("mailworkerd", instance="3")
    ids = post_many(stack, 10_000)
    assert len(set(ids)) == 10_000
    smtp.wait_for(10_000, timeout=600)
    wait_until(lambda: stack.files("queue") == [], timeout=60, what="the queue to drain")
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
    in_flight = [n for n in stack.files("queue") if n.endswith(".processing.json")]
    stack.start_daemon("mailworkerd")
    wait_until(lambda: set(smtp.message_ids()) >= {f"<{i}@example.org>" for i in ids},
               timeout=60, what="every email after the restart")
    wait_until(lambda: stack.files("queue") == [], timeout=30, what="the queue to drain")
    assert stack.files("dead_letter") == []
    # At least once: a message killed mid-send may arrive twice, nothing is missing.
    assert len(smtp.message_ids()) <= 60 + len(in_flight)


def test_corrupt_empty_and_truncated_files_are_set_aside_and_delivery_goes_on(stack, smtp):
    stack.stop_daemon("mailworkerd")
    ids = post_many(stack, 3, threads=1)
    queue = stack.data / "queue"
    good = sorted(queue.iterdir())[0].read_bytes()
    (queue / "batch_1000000000000_0000000a.json").write_bytes(b"")
    (queue / "batch_1000000000001_0000000b.json").write_bytes(good[: len(good) // 2])
    (queue / "batch_1000000000002_0000000c.json").write_bytes(b"\x00\xff not json")
    (queue / "batch_1000000000003_0000000d.json").write_text(json.dumps({"to_email": 5}))
    stack.start_daemon("mailworkerd")
    smtp.wait_for(3)
    assert sorted(smtp.message_ids()) == sorted(f"<{i}@example.org>" for i in ids)
    wait_until(lambda: len(stack.files("trash")) == 7, what="trash entries")
    trash = stack.files("trash")
    assert [n for n in trash if n.startswith("batch_1000000000000_0000000a.invalid_json.")]
    assert [n for n in trash if n.startswith("batch_1000000000001_0000000b.invalid_json.")]
    assert [n for n in trash if n.startswith("batch_1000000000002_0000000c.invalid_json.")]
    assert [n for n in trash if n.startswith("batch_1000000000003_0000000d.invalid_entry.")]
    assert stack.log("mailworkerd").count("set aside in the trash") == 4
