"""kill -9 of mailfcgi amid 16 clients' keyed and unkeyed POST /email and
/emails/batch (hot keys shared by several clients, and fresh keys), then: every email
answered 200 is stored and delivered once, every 200 answer of a key names the same ids, and
a repeat of every key after the restart replays its answer (never 409 forever)."""
import random
import signal
import threading
import time

import pytest

from stack import Stack, wait_until
from test_queue_faults import smtp_env

HOT_KEYS = [f"hot-{i}" for i in range(24)]


def payload_for(key):
    return {"to_email": f"{key}@example.com", "subject": f"s-{key}", "body": "b"}


def batch_for(key):
    return [payload_for(key + "-a"), payload_for(key + "-b")]


def send(stack, kind, key, timeout=5):
    headers = {"Idempotency-Key": key} if key else {}
    if kind == "one":
        return stack.post_email(payload_for(key or "nokey"), headers=headers, timeout=timeout)
    return stack.request("POST", "/emails/batch", json=batch_for(key or "nokey"), headers=headers, timeout=timeout)


def ids_of(kind, body):
    return [body["request_id"]] if kind == "one" else [item["request_id"] for item in body["data"]]


@pytest.mark.parametrize("rounds", [1, 4])
def test_kill_9_amid_keyed_and_batch_load_loses_no_answer_and_keeps_every_key(tmp_path, smtp, store, rounds):
    stack = Stack(tmp_path, {**smtp_env(smtp), "FCGI_THREADS": "16"}, store).start()
    lock = threading.Lock()
    answers = {}  # (kind, key) -> list of (status, ids or body text)
    plain = []  # ids of unkeyed 200s
    statuses = []
    done = threading.Event()

    def client(n):
        rnd = random.Random(n)
        i = 0
        while not done.is_set():
            i += 1
            kind = rnd.choice(["one", "one", "batch"])
            r = rnd.random()
            key = (rnd.choice(HOT_KEYS) + "-" + kind) if r < 0.5 else (f"fresh-{n}-{i}" if r < 0.8 else None)
            try:
                resp = send(stack, kind, key)
            except Exception:
                continue
            with lock:
                statuses.append(resp.status_code)
                if resp.status_code == 200:
                    got = ids_of(kind, resp.json())
                    if key:
                        answers.setdefault((kind, key), []).append(got)
                    else:
                        plain.extend(got)
                elif key:
                    answers.setdefault((kind, key), [])

    try:
        clients = [threading.Thread(target=client, args=(n,)) for n in range(16)]
        for t in clients:
            t.start()
        for _ in range(rounds):
            target = random.randint(50, 400)  # the kill at a different point of the load each round
            wait_until(lambda: statuses.count(200) >= target, timeout=90, what=f"{target} answers")
            stack.procs["mailfcgi"].send_signal(signal.SIGKILL)
            assert stack.procs.pop("mailfcgi").wait(timeout=10) == -signal.SIGKILL
            time.sleep(0.5)
            stack.start_daemon("mailfcgi")
            wait_until(lambda: stack._answers(), what="the responder back")
            with lock:
                statuses.clear()
        wait_until(lambda: statuses.count(200) >= 200, timeout=90, what="200 answers after restart")
        done.set()
        for t in clients:
            t.join(timeout=30)

        # Every 200 answer of one key names the same ids.
        for (kind, key), got in answers.items():
            assert all(g == got[0] for g in got), f"{kind} {key}: different answers {got}"

        # A repeat of every key answers 200 with the first answer (not 409 forever).
        wanted = set(plain)
        for (kind, key), got in answers.items():
            deadline = time.time() + 20
            while True:
                resp = send(stack, kind, key, timeout=10)
                if resp.status_code != 409 or time.time() > deadline:
                    break
                time.sleep(0.5)
            assert resp.status_code == 200, f"{kind} {key}: repeat answered {resp.status_code} {resp.text}"
            again = ids_of(kind, resp.json())
            if got:
                assert again == got[0], f"{kind} {key}: replay {again} != first {got[0]}"
            wanted |= set(again)
            for rid in again:
                assert stack.request("GET", f"/email/{rid}").status_code == 200, rid

        for rid in plain:
            assert stack.request("GET", f"/email/{rid}").status_code == 200, rid

        mids = {f"<{rid}@example.org>" for rid in wanted}
        wait_until(lambda: mids <= set(smtp.message_ids()), timeout=180, what="every answered email delivered")
        time.sleep(2)
        received = smtp.message_ids()
        dup = [m for m in set(received) if received.count(m) > 1]
        assert not dup, f"delivered twice: {dup[:5]}"
    finally:
        done.set()
        stack.stop()
