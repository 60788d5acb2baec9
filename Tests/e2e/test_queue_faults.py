"""Queue faults on the real stack: a real kill -9 in every gap of every state change, folders
on other filesystems, a full disk, and entries that are not what they seem."""
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from queue_files import base_name, queued_email, write_queue_file
from stack import BIN_DIR, Stack, wait_until


def smtp_env(smtp, **extra):
    return {"SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
            "WORKER_POLLING_INTERVAL": "1", "RETRY_BASE_DELAY": "0.5", **extra}


def post(stack, to="crash@example.com"):
    r = stack.post_email({"to_email": to, "subject": "s", "body": "b"})
    assert r.status_code == 200, r.text
    return r.json()["request_id"]


def deliveries(smtp, request_id):
    return smtp.message_ids().count(f"<{request_id}@example.org>")


def queue_is_settled(stack):
    """No email pending or claimed (a synced temp file a crash left is removed after a minute)."""
    pending = [n for n in stack.files("queue") if not n.startswith(".tmp-")]
    return pending == [] and stack.files("queue/active") == []


# (crash point, the relay's answer to the first attempt, what happens after the restart,
#  the most deliveries allowed). Only the gap after the relay's answer may send twice.
WORKER_GAPS = [
    ("claim.after-rename", None, "sent", 1),
    ("sent.before-trash", None, "sent", 2),
    ("defer.before-rename", "451 4.3.0 try again later", "sent", 1),
    ("defer.before-directory-sync", "451 4.3.0 try again later", "sent", 1),
    ("defer.before-unlink-claim", "451 4.3.0 try again later", "sent", 1),
    # Before the dead letter is in place nothing was recorded: the email is attempted again.
    ("dead-letter.before-rename", "550 5.1.1 no such user", "sent", 1),
    ("dead-letter.before-directory-sync", "550 5.1.1 no such user", "dead", 0),
    ("dead-letter.before-unlink-claim", "550 5.1.1 no such user", "dead", 0),
]


@pytest.mark.file_store("kill -9 at the file queue's crash points (MAIL_CRASH_AT), then reads the queue files")
@pytest.mark.parametrize("point,first_reply,outcome,most", WORKER_GAPS, ids=[g[0] for g in WORKER_GAPS])
def test_kill_9_in_each_gap_of_the_worker_is_resolved_by_the_next_start(tmp_path, smtp, store, point, first_reply,
                                                                         outcome, most):
    stack = Stack(tmp_path, smtp_env(smtp, MAIL_CRASH_AT=point), store).start()
    try:
        if first_reply:
            smtp.rcpt_replies.append(first_reply)
        request_id = post(stack)
        worker = stack.procs.pop("mailworkerd")
        assert worker.wait(timeout=30) == -signal.SIGKILL, "the crash point was not reached"
        left = stack.files("queue") + stack.files("queue/active") + stack.files("dead_letter")
        assert left, "the crash left nothing to recover"

        del stack.env["MAIL_CRASH_AT"]
        stack.start_daemon("mailworkerd")
        if outcome == "sent":
            wait_until(lambda: deliveries(smtp, request_id) >= 1, timeout=30, what="the delivery after restart")
        else:
            wait_until(lambda: stack.files("dead_letter") == [base_name(request_id) + ".json"], timeout=30,
                       what="the dead letter")
        wait_until(lambda: queue_is_settled(stack), timeout=30, what="nothing left in queue/ or active/")
        time.sleep(1.5)  # a resend would come within the polling interval and backoff
        assert deliveries(smtp, request_id) <= most
        assert (deliveries(smtp, request_id) >= 1) == (outcome == "sent")
        if outcome == "sent":
            assert [n for n in stack.files("dead_letter") if not n.startswith(".tmp-")] == []
        assert stack.files("corrupt") == []
        # Every later start works too (a leftover pair of copies made each start exit).
        assert stack.stop_daemon("mailworkerd") == 0
        stack.start_daemon("mailworkerd")
        wait_until(lambda: stack.request("GET", "/health", auth=False).status_code == 200, timeout=15,
                   what="/health to be healthy")
        assert stack.procs["mailworkerd"].poll() is None
    finally:
        stack.stop()


