"""Templates through the API, judged by an independent Mustache renderer (pystache) and
Python's email parser."""
import html
import json

import pystache
import pytest

from stack import ROOT
from test_delivery import parse

DEFAULTS = {
    "verify": {"code": "123456", "app_name": "MyApp", "expiry_minutes": 30},
    "welcome": {"name": "John Doe", "username": "johndoe", "email": "john@example.com",
                "signup_date": "2026-05-04", "app_name": "MyApp"},
    "password_reset": {"name": "John Doe", "app_name": "MyApp", "reset_code": "ABC123", "expiry_hours": 24},
    "notification": {"title": "System Maintenance", "app_name": "MyApp",
                     "message": "Our system will undergo maintenance on Saturday from 2-4 AM UTC."},
}
ALPHABETS = {
    "ascii": "Plain Text",
    "accented": "Élodie Müller-Ørsted, façade",
    "cjk": "山田太郎 김민준",
    "emoji": "Party 🎉👩‍💻",
}


def expected(name, variables):
    """What the template should render to: pystache over the repository's template files,
    numbers and booleans written as their JSON text, no escaping outside HTML."""
    values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in variables.items()}
    text_source = (ROOT / "templates" / f"{name}.txt").read_text()
    subject_source, body_source = text_source.split("\n", 1)
    plain = pystache.Renderer(escape=lambda s: s, missing_tags="strict")
    rich = pystache.Renderer(escape=lambda s: html.escape(s, quote=True).replace("&#x27;", "&#39;"),
                             missing_tags="strict")
    return (plain.render(subject_source.strip(), values), plain.render(body_source, values),
            rich.render((ROOT / "templates" / f"{name}.html").read_text(), values))


def parts(message):
    text = message.get_body(preferencelist=("plain",)).get_content()
    rich = message.get_body(preferencelist=("html",)).get_content()
    return text, rich


@pytest.mark.parametrize("alphabet", ALPHABETS)
@pytest.mark.parametrize("name", DEFAULTS)
def test_default_template_renders_exactly(stack, smtp, name, alphabet):
    variables = {k: (f"{ALPHABETS[alphabet]} {v}" if isinstance(v, str) else v) for k, v in DEFAULTS[name].items()}
    response = stack.post_email({"to_email": "user@example.com", "template_name": name, "template_vars": variables})
    assert response.status_code == 200, response.text
    message = parse(smtp.wait_for(1)[0].data)
    subject, text, rich = expected(name, variables)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Subject"] == subject
    assert parts(message) == (text, rich)


def test_script_is_escaped_in_html_and_verbatim_in_text(stack, smtp):
    attack = "<script>alert(1)</script>"
    response = stack.post_email({"to_email": "u@example.com", "template_name": "notification",
                                 "template_vars": {"title": "Hi", "message": attack, "app_name": "A&B"}})
    assert response.status_code == 200, response.text
    text, rich = parts(parse(smtp.wait_for(1)[0].data))
    assert attack in text and "A&B" in text
    assert attack not in rich
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rich and "A&amp;B" in rich


def test_subject_is_not_html_escaped(stack, smtp):
    response = stack.post_email({"to_email": "u@example.com", "template_name": "notification",
                                 "template_vars": {"title": "Tom & Jerry <3", "message": "m", "app_name": "A"}})
    assert response.status_code == 200
    assert parse(smtp.wait_for(1)[0].data)["Subject"] == "Tom & Jerry <3"


def test_subject_and_body_may_be_left_out_or_sent_along(stack, smtp):
    # The seed's clients send subject and body to pass its validation; the template wins.
    response = stack.post_email({"to_email": "u@example.com", "subject": "ignored", "body": "ignored",
                                 "template_name": "verify", "template_vars": DEFAULTS["verify"]})
    assert response.status_code == 200
    assert parse(smtp.wait_for(1)[0].data)["Subject"] == "Your MyApp verification code: 123456"


def test_missing_variables_are_400_naming_every_one_and_nothing_is_queued(stack):
    response = stack.post_email({"to_email": "u@example.com", "template_name": "welcome",
                                 "template_vars": {"name": "X"}})
    assert response.status_code == 400
    detail = response.json()["detail"]
    for missing in ("app_name", "username", "email", "signup_date"):
        assert missing in detail
    assert "name," not in detail.split(":")[-1].split()  # given, so not listed
    assert stack.counts()["waiting"] == 0


def test_unknown_template_is_400_listing_the_available_ones(stack):
    response = stack.post_email({"to_email": "u@example.com", "template_name": "nope", "template_vars": {}})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "nope" in detail
    for name in DEFAULTS:
        assert name in detail
    assert stack.counts()["waiting"] == 0


@pytest.mark.parametrize("name", ["../etc/passwd", "_partial", "a b", ""])
def test_template_name_that_is_no_name_is_422(stack, name):
    response = stack.post_email({"to_email": "u@example.com", "template_name": name})
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "template_name"]]


