"""Attachments, inline parts and custom headers, from the API to the SMTP server, judged by
Python's email parser: the bytes sent come back exactly, in the right MIME structure."""
import base64
import email
import email.header
import itertools
import json
import os

import pytest
from email import policy

from stack import Stack, wait_until


def parse(raw: bytes):
    assert b"\n" not in raw.replace(b"\r\n", b""), "bare LF on the wire"
    assert all(byte < 0x80 for byte in raw), "8-bit byte on the wire"
    assert all(len(line) <= 78 for line in raw.split(b"\r\n")), [l for l in raw.split(b"\r\n") if len(l) > 78]
    return email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=policy.default)


def shape(part):
    """The MIME tree as nested tuples of content types: ("multipart/mixed", [...])."""
    if part.is_multipart():
        return (part.get_content_type(), [shape(p) for p in part.iter_parts()])
    return part.get_content_type()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40


def test_binary_attachment_arrives_byte_for_byte_with_its_name(stack, smtp):
    response = stack.post_email({
        "to_email": "alice@example.com", "subject": "Your invoice", "body": "Attached.\n",
        "attachments": [{"filename": "invoice-2026.pdf", "content": b64(PDF)}],
    })
    assert response.status_code == 200, response.text
    message = parse(smtp.wait_for(1)[0].data)
    assert shape(message) == ("multipart/mixed", ["text/plain", "application/pdf"])
    text, pdf = message.iter_parts()
    assert text.get_content() == "Attached.\n"
    assert pdf.get_filename() == "invoice-2026.pdf"
    assert pdf.get_content_disposition() == "attachment"
    assert pdf["Content-Transfer-Encoding"] == "base64"
    assert pdf.get_payload(decode=True) == PDF
    # Base64 lines are 76 characters (RFC 2045 §6.8), the last one shorter.
    raw = smtp.messages[0].data.decode()
    body_lines = raw.split("Content-Transfer-Encoding: base64\r\n")[1].split("\r\n\r\n", 1)[1].split("\r\n")
    encoded = list(itertools.takewhile(lambda line: line and not line.startswith("--"), body_lines))
    assert all(len(line) == 76 for line in encoded[:-1]) and 0 < len(encoded[-1]) <= 76


@pytest.mark.parametrize("name", [
    "Rechnung März.pdf",
    "報告書_2026年第4四半期_売上と費用の詳細な内訳_最終版_確認済み.xlsx",
    "a \"quoted\" name; with=specials.txt",
    "x" * 120 + ".csv",
    "émoji 🎉 and spaces   inside.png",
])
def test_file_names_survive_rfc_2231_and_2047(stack, smtp, name):
    response = stack.post_email({
        "to_email": "bob@example.com", "subject": "Names", "body": "See attached.",
        "attachments": [{"filename": name, "content": b64(b"data for " + name.encode())}],
    })
    assert response.status_code == 200, response.text
    message = parse(smtp.wait_for(1)[0].data)
    attachment = list(message.iter_attachments())[0]
    assert attachment.get_filename() == name
    assert attachment.get_payload(decode=True) == b"data for " + name.encode()
    # The Content-Type's name (what clients before RFC 2231 read) decodes to the same name.
    assert str(attachment.get_param("name")) == name or \
        str(email.header.make_header(email.header.decode_header(attachment.get_param("name")))) == name


def test_a_file_name_that_looks_like_an_encoded_word_stays_literal(stack, smtp):
    # Mail clients decode encoded-words in parameters: written plain, this would read "../../evil.exe".
    name = "=?UTF-8?B?Li4vLi4vZXZpbC5leGU=?="
    response = stack.post_email({"to_email": "x@example.com", "subject": "s", "body": "b",
                                 "attachments": [{"filename": name, "content": "QUJD"}]})
    assert response.status_code == 200, response.text
    raw = smtp.wait_for(1)[0].data
    attachment = list(parse(raw).iter_attachments())[0]
    assert attachment.get_filename() == name
    # The RFC 2047 name decodes (policy.default decodes it) to the literal text, not a path.
    assert str(attachment.get_param("name")) == name
    assert b'name="=?UTF-8?B?Li4v' not in raw and b'filename="=?' not in raw


@pytest.mark.parametrize("fmt,inline,attached", list(itertools.product(
    ["plain", "html", "multipart"], [False, True], [False, True])))
