"""DKIM signatures made by mailworkerd, verified by two independent verifiers given the public
key: dkimpy (PyPI) and OpenDKIM's own library (`opendkim -t` with TestPublicKeys, Debian)."""
import base64
import os
import re
import subprocess
import time

import dkim
import pytest

from stack import BIN_DIR, ROOT, Stack, wait_until

KEYGEN = ROOT / "scripts" / "dkim-keygen.sh"


def make_key(directory, selector, kind):
    """A key pair from the project's own script: (private key path, TXT record text)."""
    printed = subprocess.run([KEYGEN, "example.org", selector, kind, directory], check=True,
                             capture_output=True, text=True).stdout
    # `sel._domainkey.example.org. IN TXT ( "v=DKIM1; ..." "..." )`: the strings joined.
    record = "".join(re.findall(r'"([^"]*)"', printed))
    return directory / f"{selector}.private", record


class Verifiers:
    """The published records, as both verifiers read them."""

    def __init__(self, directory):
        self.directory = directory
        self.records = {}

    def publish(self, selector, record):
        self.records[f"{selector}._domainkey.example.org"] = record

    def dkimpy(self, raw: bytes) -> bool:
        def dns(name, timeout=5):
            return self.records.get(name.decode().rstrip("."), "").encode() or None
        return dkim.verify(raw, dnsfunc=dns)

    def opendkim(self, raw: bytes) -> bool:
        keys = self.directory / "opendkim-keys.txt"
        keys.write_text("".join(f"{name} {record}\n" for name, record in self.records.items()))
        conf = self.directory / "opendkim.conf"
        conf.write_text(f"Mode v\nSyslog no\nTestPublicKeys {keys}\n")
        message = self.directory / "message.eml"
        message.write_bytes(raw)
        result = subprocess.run(["opendkim", "-x", conf, "-t", message], capture_output=True, text=True,
                                timeout=30)
        out = result.stdout + result.stderr
        assert result.returncode == 0, out
        return "verification (" in out and "succeeded" in out

    def both(self, raw: bytes):
        return self.dkimpy(raw), self.opendkim(raw)


def dkim_stack(tmp_path, smtp, store, key, selector, **extra):
    return Stack(tmp_path, {
        "SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
        "DKIM_DOMAIN": "example.org", "DKIM_SELECTOR": selector, "DKIM_PRIVATE_KEY_FILE": str(key),
        **extra,
    }, store).start()


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20

