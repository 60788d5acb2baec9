"""mailctl against a live stack with delivery running: every subcommand, its --json output
parsed, its exit codes, and the races it must never lose into a duplicate (a requeue of 1,000
dead letters while mailworkerd delivers; deletes racing claims; a requeue killed with -9)."""
import email
import json
import subprocess
import time
from datetime import datetime, timedelta, timezone
from email import policy

import pytest

from stack import BIN_DIR, Stack, wait_until


@pytest.fixture
def stack(tmp_path, smtp, store):
    s = Stack(tmp_path, {
        "SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none", "NUM_WORKERS": "4",
        "MAX_RETRIES": "3", "RETRY_BASE_DELAY": "3600", "WORKER_POLLING_INTERVAL": "1",
    }, store).start()
    yield s
    s.stop()


def mailctl(stack, *args, input=None, env=None):
    return subprocess.run([BIN_DIR / "mailctl", *args], cwd=stack.base, env={**stack.env, **(env or {})},
                          capture_output=True, text=True, input=input, timeout=120)


def mailctl_json(stack, *args):
    result = mailctl(stack, *args, "--json")
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout), result.returncode


def later(seconds=3600):
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat()


def post(stack, **fields):
    payload = {"to_email": "user@example.com", "subject": "s", "body": "b", **fields}
    response = stack.post_email(payload)
    assert response.status_code == 200, response.text
    return response.json()["request_id"]


def state(stack, request_id):
    return stack.request("GET", f"/email/{request_id}").json()["state"]


def dead_letter(stack, smtp, count):
    """`count` dead letters: the relay refuses their MAIL FROM for good, then accepts again."""
    smtp.mail_reply = "550 5.7.1 sender refused"
    ids = []
    for start in range(0, count, 100):
        batch = [{"to_email": f"u{i}@example.com", "subject": f"dead {i}", "body": "b"}
                 for i in range(start, min(count, start + 100))]
        response = stack.request("POST", "/emails/batch", json=batch)
        assert response.status_code == 200, response.text
        ids += [item["request_id"] for item in response.json()["data"]]
    wait_until(lambda: stack.counts()["dead_letter"] == count, timeout=120, interval=0.1, what=f"{count} dead letters")
    smtp.mail_reply = None
    return ids


def test_queue_show_and_stats_describe_every_state(stack, smtp):
    sent = post(stack, to_email="sent@example.com")
    smtp.wait_for(1)
    scheduled = post(stack, to_email="later@example.org", send_at=later())
    smtp.rcpt_by_address["slow@example.net"] = ["451 4.7.1 try later"]
    deferred = post(stack, to_email="slow@example.net")
    wait_until(lambda: state(stack, deferred) == "deferred", what="the deferral")
    [dead] = dead_letter(stack, smtp, 1)

    lines, code = mailctl_json(stack, "queue")
    assert code == 0
    by_id = {line["request_id"]: line for line in lines}
    assert by_id[scheduled]["state"] == "scheduled" and by_id[deferred]["state"] == "deferred"
    assert by_id[dead]["state"] == "dead_letter" and "550" in by_id[dead]["last_error"]
    assert sent not in by_id  # finished emails only on request
    assert by_id[deferred]["retry_count"] == 1 and "451" in by_id[deferred]["last_error"]
    assert all(line["size_bytes"] > 200 for line in lines)
    only_dead, _ = mailctl_json(stack, "queue", "--state", "dead_letter")
    assert [line["request_id"] for line in only_dead] == [dead]
    to_org, _ = mailctl_json(stack, "queue", "--to", "@EXAMPLE.org")
    assert [line["request_id"] for line in to_org] == [scheduled]
    finished, _ = mailctl_json(stack, "queue", "--state", "sent")
    assert [line["request_id"] for line in finished] == [sent]
    assert mailctl_json(stack, "queue", "--older-than", "1h")[0] == []
    assert len(mailctl_json(stack, "queue", "--limit", "2")[0]) == 2
    text = mailctl(stack, "queue")
    assert text.returncode == 0 and deferred in text.stdout and "slow@example.net" in text.stdout

    shown, _ = mailctl_json(stack, "show", deferred)
    assert shown["state"] == "deferred" and shown["email"]["attempts"][0]["code"] == 451
    message = mailctl(stack, "show", dead, "--message")
    parsed = email.message_from_string(message.stdout.replace("\r\n", "\n"), policy=policy.default)
    assert parsed["To"] == "u0@example.com" and parsed["Subject"] == "dead 0"
    assert mailctl(stack, "show", "01900000-0000-7000-8000-000000000000").returncode == 1

    stats, _ = mailctl_json(stack, "stats")
    assert stats["counts"]["scheduled"] == 1 and stats["counts"]["deferred"] == 1
    assert stats["counts"]["dead_letter"] == 1 and stats["counts"]["finished"] == 1
    domains = {d["domain"]: d for d in stats["domains"]}
    assert domains["example.net"]["total"] == 1 and domains["example.org"]["by_age"][0] == 1
    assert "TOTAL" in mailctl(stack, "stats").stdout