@pytest.mark.file_store("kill -9 at the file queue's crash points (MAIL_CRASH_AT), then reads the queue files")
@pytest.mark.parametrize("point,delivered", [("enqueue.before-rename", 0), ("enqueue.before-directory-sync", 1)])
def test_kill_9_in_each_gap_of_an_enqueue(tmp_path, smtp, store, point, delivered):
    stack = Stack(tmp_path, smtp_env(smtp, MAIL_CRASH_AT=point), store).start()
    try:
        r = stack.post_email({"to_email": "gap@example.com", "subject": "gap", "body": "b"})
        assert r.status_code == 502  # the responder died: nginx had no answer
        assert stack.procs.pop("mailfcgi").wait(timeout=10) == -signal.SIGKILL
        del stack.env["MAIL_CRASH_AT"]
        stack.start_daemon("mailfcgi")
        wait_until(lambda: stack._answers() and stack.request("GET", "/health").status_code in (200, 503),
                   what="the responder back")
        later = post(stack)
        wait_until(lambda: deliveries(smtp, later) == 1, timeout=20, what="a later email")
        time.sleep(1)
        # Before the rename nothing was accepted (a synced temp file is left for recovery);
        # after it the email is queued and delivered once although the client saw a 502.
        assert len(smtp.messages) == 1 + delivered
        assert [n for n in os.listdir(stack.data / "queue") if n.startswith("batch_")] == []
    finally:
        stack.stop()


def test_kill_9_amid_concurrent_enqueues_loses_no_answered_email(tmp_path, smtp, store):
    """Group commit: concurrent enqueues share the queue directory's sync, each answered only
    once a sync covering its rename is done. A kill -9 of the responder among 16 clients'
    requests loses none that was answered 200, and each is delivered once after the restart
    (an email stored but never answered may be delivered too: the client saw a 502)."""
    stack = Stack(tmp_path, smtp_env(smtp), store).start()
    accepted, refused, done = [], [], threading.Event()
    lock = threading.Lock()

    def client(n):
        i = 0
        while not done.is_set():
            i += 1
            try:
                r = stack.post_email({"to_email": f"c{n}-{i}@example.com", "subject": "s", "body": "b"}, timeout=5)
            except Exception:  # the connection reset by the kill
                continue
            with lock:
                (accepted if r.status_code == 200 else refused).append(r.json()["request_id"] if r.status_code == 200
                                                                       else r.status_code)

    try:
        clients = [threading.Thread(target=client, args=(n,)) for n in range(16)]
        for t in clients:
            t.start()
        wait_until(lambda: len(accepted) >= 300, timeout=60, what="300 emails accepted")
        stack.procs["mailfcgi"].send_signal(signal.SIGKILL)
        assert stack.procs.pop("mailfcgi").wait(timeout=10) == -signal.SIGKILL
        time.sleep(0.5)  # the clients meet the dead responder: 502s
        done.set()
        for t in clients:
            t.join(timeout=30)
        with lock:
            answered = list(accepted)
        assert refused, "no request met the killed responder: the kill came after the load"
        stack.start_daemon("mailfcgi")
        wait_until(lambda: stack._answers(), what="the responder back")
        ids = lambda: set(smtp.message_ids())
        wanted = {f"<{request_id}@example.org>" for request_id in answered}
        wait_until(lambda: wanted <= ids(), timeout=120, what="every answered email delivered")
        time.sleep(1)
        received = smtp.message_ids()
        assert all(received.count(m) == 1 for m in wanted)
        assert len(received) == len(set(received)), "an email was delivered twice"
    finally:
        done.set()
        stack.stop()


