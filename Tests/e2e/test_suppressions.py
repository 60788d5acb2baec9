"""The suppression list: a relay's "no such mailbox" suppresses the address; the next email to
it is refused (its only recipient) or sent without it (one of several); the API and mailctl
add, list and remove; expiry."""
import hashlib
import json
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest

from stack import BIN_DIR, Stack, wait_until


@pytest.fixture
def stack(tmp_path, smtp, store):
    s = Stack(tmp_path, {
        "SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none", "MAX_RETRIES": "0",
    }, store).start()
    yield s
    s.stop()


def post(stack, **fields):
    return stack.post_email({"subject": "s", "body": "b", **fields})


def suppressed(stack):
    response = stack.request("GET", "/suppressions")
    assert response.status_code == 200, response.text
    return {entry["address"]: entry for entry in response.json()["data"]}


def bounce(stack, smtp, address, reply):
    smtp.rcpt_by_address[address] = [reply]
    response = post(stack, to_email=address)
    assert response.status_code == 200, response.text
    request_id = response.json()["request_id"]
    wait_until(lambda: stack.request("GET", f"/email/{request_id}").json()["state"] == "dead_letter",
               what="the bounce's dead letter")
    return request_id


def test_a_no_such_mailbox_bounce_suppresses_and_the_next_email_is_refused(stack, smtp):
    request_id = bounce(stack, smtp, "gone@example.com", "550 5.1.1 <gone@example.com>: user unknown")
    entry = wait_until(lambda: suppressed(stack).get("gone@example.com"), what="the suppression")
    assert entry["origin"] == "bounce" and entry["code"] == 550 and "5.1.1" in entry["reason"]
    assert entry["request_id"] == request_id and "expires_at" not in entry  # SUPPRESSION_TTL_DAYS 0: never
    # The domain compares without case: the same mailbox is refused, naming it.
    refused = post(stack, to_email="gone@EXAMPLE.com")
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["detail"]
    assert error["type"] == "recipient_suppressed" and error["loc"] == ["body", "to_email"]
    assert "gone@EXAMPLE.com" in error["msg"]
    # The local part may be case-sensitive (RFC 5321 §2.4): another mailbox.
    assert post(stack, to_email="Gone@example.com").status_code == 200


def test_a_suppressed_recipient_among_several_is_left_out_and_recorded(stack, smtp):
    bounce(stack, smtp, "gone@example.com", "550 5.1.1 user unknown")
    response = post(stack, to_email="ok@example.com", cc=["gone@example.com", "also@example.com"])
    assert response.status_code == 200, response.text
    request_id = response.json()["request_id"]
    received = smtp.wait_for(1)
    assert sorted(received[0].rcpt_tos) == ["also@example.com", "ok@example.com"]
    record = wait_until(lambda: (r := stack.request("GET", f"/email/{request_id}").json())["state"] == "sent" and r,
                        what="sent")
    states = {r["address"]: r["state"] for r in record["recipients"]}
    assert states == {"ok@example.com": "sent", "gone@example.com": "suppressed", "also@example.com": "sent"}
    # Every recipient suppressed: nothing to send, a 422 naming each.
    bounce(stack, smtp, "left@example.com", "550 5.2.1 mailbox disabled")
    refused = post(stack, to_email="gone@example.com", bcc=["left@example.com"])
    assert refused.status_code == 422
    assert [e["loc"] for e in refused.json()["detail"]] == [["body", "to_email"], ["body", "bcc"]]


@pytest.mark.parametrize("reply,suppresses", [
    ("550 5.1.1 The email account that you tried to reach does not exist", True),
    ("550 5.1.10 RESOLVER.ADR.RecipientNotFound", True),
    ("550 5.2.1 mailbox disabled", True),
    ("550 No such user here", True),  # no enhanced code: the text says so
    ("553 sorry, that domain isn't in my list of allowed rcpthosts", False),
    ("550 5.7.1 message rejected as spam", False),
    ("554 5.7.1 relay access denied", False),
    ("550 Requested action not taken", False),
])
def test_only_no_such_mailbox_refusals_suppress(stack, smtp, reply, suppresses):
    bounce(stack, smtp, "maybe@example.com", reply)
    time.sleep(0.3)
    assert ("maybe@example.com" in suppressed(stack)) == suppresses


def test_a_deferral_never_suppresses(stack, smtp):
    smtp.rcpt_by_address["later@example.com"] = ["450 4.2.1 mailbox busy"]
    assert post(stack, to_email="later@example.com").status_code == 200
    wait_until(lambda: stack.counts()["dead_letter"], what="given up (MAX_RETRIES 0)")
    assert suppressed(stack) == {}