MESSAGES = [
    {"to_email": "alice@example.com", "subject": "Your code", "body": "Code: 123456\n"},
    {"to_email": "Bob Müller <bob@example.com>", "cc": ["carol@example.com"], "reply_to": "help@example.org",
     "subject": "Grüße — 東京 🎉 " + "long subject words " * 8, "body": "Zeile 1  \n\n\n  trailing spaces   \n\n",
     "format": "multipart", "priority": 1},
    {"to_email": "dan@example.com", "subject": "Invoice", "format": "html",
     "body": '<p>Invoice <img src="cid:logo@example.org"></p>',
     "attachments": [{"filename": "logo.png", "content": base64.b64encode(PNG).decode(),
                      "content_id": "logo@example.org"},
                     {"filename": "Rechnung März.pdf", "content": base64.b64encode(os.urandom(5000)).decode()}],
     "headers": {"List-Unsubscribe": "<https://example.org/u/1>, <mailto:u@example.org>",
                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click", "X-Entity-Ref-ID": "inv-1"}},
    {"template_name": "welcome", "to_email": "erin@example.com",
     "template_vars": {"name": "Erin", "app_name": "Acme", "username": "Erin", "email": "erin@example.com", "signup_date": "today"}},
]


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_every_message_verifies_with_both_verifiers(tmp_path, smtp, store, kind):
    key, record = make_key(tmp_path / "keys", "sel1", kind)
    verifiers = Verifiers(tmp_path)
    verifiers.publish("sel1", record)
    stack = dkim_stack(tmp_path, smtp, store, key, "sel1")
    try:
        started = int(time.time())
        for payload in MESSAGES:
            response = stack.post_email(payload)
            assert response.status_code == 200, response.text
        received = smtp.wait_for(len(MESSAGES))
        for message in received:
            assert verifiers.both(message.data) == (True, True), message.data[:2000]
            header = message.data.split(b"\r\n\r\n")[0].decode()
            signature = re.search(r"DKIM-Signature: (.*?)\r\n(?! )", header + "\r\n", re.S).group(1)
            tags = dict(t.strip().split("=", 1) for t in re.sub(r"\r\n\s", "", signature).split(";") if t.strip())
            assert tags["a"] == f"{kind}-sha256" and tags["c"] == "relaxed/relaxed"
            assert tags["d"] == "example.org" and tags["s"] == "sel1"
            assert started - 5 <= int(tags["t"]) <= time.time() + 5
            names = tags["h"].replace(" ", "").split(":")
            assert names.count("from") == 2  # over-signed: a From added later breaks it
            for name in ("to", "subject", "date", "message-id", "mime-version", "content-type"):
                assert name in names
            if b"List-Unsubscribe-Post" in message.data:
                assert "list-unsubscribe" in names and "list-unsubscribe-post" in names
            if b"\r\nCc: " in message.data:
                assert "cc" in names and "reply-to" in names
            assert all(len(line) <= 78 for line in header.split("\r\n") if line.startswith((" ", "DKIM")))
        assert f"algorithm={kind}-sha256" in stack.log("mailworkerd")
    finally:
        stack.stop()


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_one_changed_byte_breaks_the_signature(tmp_path, smtp, store, kind):
    key, record = make_key(tmp_path / "keys", "sel1", kind)
    verifiers = Verifiers(tmp_path)
    verifiers.publish("sel1", record)
    stack = dkim_stack(tmp_path, smtp, store, key, "sel1")
    try:
        assert stack.post_email(MESSAGES[2]).status_code == 200
        raw = smtp.wait_for(1)[0].data
    finally:
        stack.stop()
    assert verifiers.both(raw) == (True, True)
    tampered = {
        "subject": raw.replace(b"Subject: Invoice", b"Subject: Invoicf"),
        "list-unsubscribe": raw.replace(b"example.org/u/1", b"example.org/u/2"),
        "body": raw.replace(b"<p>Invoice", b"<p>Invoicf"),
        "attachment": raw[:-200] + bytes([raw[-200] ^ 0x01]) + raw[-199:],
        "second From": b"From: attacker@example.net\r\n" + raw,
    }
    for what, changed in tampered.items():
        assert changed != raw, what
        assert verifiers.both(changed) == (False, False), what
    # Relaxed canonicalization: re-folding a header and trailing white space do not matter.
    refolded = raw.replace(b"\r\nSubject: Invoice", b"\r\nSubject:   Invoice  ")
    assert verifiers.both(refolded) == (True, True)


def test_rotated_selector_signs_with_the_new_key(tmp_path, smtp, store):
    old_key, old_record = make_key(tmp_path / "keys", "2026a", "rsa")
    new_key, new_record = make_key(tmp_path / "keys", "2026b", "ed25519")
    verifiers = Verifiers(tmp_path)
    verifiers.publish("2026a", old_record)
    stack = dkim_stack(tmp_path / "one", smtp, store, old_key, "2026a")
    try:
        assert stack.post_email(MESSAGES[0]).status_code == 200
        before = smtp.wait_for(1)[0].data
    finally:
        stack.stop()
    stack = dkim_stack(tmp_path / "two", smtp, store, new_key, "2026b")
    try:
        assert stack.post_email(MESSAGES[0]).status_code == 200
        after = smtp.wait_for(2)[1].data
    finally:
        stack.stop()
    assert b"s=2026a" in before and b"s=2026b" in after
    # Before the new record is published the new mail does not verify; after, both do.
    assert verifiers.both(after) == (False, False)
    verifiers.publish("2026b", new_record)
    assert verifiers.both(before) == (True, True)
    assert verifiers.both(after) == (True, True)


def test_without_dkim_settings_nothing_is_signed(stack, smtp):
    assert stack.post_email(MESSAGES[0]).status_code == 200
    assert b"DKIM-Signature" not in smtp.wait_for(1)[0].data


def check_config(tmp_path, **settings):
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "SENDER_EMAIL": "dispatch@example.org", **settings}
    return subprocess.run([BIN_DIR / "mailworkerd", "--check-config"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=30)


def test_check_config_refuses_each_bad_dkim_setting_by_name(tmp_path):
    keys = tmp_path / "keys"
    good, _ = make_key(keys, "good", "ed25519")
    short = keys / "short.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", short],
                   check=True, capture_output=True)
    ec = keys / "ec.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ec],
                   check=True, capture_output=True)
    public = keys / "public.pem"
    subprocess.run(["openssl", "pkey", "-in", good, "-pubout", "-out", public], check=True, capture_output=True)
    encrypted = keys / "encrypted.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519", "-aes256", "-pass", "pass:secret",
                    "-out", encrypted], check=True, capture_output=True)
    unreadable = keys / "nope.pem"
    base = {"DKIM_DOMAIN": "example.org", "DKIM_SELECTOR": "s1", "DKIM_PRIVATE_KEY_FILE": str(good)}
    assert check_config(tmp_path, **base).returncode == 0
    cases = [
        ({"DKIM_PRIVATE_KEY_FILE": str(short)}, "DKIM_PRIVATE_KEY_FILE", "1024-bit"),
        ({"DKIM_PRIVATE_KEY_FILE": str(ec)}, "DKIM_PRIVATE_KEY_FILE", "neither an RSA nor an Ed25519"),
        ({"DKIM_PRIVATE_KEY_FILE": str(public)}, "DKIM_PRIVATE_KEY_FILE", "cannot read a PEM private key"),
        ({"DKIM_PRIVATE_KEY_FILE": str(unreadable)}, "DKIM_PRIVATE_KEY_FILE", "No such file"),
        # Never a pass-phrase prompt (which would hang a daemon with a terminal): refused by name.
        ({"DKIM_PRIVATE_KEY_FILE": str(encrypted)}, "DKIM_PRIVATE_KEY_FILE", "the key is encrypted"),
        ({"DKIM_DOMAIN": "other.example"}, "DKIM_DOMAIN", "not aligned"),
        ({"DKIM_DOMAIN": "bad domain"}, "DKIM_DOMAIN", "not a domain name"),
        ({"DKIM_SELECTOR": "s 1"}, "DKIM_SELECTOR", "not a selector"),
    ]
    for change, variable, words in cases:
        result = check_config(tmp_path, **{**base, **change})
        assert result.returncode != 0, change
        assert f"{variable}:" in result.stderr and words in result.stderr, result.stderr
    for missing in base:
        partial = {k: v for k, v in base.items() if k != missing}
        result = check_config(tmp_path, **partial)
        assert result.returncode != 0 and f"{missing}: required" in result.stderr, result.stderr
    # A parent of the sender's domain is aligned (DMARC relaxed alignment).
    assert check_config(tmp_path, **base, SENDER_EMAIL="noreply@mail.example.org").returncode == 0


def test_mailfcgi_never_reads_the_dkim_settings(tmp_path):
    keys = tmp_path / "keys"
    key, _ = make_key(keys, "s1", "rsa")
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "DKIM_DOMAIN": "wrong", "DKIM_SELECTOR": "s1",
           "DKIM_PRIVATE_KEY_FILE": str(key)}
    result = subprocess.run([BIN_DIR / "mailfcgi", "--check-config"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=30)
    # Not read (a wrong DKIM_DOMAIN is not even checked), and its presence is warned about.
    assert result.returncode == 0, result.stderr
    assert "DKIM_PRIVATE_KEY_FILE" in result.stderr and "only mailworkerd" in result.stderr