@pytest.mark.file_store("puts data/trash/ on another filesystem (the file store renames into it)")
@pytest.mark.parametrize("how", ["mount", "symlink", "bind"])
@pytest.mark.parametrize("daemon", ["mailworkerd", "mailfcgi"])
def test_a_data_folder_on_another_filesystem_stops_the_daemon_naming_it(tmp_path, daemon, how):
    data = tmp_path / "data"
    data.mkdir()
    elsewhere = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        if how == "mount":
            (data / "trash").mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", data / "trash"], check=True)
        elif how == "bind":  # the same device number, but renames across it fail with EXDEV
            (data / "trash").mkdir()
            (tmp_path / "elsewhere").mkdir()
            subprocess.run(["mount", "--bind", tmp_path / "elsewhere", data / "trash"], check=True)
        else:
            (data / "trash").symlink_to(elsewhere)
        env = {**os.environ, "DATA_DIR": str(data), "FCGI_SOCKET": str(tmp_path / "s.sock"),
               "LOG_DIR": str(tmp_path / "logs"), "LOG_STDERR": "true"}
        result = subprocess.run([BIN_DIR / daemon, "--env-file", tmp_path / "none.env"], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=30)
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert f"{data}/trash is on another filesystem" in output, output
        assert "Usage" not in output
    finally:
        if how in ("mount", "bind"):
            subprocess.run(["umount", data / "trash"], check=True)
        shutil.rmtree(elsewhere)


@pytest.mark.file_store("bind-mounts over data/trash/ so that renames into it fail, then reads queue/active/")
def test_a_trash_that_refuses_renames_after_start_never_makes_a_delivered_email_go_again(tmp_path, smtp, store):
    stack = Stack(tmp_path, smtp_env(smtp), store).start()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    trash = stack.data / "trash"
    mounted = False
    try:
        subprocess.run(["mount", "--bind", elsewhere, trash], check=True)
        mounted = True
        request_id = post(stack)
        wait_until(lambda: deliveries(smtp, request_id) == 1, what="the delivery")
        # The outcome is recorded inside queue/active/ although the trash refuses it.
        sent = base_name(request_id) + ".sent.json"
        wait_until(lambda: stack.files("queue/active") == [sent], what="the email kept as sent")
        assert stack.stop_daemon("mailworkerd") == 0  # an orderly stop puts nothing back
        assert stack.files("queue") == []
        subprocess.run(["umount", trash], check=True)
        mounted = False
        stack.start_daemon("mailworkerd")
        wait_until(lambda: queue_is_settled(stack), what="the sent email filed in the trash")
        assert any(n.startswith(base_name(request_id) + ".sent.") for n in stack.files("trash"))
        time.sleep(1.5)
        assert deliveries(smtp, request_id) == 1
    finally:
        if mounted:
            subprocess.run(["umount", trash], check=True)
        stack.stop()


@pytest.mark.file_store("removes data/trash/ under the running daemons, then reads it")
def test_a_trash_removed_by_an_operator_while_running_sends_nothing_twice(tmp_path, smtp, store):
    stack = Stack(tmp_path, smtp_env(smtp, CLAIM_TIMEOUT="8"), store).start()
    try:
        first = post(stack)
        wait_until(lambda: deliveries(smtp, first) == 1, what="a first delivery")
        shutil.rmtree(stack.data / "trash")
        second = post(stack)
        wait_until(lambda: deliveries(smtp, second) == 1, what="the delivery with no trash folder")
        wait_until(lambda: queue_is_settled(stack), what="the email filed")
        time.sleep(12)  # past CLAIM_TIMEOUT and its sweep: a claim left behind would go again
        assert deliveries(smtp, second) == 1
        assert any(n.startswith(base_name(second)) for n in stack.files("trash"))
        assert stack.request("GET", "/status").status_code == 200
    finally:
        stack.stop()