def test_every_combination_has_the_right_structure(stack, smtp, fmt, inline, attached):
    if fmt == "plain" and inline:
        pytest.skip("an inline part needs HTML (refused: test_inline_part_without_html_is_refused)")
    payload = {"to_email": "carol@example.com", "subject": "Shapes", "format": fmt}
    if fmt == "multipart":
        payload.update(body="Text version", html_body='<p>HTML <img src="cid:logo@example.org"></p>')
    elif fmt == "html":
        payload["body"] = '<p>HTML <img src="cid:logo@example.org"></p>'
    else:
        payload["body"] = "Plain text"
    items = []
    if inline:
        items.append({"filename": "logo.png", "content": b64(PNG), "content_id": "<logo@example.org>"})
    if attached:
        items.append({"filename": "terms.pdf", "content": b64(PDF)})
    payload["attachments"] = items
    response = stack.post_email(payload)
    assert response.status_code == 200, response.text
    message = parse(smtp.wait_for(1)[0].data)

    html = ("multipart/related", ["text/html", "image/png"]) if inline else "text/html"
    body = {"plain": "text/plain", "html": html, "multipart": ("multipart/alternative", ["text/plain", html])}[fmt]
    expected = ("multipart/mixed", [body, "application/pdf"]) if attached else body
    assert shape(message) == expected
    for part in message.walk():
        if part.get_content_type() == "image/png":
            assert part["Content-ID"] == "<logo@example.org>"
            assert part.get_content_disposition() == "inline"
            assert part.get_payload(decode=True) == PNG
        if part.get_content_type() == "application/pdf":
            assert part.get_payload(decode=True) == PDF
        if part.get_content_type() == "text/html":
            assert "cid:logo@example.org" in part.get_content()


def test_content_type_is_guessed_checked_or_octet_stream(stack, smtp):
    response = stack.post_email({
        "to_email": "dan@example.com", "subject": "Types", "body": "x",
        "attachments": [
            {"filename": "photo.JPG", "content": b64(b"jpeg")},
            {"filename": "data.unknownext", "content": b64(b"?")},
            {"filename": "README", "content": b64(b"no extension")},
            {"filename": "table.txt", "content": b64(b"a,b\r\n1,2\n"), "content_type": "Text/CSV; charset=utf-8"},
        ],
    })
    assert response.status_code == 200, response.text
    parts = list(parse(smtp.wait_for(1)[0].data).iter_attachments())
    assert [p.get_content_type() for p in parts] == [
        "image/jpeg", "application/octet-stream", "application/octet-stream", "text/csv"]
    assert parts[3].get_param("charset") == "utf-8"
    # Text files travel in base64 too, so their line ends are kept exactly.
    assert parts[3].get_payload(decode=True) == b"a,b\r\n1,2\n"


def test_empty_file_and_base64_with_line_breaks_are_accepted(stack, smtp):
    wrapped = base64.encodebytes(PDF).decode()  # 76-column lines with LF, as many tools write
    response = stack.post_email({
        "to_email": "erin@example.com", "subject": "Edge", "body": "x",
        "attachments": [{"filename": "empty.bin", "content": ""}, {"filename": "w.pdf", "content": wrapped}],
    })
    assert response.status_code == 200, response.text
    parts = list(parse(smtp.wait_for(1)[0].data).iter_attachments())
    assert parts[0].get_payload(decode=True) == b""
    assert parts[1].get_payload(decode=True) == PDF


def error_locations(response):
    assert response.status_code == 422, response.text
    return {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}