def test_hold_keeps_an_email_out_of_delivery_until_released(stack, smtp):
    request_id = post(stack, send_at=later(2))
    result, code = mailctl_json(stack, "hold", request_id)
    assert code == 0 and result["items"][0]["state"] == "held"
    assert state(stack, request_id) == "held"
    time.sleep(4)  # past its send_at: a held email is not claimed
    assert smtp.messages == []
    assert mailctl_json(stack, "release", request_id)[0]["items"][0]["ok"]
    assert smtp.wait_for(1)[0].rcpt_tos == ["user@example.com"]
    wait_until(lambda: state(stack, request_id) == "sent", what="sent after release")
    # Holding what is finished, or releasing what is not held, fails by name with exit 1.
    again = mailctl(stack, "hold", request_id)
    assert again.returncode == 1 and request_id in again.stderr and "sent" in again.stderr
    assert mailctl(stack, "release", request_id).returncode == 1


def test_flush_makes_deferred_emails_due_now(stack, smtp):
    smtp.rcpt_by_address["slow@example.net"] = ["451 4.7.1 try later"]
    deferred = post(stack, to_email="slow@example.net")
    wait_until(lambda: state(stack, deferred) == "deferred", what="the deferral (next try in an hour)")
    result, code = mailctl_json(stack, "flush")
    assert code == 0 and [item["request_id"] for item in result["items"]] == [deferred]
    assert smtp.wait_for(1, timeout=15)[0].rcpt_tos == ["slow@example.net"]
    wait_until(lambda: state(stack, deferred) == "sent", what="sent after the flush")


def test_requeue_of_1000_dead_letters_at_a_rate_while_delivering(stack, smtp):
    ids = dead_letter(stack, smtp, 1000)
    started = time.monotonic()
    result = mailctl(stack, "requeue", "--dead-letters", "--rate", "250/s")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "requeued: 1000 of 1000" in result.stdout and "requeued 1000 of 1000" in result.stderr
    assert elapsed >= 3.0  # 1,000 at 250 a second take 4 s; a wide margin for a busy machine
    received = smtp.wait_for(1000, timeout=120)
    message_ids = [email.message_from_bytes(r.data)["Message-ID"] for r in received]
    assert len(message_ids) == 1000 and len(set(message_ids)) == 1000  # each delivered once
    time.sleep(2)
    assert len(smtp.messages) == 1000
    assert stack.counts()["dead_letter"] == 0
    record = stack.request("GET", f"/email/{ids[0]}").json()
    # Retries reset; the history kept: the refused attempt, then the one that delivered it.
    assert record["state"] == "sent" and record["retry_count"] == 0
    assert record["attempts"][0].get("code") == 550 and len(record["attempts"]) == 2


def test_requeue_filters_by_reason_and_since(stack, smtp):
    ids = dead_letter(stack, smtp, 3)
    assert mailctl_json(stack, "requeue", "--dead-letters", "--reason", "no such text")[0]["items"] == []
    assert mailctl_json(stack, "requeue", "--dead-letters", "--since", "2099-01-01T00:00:00Z")[0]["items"] == []
    result, code = mailctl_json(stack, "requeue", "--dead-letters", "--reason", "SENDER REFUSED", "--since", "1h")
    assert code == 0 and sorted(item["request_id"] for item in result["items"]) == sorted(ids)
    smtp.wait_for(3, timeout=15)


@pytest.mark.file_store("kill -9 at the file queue's crash points (MAIL_CRASH_AT)")
@pytest.mark.parametrize("point", ["requeue.before-write", "requeue.before-unlink-marker"])
def test_a_requeue_killed_between_its_steps_is_finished_by_the_next_one(stack, smtp, point):
    [dead] = dead_letter(stack, smtp, 1)
    killed = mailctl(stack, "requeue", dead, env={"MAIL_CRASH_AT": point})
    assert killed.returncode == -9
    result = mailctl(stack, "requeue", "--dead-letters")
    assert result.returncode == 0, result.stderr
    smtp.wait_for(1, timeout=15)
    wait_until(lambda: state(stack, dead) == "sent", what="the requeued email sent")
    time.sleep(2)
    assert len(smtp.messages) == 1  # never queued twice
    assert stack.files("dead_letter") == []


def test_delete_racing_claims_never_both_deletes_and_sends(stack, smtp):
    # 4 workers at 1 s an email take 10 s for 40, far longer than posting them even on a busy
    # machine: one mailctl call deletes them as they are being claimed, so some deletes win and
    # some find the email sending or sent.
    smtp.delay = 1.0
    ids = [post(stack, to_email=f"race{i}@example.com") for i in range(40)]
    result, _ = mailctl_json(stack, "delete", "--yes", *ids)
    outcomes = {item["request_id"]: item for item in result["items"]}
    assert list(outcomes) == ids
    time.sleep(3)
    delivered = {r.rcpt_tos[0] for r in smtp.messages}
    for i, (request_id, item) in enumerate(outcomes.items()):  # in posting order
        address = f"race{i}@example.com"
        if item["ok"]:
            assert address not in delivered, item
            assert stack.request("GET", f"/email/{request_id}").status_code == 404
        else:
            assert item["state"] in ("sending", "sent"), item
            wait_until(lambda: address in {r.rcpt_tos[0] for r in smtp.messages}, what=f"{address} sent")
    assert any(item["ok"] for item in outcomes.values()) and not all(item["ok"] for item in outcomes.values())