def fill(path):
    """Writes `path` until the filesystem has no byte left; returns the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 16, 4096, 512, 1):
            chunk = b"\0" * size
            while True:
                try:
                    written += f.write(chunk)
                except OSError as e:
                    assert e.errno == errno.ENOSPC
                    break
    return written


@pytest.mark.file_store("fills data/'s filesystem (a tmpfs) where the file store writes; reads the claim and trash")
def test_a_full_disk_refuses_with_507_keeps_the_retry_claimed_and_recovers_in_seconds(tmp_path, smtp, store):
    data = tmp_path / "data"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", data], check=True)
    stack = None
    try:
        stack = Stack(tmp_path, smtp_env(smtp, MIN_FREE_BYTES="0", MIN_FREE_INODES="0", RETRY_BASE_DELAY="1"),
                      store).start()
        smtp.delay = 1.5
        smtp.data_replies.append("451 4.3.0 busy, try later")
        first = post(stack)
        wait_until(lambda: stack.files("queue/active"), what="the first email claimed")
        fill(data / "filler")

        refused = stack.post_email({"to_email": "late@example.com", "subject": "s", "body": "b"})
        assert refused.status_code == 507, refused.text
        assert "storage" in refused.json()["detail"].lower()
        assert refused.headers.get("Retry-After")
        assert [n for n in os.listdir(data / "queue") if n != "active"] == []  # nothing half-written

        # The relay deferred the first email, but the deferral cannot be written: the claim is kept.
        wait_until(lambda: "cannot record the failed attempt" in stack.log("mailworkerd"), timeout=10,
                   what="the failed recording")
        time.sleep(2)
        assert stack.files("queue/active") == [base_name(first) + ".processing.json"]
        assert smtp.messages == []
        health = stack.request("GET", "/health", auth=False)
        assert health.status_code == 503
        components = health.json()["components"]
        assert "mailworkerd" in components["storage"]
        assert "not running" not in components["email_sender"]

        os.unlink(data / "filler")
        wait_until(lambda: deliveries(smtp, first) == 1, timeout=15, what="the deferred email once space returned")
        wait_until(lambda: queue_is_settled(stack), what="the queue to settle")
        trash = [n for n in stack.files("trash") if n.startswith(base_name(first))]
        record = json.loads((data / "trash" / trash[0]).read_text())
        # The deferral counted once, however long recording it took; then the delivery.
        assert record["retry_count"] == 1
        assert [a.get("code") for a in record["attempts"]] == [451, None]
        assert record["attempts"][1]["recipients"][0]["status"] == "accepted"
        later = post(stack)
        wait_until(lambda: deliveries(smtp, later) == 1, what="a new email")
        wait_until(lambda: stack.request("GET", "/health", auth=False).status_code == 200, timeout=15,
                   what="/health healthy again")
        assert deliveries(smtp, first) == 1
    finally:
        if stack:
            stack.stop()
        subprocess.run(["umount", data], check=True)


@pytest.mark.file_store("MIN_FREE_BYTES is the file store's own check (FileQueue's enqueue measures data/queue/)")
def test_free_space_below_the_reserve_is_507_and_reported_by_health(tmp_path, smtp, store):
    stack = Stack(tmp_path, smtp_env(smtp, MIN_FREE_BYTES=str(1 << 50)), store).start()
    try:
        r = stack.post_email({"to_email": "a@example.com", "subject": "s", "body": "b"})
        assert r.status_code == 507
        assert r.json()["detail"].startswith("Insufficient storage")
        health = stack.request("GET", "/health", auth=False).json()
        assert "below MIN_FREE_BYTES" in health["components"]["storage"]
        assert stack.files("queue") == []
    finally:
        stack.stop()


def test_a_heartbeat_from_the_future_is_not_taken_for_a_running_worker(stack):
    assert stack.stop_daemon("mailworkerd") == 0
    status_file = stack.data / "status" / "workers.json"
    status = json.loads(status_file.read_text())
    status["heartbeat"] = "2099-01-01T00:00:00.000Z"
    status_file.write_text(json.dumps(status))
    old = time.time() - 3600
    os.utime(status_file, (old, old))
    body = stack.request("GET", "/health", auth=False).json()
    assert "in the future" in body["components"]["email_sender"]
    assert body["status"] == "degraded"


@pytest.mark.file_store("plants symlinks, a folder, a FIFO, unreadable and hostile queue files in data/queue/")
@pytest.mark.parametrize("user", [None, "nobody"])
def test_entries_that_are_not_what_they_seem_are_set_aside_and_the_rest_delivered(smtp, store, user):
    # A base every user can reach (pytest's own temp folders are private to root).
    base = Path(tempfile.mkdtemp(prefix="odd-files-"))
    base.chmod(0o755)
    stack = Stack(base, smtp_env(smtp), store)
    queue, active = stack.data / "queue", stack.data / "queue" / "active"
    active.mkdir(parents=True)
    passwd = os.stat("/etc/passwd")
    try:
        # Written by root, readable by all: what the README's dead-letter recipe leaves.
        good = write_queue_file(queue, queued_email("good@example.com"))
        dated = write_queue_file(queue, queued_email("dated@example.com", next_attempt_at="2020-01-01"))
        private = write_queue_file(queue, queued_email("private@example.com"), mode=0o600)
        outside = write_queue_file(base, queued_email("outside@example.com"))
        os.utime(outside, (1_000_000_000, 1_000_000_000))
        (queue / "batch_1_00000001.json").symlink_to(outside)
        (queue / "batch_1_00000002.json").symlink_to("/etc/passwd")
        (queue / "batch_1_00000003.json").mkdir()
        os.mkfifo(queue / "batch_1_00000004.json")
        write_queue_file(queue, queued_email("x@example.com\r\nRCPT TO:<evil@example.net>"))
        (active / "batch_1_00000005.processing.json").symlink_to(outside)
        (active / "stray.txt").write_text("not a claim")
        if user:
            for path in [stack.data, *stack.data.rglob("*")]:
                if path != private:
                    os.lchown(path, pwd_uid(user), -1)
            (base / "logs").mkdir()
            os.chown(base / "logs", pwd_uid(user), -1)
        stack.start_daemon("mailworkerd", user=user)
        expected = {"good@example.com", "dated@example.com"} | (set() if user else {"private@example.com"})
        wait_until(lambda: {r for m in smtp.messages for r in m.rcpt_tos} >= expected, timeout=30,
                   what="the valid emails")
        corrupt_expected = 7 + (1 if user else 0)
        wait_until(lambda: len(os.listdir(stack.data / "corrupt")) == corrupt_expected, timeout=15,
                   what="every stranger in corrupt/")
        corrupt = sorted(os.listdir(stack.data / "corrupt"))
        for name, reason in [("batch_1_00000001", "symlink"), ("batch_1_00000002", "symlink"),
                             ("batch_1_00000003", "not_regular"), ("batch_1_00000004", "not_regular"),
                             ("batch_1_00000005", "symlink"), ("stray.txt", "stray_entry")]:
            assert any(n.startswith(name) and f".{reason}." in n for n in corrupt), (name, corrupt)
        assert any(".invalid_address." in n for n in corrupt)
        if user:
            assert any(n.startswith(private.stem) and ".unreadable." in n for n in corrupt)
        time.sleep(2)  # long enough for a loop on a stranger to show in the log
        received = [r for m in smtp.messages for r in m.rcpt_tos]
        assert sorted(received) == sorted(expected)
        assert all(b"evil" not in m.data for m in smtp.messages)
        assert os.listdir(queue) == ["active"] and os.listdir(active) == []
        assert os.stat(outside).st_mtime == 1_000_000_000
        after = os.stat("/etc/passwd")
        assert (after.st_mtime_ns, after.st_ctime_ns, after.st_uid) == (passwd.st_mtime_ns, passwd.st_ctime_ns,
                                                                         passwd.st_uid)
        log = stack.log("mailworkerd")
        assert "queue error" not in log and "Operation not permitted" not in log
        assert stack.procs["mailworkerd"].poll() is None
    finally:
        stack.stop()
        shutil.rmtree(base, ignore_errors=True)


def pwd_uid(user):
    import pwd
    return pwd.getpwnam(user).pw_uid