@pytest.mark.parametrize("item,key,words", [
    ({"filename": "a.pdf", "content": "not base64!"}, "content", "base64"),
    ({"filename": "a.pdf", "content": "QUJD="}, "content", "base64"),
    ({"filename": "a.pdf", "content": "QR=="}, "content", "base64"),  # non-zero spare bits
    ({"filename": "a.pdf", "content": 42}, "content", "string"),
    ({"filename": "a.pdf"}, "content", "required"),
    ({"content": "QUJD"}, "filename", "required"),
    ({"filename": "../etc/passwd", "content": "QUJD"}, "filename", "path"),
    ({"filename": "dir\\file.txt", "content": "QUJD"}, "filename", "path"),
    ({"filename": "bad\r\nname.txt", "content": "QUJD"}, "filename", "control"),
    ({"filename": "", "content": "QUJD"}, "filename", "empty"),
    ({"filename": "x" * 300, "content": "QUJD"}, "filename", "longer"),
    ({"filename": "a.bin", "content": "QUJD", "content_type": "pdf"}, "content_type", "type/subtype"),
    ({"filename": "a.bin", "content": "QUJD", "content_type": "text/plain; charset"}, "content_type", "parameter"),
    ({"filename": "a.eml", "content": "QUJD", "content_type": "message/rfc822"}, "content_type", "base64"),
    ({"filename": "a.bin", "content": "QUJD", "content_type": "multipart/mixed"}, "content_type", "base64"),
    ({"filename": "../\u0301../\u0301evil.exe", "content": "QUJD"}, "filename", "path"),  # "/" + combining mark
    ({"filename": "dir\\\u0301file.txt", "content": "QUJD"}, "filename", "path"),
    ({"filename": "a.pdf", "content": "QUJD", "content_type": "application/pdf; name=\"../x.exe\""},
     "content_type", "name parameter"),
    ({"filename": "a.pdf", "content": "QUJD", "content_type": "application/pdf; FILENAME*=utf-8''x"},
     "content_type", "filename"),
    ({"filename": "a.bin", "content": "QUJD", "content_type": "application/octet-stream; x=" + "a" * 2000},
     "content_type", "longer than 200"),
    ({"filename": "a.png", "content": "QUJD", "content_id": "two@at@signs"}, "content_id", "dot-atom"),
    ({"filename": "a.png", "content": "QUJD", "content_id": "has space@x"}, "content_id", "dot-atom"),
])
def test_each_bad_attachment_is_refused_naming_its_item_and_field(stack, smtp, item, key, words):
    good = {"filename": "fine.txt", "content": "QUJD"}
    response = stack.post_email({"to_email": "f@example.com", "subject": "s", "body": "<p>b</p>",
                                 "format": "html", "attachments": [good, item]})
    locations = error_locations(response)
    assert list(locations) == [("body", "attachments", 1, key)], locations
    assert words.lower() in locations[("body", "attachments", 1, key)].lower()
    assert "not base64!" not in response.text or key != "content"  # the content is not echoed
    assert stack.counts()["waiting"] == 0


def test_duplicate_content_id_and_inline_without_html_are_refused(stack, smtp):
    png = {"filename": "a.png", "content": b64(PNG), "content_id": "logo@x"}
    locations = error_locations(stack.post_email({
        "to_email": "g@example.com", "subject": "s", "body": "<p/>", "format": "html",
        "attachments": [png, {**png, "content_id": "<LOGO@x>"}]}))
    assert list(locations) == [("body", "attachments", 1, "content_id")]


def test_inline_part_without_html_is_refused(stack, smtp):
    locations = error_locations(stack.post_email({
        "to_email": "g@example.com", "subject": "s", "body": "plain",
        "attachments": [{"filename": "a.png", "content": b64(PNG), "content_id": "logo@x"}]}))
    assert list(locations) == [("body", "attachments", 0, "content_id")]
    assert "HTML" in locations[("body", "attachments", 0, "content_id")]


def test_attachments_must_be_a_list_of_objects(stack, smtp):
    assert list(error_locations(stack.post_email({
        "to_email": "g@example.com", "subject": "s", "body": "b", "attachments": {"filename": "a"}}))) == [
        ("body", "attachments")]
    assert list(error_locations(stack.post_email({
        "to_email": "g@example.com", "subject": "s", "body": "b", "attachments": ["QUJD"]}))) == [
        ("body", "attachments", 0)]


@pytest.fixture
def small_stack(tmp_path, smtp, store):
    s = Stack(tmp_path, {
        "SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
        "MAX_ATTACHMENTS": "2", "MAX_MESSAGE_BYTES": "100000",
    }, store).start()
    yield s
    s.stop()