def test_delete_asks_first_and_takes_dead_letters_before_a_time(stack, smtp):
    ids = dead_letter(stack, smtp, 2)
    refused = mailctl(stack, "delete", "--dead-letters", input="n\n")
    assert refused.returncode == 1 and "not confirmed" in refused.stderr
    assert stack.counts()["dead_letter"] == 2
    assert mailctl_json(stack, "delete", "--dead-letters", "--before", "1h", "--yes")[0]["items"] == []
    confirmed = mailctl(stack, "delete", "--dead-letters", input="y\n")
    assert confirmed.returncode == 0 and "deleted: 2 of 2" in confirmed.stdout
    assert stack.counts()["dead_letter"] == 0
    assert stack.request("GET", f"/email/{ids[0]}").status_code == 404


def test_exit_codes_usage_two_and_failures_one_by_name(stack, smtp):
    assert mailctl(stack).returncode == 2  # no subcommand
    assert mailctl(stack, "requeue").returncode == 2  # neither ids nor --dead-letters
    assert mailctl(stack, "queue", "--state", "nonsense").returncode == 2
    assert mailctl(stack, "queue", "--older-than", "soon").returncode == 2
    missing = "01900000-0000-7000-8000-000000000000"
    result = mailctl(stack, "hold", missing, "not-an-id")
    assert result.returncode == 1 and missing in result.stderr and "not-an-id" in result.stderr
    report, code = mailctl_json(stack, "delete", "--yes", missing)
    assert code == 1 and report["items"] == [{"request_id": missing, "ok": False, "state": None,
                                              "error": "no email has this id"}]
    assert mailctl(stack, "--help").returncode == 0


def test_two_requeues_at_once_queue_each_dead_letter_once(stack, smtp):
    ids = dead_letter(stack, smtp, 200)
    runs = [subprocess.Popen([BIN_DIR / "mailctl", "requeue", "--dead-letters", "--json"], cwd=stack.base,
                             env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    for run in runs:
        run.communicate(timeout=120)
    smtp.wait_for(200, timeout=60)
    time.sleep(2)
    message_ids = [email.message_from_bytes(r.data)["Message-ID"] for r in smtp.messages]
    assert len(message_ids) == 200 and len(set(message_ids)) == 200  # never queued twice
    counts = stack.counts()
    assert counts["corrupt"] == 0 and counts["dead_letter"] == 0
    assert all(state(stack, i) == "sent" for i in ids[:20])


@pytest.mark.file_store("kill -9 at a file queue's crash point (MAIL_CRASH_AT), then checks data/held/")
@pytest.mark.parametrize("command", ["delete", "hold"])
def test_a_claim_left_by_a_crash_makes_the_email_sending_not_deletable(tmp_path, smtp, store, command):
    # mailworkerd killed after writing the deferred copy, before removing its claim: recovery
    # will put the claim back, so deleting or holding the pending copy would not stop it.
    stack = Stack(tmp_path, {"SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
                             "RETRY_BASE_DELAY": "3600", "MAIL_CRASH_AT": "defer.before-unlink-claim"}, store).start()
    try:
        smtp.rcpt_by_address["slow@example.net"] = ["451 4.7.1 try later"]
        request_id = post(stack, to_email="slow@example.net")
        wait_until(lambda: stack.procs["mailworkerd"].poll() is not None, what="mailworkerd killed")
        stack.procs.pop("mailworkerd")
        result = mailctl(stack, command, "--yes", request_id) if command == "delete" else mailctl(stack, command, request_id)
        assert result.returncode == 1 and "sending" in result.stderr, result.stderr
        del stack.env["MAIL_CRASH_AT"]
        stack.start_daemon("mailworkerd")
        assert mailctl(stack, "flush").returncode == 0
        smtp.wait_for(1, timeout=15)
        wait_until(lambda: state(stack, request_id) == "sent", what="sent once recovered")
        assert stack.files("held") == []
    finally:
        stack.stop()


@pytest.mark.file_store("removes data/dead_letter/ under the running daemons")
def test_metrics_still_answer_while_a_folder_is_missing(stack, smtp):
    import shutil
    shutil.rmtree(stack.data / "dead_letter")
    response = stack.request("GET", "/metrics")
    assert response.status_code == 200 and "mail_worker_up" in response.text


@pytest.mark.file_store("puts a folder named like a dead letter in data/dead_letter/")
def test_an_entry_that_is_not_ours_does_not_break_the_listing(stack, smtp):
    [dead] = dead_letter(stack, smtp, 1)
    (stack.data / "dead_letter" / "batch_1700000000002_deadbeef.json").mkdir()
    lines, code = mailctl_json(stack, "queue")
    assert code == 0 and [line["request_id"] for line in lines] == [dead]