def test_the_api_adds_lists_pages_and_removes(stack, smtp):
    added = stack.request("POST", "/suppressions", json={"address": "Me <me@example.com>", "reason": "asked us to stop"})
    assert added.status_code == 201, added.text
    assert added.json()["address"] == "me@example.com" and added.json()["origin"] == "manual"
    again = stack.request("POST", "/suppressions", json={"address": "me@example.com", "reason": "still"})
    assert again.status_code == 200 and again.json()["reason"] == "still"
    for i in range(4):
        assert stack.request("POST", "/suppressions", json={"address": f"p{i}@example.com", "reason": "r"}).status_code == 201
    first = stack.request("GET", "/suppressions?limit=2").json()
    assert len(first["data"]) == 2 and first["has_more"] is True
    seen = [e["address"] for e in first["data"]]
    after = first["next_after"]
    while after:
        page = stack.request("GET", f"/suppressions?limit=2&after={after}").json()
        seen += [e["address"] for e in page["data"]]
        after = page["next_after"]
    assert seen == sorted(seen) and len(seen) == 5 and len(set(seen)) == 5
    assert post(stack, to_email="me@example.com").status_code == 422
    removed = stack.request("DELETE", "/suppressions/me@example.com")
    assert removed.status_code == 200 and removed.json() == {"address": "me@example.com", "deleted": True}
    assert stack.request("DELETE", "/suppressions/me@example.com").status_code == 404
    assert post(stack, to_email="me@example.com").status_code == 200
    # Bad input, named.
    for body, field in [({"address": "not an address", "reason": "r"}, "address"), ({"address": "a@b.example"}, "reason"),
                        ({"address": "a@b.example", "reason": "x\r\ny"}, "reason")]:
        bad = stack.request("POST", "/suppressions", json=body)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", field], bad.text
    assert stack.request("GET", "/suppressions?limit=0").status_code == 422
    assert stack.request("DELETE", "/suppressions/not-an-address").status_code == 422


def test_batches_refuse_or_keep_items_by_suppression(stack, smtp):
    stack.request("POST", "/suppressions", json={"address": "gone@example.com", "reason": "r"})
    items = [{"to_email": "gone@example.com", "subject": "s", "body": "b"},
             {"to_email": "fine@example.com", "subject": "s", "body": "b"}]
    strict = stack.request("POST", "/emails/batch", json=items)
    assert strict.status_code == 422 and strict.json()["detail"][0]["type"] == "recipient_suppressed"
    assert strict.json()["detail"][0]["loc"][:2] == ["body", 0]
    permissive = stack.request("POST", "/emails/batch?validation=permissive", json=items)
    assert permissive.status_code == 200 and permissive.json()["stored"] == 1
    assert smtp.wait_for(1)[0].rcpt_tos == ["fine@example.com"]


@pytest.mark.file_store("moves a suppression's expiry into the past by editing its file in data/suppressions/")
def test_expiry_applies_and_mailctl_manages_the_list(tmp_path, smtp, store):
    stack = Stack(tmp_path, {"SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
                             "SUPPRESSION_TTL_DAYS": "30"}, store).start()
    try:
        def mailctl(*args):
            return subprocess.run([BIN_DIR / "mailctl", *args], cwd=stack.base, env=stack.env,
                                  capture_output=True, text=True, timeout=60)
        added = mailctl("suppressions", "add", "--reason", "complained", "x@example.com", "bad address", "--json")
        assert added.returncode == 1 and "bad address" in added.stderr or json.loads(added.stdout)
        report = json.loads(added.stdout)
        assert [item["ok"] for item in report["items"]] == [True, False]
        listed = json.loads(mailctl("suppressions", "list", "--json").stdout)
        assert [e["address"] for e in listed] == ["x@example.com"]
        expires = datetime.fromisoformat(listed[0]["expires_at"].replace("Z", "+00:00"))
        assert timedelta(days=29) < expires - datetime.now(timezone.utc) <= timedelta(days=30)
        assert post(stack, to_email="x@example.com").status_code == 422
        # Once expired it no longer applies (the file's expiry moved into the past by hand).
        key = hashlib.sha256(b"x@example.com").hexdigest()
        path = stack.data / "suppressions" / f"{key}.json"
        entry = json.loads(path.read_text())
        entry["expires_at"] = "2020-01-01T00:00:00.000Z"
        path.write_text(json.dumps(entry))
        assert post(stack, to_email="x@example.com").status_code == 200
        assert mailctl("suppressions", "remove", "x@example.com").returncode == 0
        assert mailctl("suppressions", "remove", "x@example.com").returncode == 1
    finally:
        stack.stop()


def test_suppressed_recipients_are_counted_in_metrics(stack, smtp):
    stack.request("POST", "/suppressions", json={"address": "gone@example.com", "reason": "r"})
    post(stack, to_email="gone@example.com")
    post(stack, to_email="ok@example.com", cc=["gone@example.com"])
    text = stack.request("GET", "/metrics").text
    assert "\nmail_recipients_suppressed_total 2\n" in text


def test_concurrent_adds_and_literal_percent_addresses(stack, smtp):
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: stack.request("POST", "/suppressions", json={"address": "same@example.com",
                                                                                       "reason": "r"}).status_code,
                              range(40)))
    assert set(codes) <= {200, 201}, codes
    # A literal % in the local part survives the path and the paging cursor (decoded once).
    for address in ("a%31@example.com", "a1@example.com"):
        assert stack.request("POST", "/suppressions", json={"address": address, "reason": "r"}).status_code == 201
    page = stack.request("GET", "/suppressions?limit=1&after=a%2531%40example.com").json()
    assert [e["address"] for e in page["data"]] == ["a1@example.com"]  # the key after "a%31@..."
    assert stack.request("DELETE", "/suppressions/a%2531@example.com").status_code == 200
    assert "a1@example.com" in suppressed(stack) and "a%31@example.com" not in suppressed(stack)
    assert stack.request("POST", "/suppressions", json={"address": "x@example.com", "reason": " "}).status_code == 422
