"""Quoted-printable at the 76-character limit, judged on delivered messages by Python's email
package: every line of every part at most 76, and the decoded text exactly what was sent."""
import email
from email import policy

from stack import wait_until

PIECES = ["=", " ", "\t", "é", "€", "😀", ".", "F"]


def bodies():
    """A piece of every kind ending at columns 70 to 78, with and without a final newline."""
    for piece in PIECES:
        for column in range(70, 79):
            for final in ("", "\n"):
                yield "a" * (column - 1) + piece + final


def test_every_line_is_at_most_76_and_decodes_back_in_text_and_html(file_stack):
    sent = {}
    for n, body in enumerate(bodies()):
        html = f"<p>{body}</p>" if n % 2 else body
        r = file_stack.post_email({"to_email": "qp@example.com", "subject": f"qp {n}", "body": body,
                                   "html_body": html, "format": "multipart"})
        assert r.status_code == 200, r.text
        sent[r.json()["request_id"]] = (body, html)
    outbox = file_stack.data / "outbox"
    wait_until(lambda: len(list(outbox.glob("*.eml"))) == len(sent), timeout=60, what="every message")
    for request_id, (body, html) in sent.items():
        raw = (outbox / f"{request_id}.eml").read_bytes()
        assert all(len(line) <= 76 for line in raw.split(b"\r\n")[raw.split(b"\r\n").index(b""):]), request_id
        for line in raw.split(b"\r\n"):
            assert not line.startswith(b".") and not line.startswith(b"From "), line
        message = email.message_from_bytes(raw, policy=policy.default)
        text_part, html_part = message.get_payload()
        assert text_part.get_payload(decode=True).decode() .replace("\r\n", "\n") == body
        assert html_part.get_payload(decode=True).decode().replace("\r\n", "\n") == html