def test_limits_attachments_count_and_composed_size(small_stack, smtp):
    one = {"filename": "a.txt", "content": "QUJD"}
    response = small_stack.post_email({"to_email": "h@example.com", "subject": "s", "body": "b",
                                       "attachments": [one, one, one]})
    locations = error_locations(response)
    assert "MAX_ATTACHMENTS" in locations[("body", "attachments")]

    # 70,000 bytes are about 95,000 composed (and 2,048 kept for a DKIM signature): under
    # 100,000. 75,000 are over.
    fits = small_stack.post_email({"to_email": "h@example.com", "subject": "s", "body": "b",
                                   "attachments": [{"filename": "a.bin", "content": b64(os.urandom(70_000))}]})
    assert fits.status_code == 200, fits.text
    too_big = small_stack.post_email({"to_email": "h@example.com", "subject": "s", "body": "b",
                                      "attachments": [{"filename": "a.bin", "content": b64(os.urandom(75_000))}]})
    assert too_big.status_code == 413, too_big.text
    assert "MAX_MESSAGE_BYTES" in too_big.json()["detail"] and "100000" in too_big.json()["detail"]
    assert "DKIM" in too_big.json()["detail"]
    # A body past MAX_BODY_BYTES (which follows from MAX_MESSAGE_BYTES) is refused by nginx.
    huge = small_stack.post_email({"to_email": "h@example.com", "subject": "s", "body": "b",
                                   "attachments": [{"filename": "a.bin", "content": b64(os.urandom(1_200_000))}]})
    assert huge.status_code == 413
    message = parse(smtp.wait_for(1)[0].data)
    assert len(smtp.messages[0].data) <= 100_000
    assert list(message.iter_attachments())[0].get_payload(decode=True).__len__() == 70_000
    assert small_stack.counts()["waiting"] == 0


def test_batch_items_carry_attachments_and_the_size_limit(small_stack, smtp):
    items = [{"to_email": f"u{i}@example.com", "subject": "s", "body": "b",
              "attachments": [{"filename": f"f{i}.bin", "content": b64(bytes([i]) * 1000)}]} for i in range(3)]
    response = small_stack.request("POST", "/emails/batch", json=items)
    assert response.status_code == 200, response.text
    received = sorted(smtp.wait_for(3), key=lambda r: r.rcpt_tos[0])
    for i, r in enumerate(received):
        assert list(parse(r.data).iter_attachments())[0].get_payload(decode=True) == bytes([i]) * 1000
    items[1]["attachments"][0]["content"] = b64(os.urandom(80_000))
    refused = small_stack.request("POST", "/emails/batch", json=items)
    assert refused.status_code == 413 and "Email 1" in refused.json()["detail"]


def test_the_stored_email_keeps_the_attachments_until_sent(stack, smtp):
    response = stack.post_email({
        "to_email": "i@example.com", "subject": "Later", "body": "b", "send_at": "2099-01-01T00:00:00Z",
        "attachments": [{"filename": "later.pdf", "content": b64(PDF)}],
    })
    assert response.status_code == 422  # beyond MAX_SCHEDULE_DAYS
    from datetime import datetime, timedelta, timezone
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    response = stack.post_email({
        "to_email": "i@example.com", "subject": "Later", "body": "b", "send_at": later,
        "attachments": [{"filename": "later.pdf", "content": b64(PDF)}],
        "headers": {"X-Campaign": "winter"},
    })
    assert response.status_code == 200, response.text
    assert stack.counts()["waiting"] == 1
    stored = stack.record(response.json()["request_id"])["email"]
    assert stored["attachments"] == [{"filename": "later.pdf", "content_type": "application/pdf",
                                      "content": b64(PDF)}]
    assert stored["headers"] == [{"name": "X-Campaign", "value": "winter"}]


def test_custom_headers_arrive_and_list_unsubscribe_is_one_click(stack, smtp):
    response = stack.post_email({
        "to_email": "j@example.com", "subject": "Newsletter", "body": "Hello",
        "headers": {
            "List-Unsubscribe": "<https://example.org/unsub?u=j%40example.com&t=abc>, <mailto:unsub@example.org?subject=unsubscribe>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "X-Entity-Ref-ID": "order-1234",
            "X-Note": "Grüße — ünïcödé",
            "In-Reply-To": "<earlier@example.org>",
        },
    })
    assert response.status_code == 200, response.text
    message = parse(smtp.wait_for(1)[0].data)
    assert message["List-Unsubscribe"] == (
        "<https://example.org/unsub?u=j%40example.com&t=abc>, <mailto:unsub@example.org?subject=unsubscribe>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-Entity-Ref-ID"] == "order-1234"
    assert message["X-Note"] == "Grüße — ünïcödé"
    assert message["In-Reply-To"] == "<earlier@example.org>"
    assert len(message.get_all("From")) == 1