def test_numbers_and_booleans_render_as_json_text_and_sections_work(stack, smtp):
    templates = stack.base / "templates"
    (templates / "order.txt").write_text(
        "Order {{number}} {{#paid}}paid{{/paid}}{{^paid}}unpaid{{/paid}}\n"
        "{{#items}}- {{name}} x{{qty}} at {{price}}\n{{/items}}{{> _footer}}\n")
    (templates / "_footer.txt").write_text("Flag: {{flag}}")
    variables = {"number": 42, "paid": False, "items": [{"name": "Tea", "qty": 2, "price": 2.5}],
                 "flag": True}
    response = stack.post_email({"to_email": "u@example.com", "template_name": "order", "template_vars": variables})
    assert response.status_code == 200, response.text
    message = parse(smtp.wait_for(1)[0].data)
    assert message["Subject"] == "Order 42 unpaid"
    assert message.get_content_type() == "text/plain"
    assert message.get_content() == "- Tea x2 at 2.5\nFlag: true\n"
    # The partial's variable is required too.
    variables.pop("flag")
    response = stack.post_email({"to_email": "u@example.com", "template_name": "order", "template_vars": variables})
    assert response.status_code == 400 and "flag" in response.json()["detail"]


def test_edited_and_new_templates_are_used_without_a_restart(stack, smtp):
    templates = stack.base / "templates"
    (templates / "notification.txt").write_text("Changed: {{title}}\nBody {{message}}\n")
    (templates / "notification.html").unlink()  # now a text-only template
    response = stack.post_email({"to_email": "u@example.com", "template_name": "notification",
                                 "template_vars": {"title": "T", "message": "M"}})
    assert response.status_code == 200, response.text
    message = parse(smtp.wait_for(1)[0].data)
    assert message["Subject"] == "Changed: T"
    assert message.get_content_type() == "text/plain" and message.get_content() == "Body M\n"
    manifest = json.loads((templates / "manifest.json").read_text())
    entry = next(t for t in manifest["templates"] if t["name"] == "notification")
    assert entry["placeholders"] == ["title", "message"]
    listed = stack.request("GET", "/templates?detailed=true").json()
    entries = listed["manifest"]["templates"]
    assert next(t for t in entries if t["name"] == "notification")["placeholders"] == ["title", "message"]


def test_broken_template_is_reported_not_crashing(stack):
    (stack.base / "templates" / "broken.txt").write_text("Subject {{#open}}\nno close\n")
    response = stack.post_email({"to_email": "u@example.com", "template_name": "broken", "template_vars": {"open": 1}})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "broken.txt line 3" in detail and "not closed" in detail and "ParserError" not in detail
    health = stack.request("GET", "/health")
    assert health.status_code == 503
    assert "broken" in health.json()["components"]["template_engine"]


def test_templates_listing(stack):
    names = stack.request("GET", "/templates").json()
    assert names == {"templates": sorted(DEFAULTS), "count": 4}
    detailed = stack.request("GET", "/templates?detailed=true").json()
    # As the Python service: `templates` stays the names, `manifest` holds the entries.
    assert detailed["templates"] == sorted(DEFAULTS) and detailed["count"] == 4
    manifest = detailed["manifest"]
    assert manifest["total_templates"] == 4 and manifest["generated_at"]
    verify = next(t for t in manifest["templates"] if t["name"] == "verify")
    assert verify["file_path"].endswith("/verify.txt") and verify["html_file_path"].endswith("/verify.html")
    assert verify["files"] == {"text": "verify.txt", "html": "verify.html"}
    assert sorted(verify["placeholders"]) == ["app_name", "code", "expiry_minutes"]
    assert verify["description"]
    assert stack.request("GET", "/templates?detailed=maybe").status_code == 422


def test_partials_that_include_themselves_are_refused_not_crashing(stack):
    templates = stack.base / "templates"
    (templates / "tree.txt").write_text("Tree for {{name}}\n{{> _node}}\n")
    (templates / "_node.txt").write_text("* {{name}}\n{{#children}}{{> _node}}{{/children}}")
    response = stack.post_email({"to_email": "u@example.com", "template_name": "tree",
                                 "template_vars": {"name": "root", "children": [{"name": "leaf"}]}})
    assert response.status_code == 400
    assert "include themselves" in response.json()["detail"]
    health = stack.request("GET", "/health")
    assert health.status_code == 503 and "tree" in health.json()["components"]["template_engine"]
    assert stack.request("GET", "/templates").status_code == 200  # still answering


def test_crlf_templates_work_and_huge_or_special_files_are_refused(stack, smtp):
    import os
    templates = stack.base / "templates"
    (templates / "crlf.txt").write_bytes(b"Hello {{who}}\r\nBody line\r\n")
    (templates / "huge.txt").write_text("Subject\n" + "x" * 300_000)
    os.mkfifo(templates / "pipe.txt")
    response = stack.post_email({"to_email": "u@example.com", "template_name": "crlf", "template_vars": {"who": "you"}})
    assert response.status_code == 200, response.text
    assert parse(smtp.wait_for(1)[0].data)["Subject"] == "Hello you"
    huge = stack.post_email({"to_email": "u@example.com", "template_name": "huge", "template_vars": {}})
    assert huge.status_code == 400 and "KiB" in huge.json()["detail"]
    assert stack.request("GET", "/templates").json()["count"] == 5  # defaults + crlf


def test_template_subject_gets_the_raw_subject_checks(stack):
    for title in ("a\u2028Bcc: evil@example.com", "a\u0085b", "x" * 16_400):
        response = stack.post_email({"to_email": "u@example.com", "template_name": "notification",
                                     "template_vars": {"title": title, "message": "m", "app_name": "A"}})
        assert response.status_code == 400, title
    assert stack.counts()["waiting"] == 0