@pytest.mark.parametrize("headers,name,words", [
    ({"From": "evil@example.com"}, "From", "cannot be set"),
    ({"bcc": "x@example.com"}, "bcc", "cannot be set"),
    ({"Content-Type": "text/html"}, "Content-Type", "cannot be set"),
    ({"Content-Disposition": "inline"}, "Content-Disposition", "cannot be set"),
    ({"DKIM-Signature": "v=1"}, "DKIM-Signature", "cannot be set"),
    ({"Message-ID": "<x@y>"}, "Message-ID", "cannot be set"),
    ({"Return-Path": "<x@y>"}, "Return-Path", "cannot be set"),
    ({"Received": "from x"}, "Received", "cannot be set"),
    ({"MIME-Version": "1.0"}, "MIME-Version", "cannot be set"),
    ({"X Bad": "v"}, "X Bad", "field-name"),
    ({"X:Bad": "v"}, "X:Bad", "field-name"),
    ({"X-Ünï": "v"}, "X-Ünï", "field-name"),
    ({"X-Inject": "v\r\nBcc: victim@example.com"}, "X-Inject", "control"),
    ({"X-Num": 5}, "X-Num", "string"),
    ({"List-Unsubscribe": "https://example.org/u"}, "List-Unsubscribe", "angle brackets"),
    ({"List-Unsubscribe": "<http://example.org/u>"}, "List-Unsubscribe", "https: or mailto:"),
    ({"List-Unsubscribe": "<javascript:alert(1)>"}, "List-Unsubscribe", "https: or mailto:"),
    ({"List-Unsubscribe": "<mailto:>"}, "List-Unsubscribe", "no address"),
    ({"List-Unsubscribe-Post": "yes"}, "List-Unsubscribe-Post", "One-Click"),
    ({"List-Unsubscribe": "<https://example.org/u/" + "a" * 2000 + ">"}, "List-Unsubscribe", "longer than 900"),
])
def test_bad_custom_headers_are_refused_by_name(stack, smtp, headers, name, words):
    locations = error_locations(stack.post_email({"to_email": "k@example.com", "subject": "s", "body": "b",
                                                  "headers": headers}))
    assert list(locations) == [("body", "headers", name)], locations
    assert words.lower() in locations[("body", "headers", name)].lower()
    assert stack.counts()["waiting"] == 0


def test_header_sets_that_cannot_go_together(stack, smtp):
    post_only = {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                 "List-Unsubscribe": "<mailto:u@example.org>"}
    locations = error_locations(stack.post_email({"to_email": "k@example.com", "subject": "s", "body": "b",
                                                  "headers": post_only}))
    assert "https" in locations[("body", "headers")]
    twice = {"X-Tag": "a", "x-tag": "b"}
    locations = error_locations(stack.post_email({"to_email": "k@example.com", "subject": "s", "body": "b",
                                                  "headers": twice}))
    assert "twice" in locations[("body", "headers")]
    assert stack.counts()["waiting"] == 0


@pytest.mark.file_store("edits the queue file by hand, then restarts mailworkerd")
@pytest.mark.parametrize("change", [
    {"headers": [{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}]},
    {"headers": [{"name": "List-Unsubscribe-Post", "value": "List-Unsubscribe=One-Click"}]},
    {"headers": [{"name": f"X-H{i}", "value": "v"} for i in range(60)]},
    {"attachments": [{"filename": "a.txt", "content_type": "text/plain\u00a0", "content": "QUJD"}]},
    {"attachments": [{"filename": "a/\u0301b.txt", "content_type": "text/plain", "content": "QUJD"}]},
    {"message_id": "<\u00e9@example.org>"},
])
def test_a_hand_edited_queue_file_is_set_aside_not_sent(stack, smtp, change):
    """The worker checks again what the API checked: an edited queue file cannot smuggle it in."""
    from datetime import datetime, timedelta, timezone
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    assert stack.post_email({"to_email": "y@example.com", "subject": "s", "body": "b", "send_at": later}).status_code == 200
    [name] = stack.files("queue")
    stack.stop_daemon("mailworkerd")  # its index holds the send_at; a restart reads the edit
    path = stack.data / "queue" / name
    stored = json.loads(path.read_text())
    stored.update(change, send_at=None, next_attempt_at=None)
    temp = stack.data / "queue" / ".edit.tmp"
    temp.write_text(json.dumps(stored))
    temp.rename(path)
    stack.start_daemon("mailworkerd")
    wait_until(lambda: stack.files("corrupt"), timeout=15, what="the entry set aside")
    assert smtp.messages == []
