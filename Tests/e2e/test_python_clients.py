"""A client of the Python service, pointed at this one: the routes and fields it reads."""
import requests


def test_root_describes_the_service_and_is_a_readiness_probe(stack):
    for auth in (False, True):  # open from this host, as a probe needs; fine with the password too
        r = stack.request("GET", "/", auth=auth)
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {"name", "version", "description", "endpoints", "documentation"}
        assert body["documentation"] == "/docs"
        assert body["version"] == stack.request("GET", "/openapi.json").json()["info"]["version"]
        assert "POST /email" in body["endpoints"] and all(isinstance(v, str) for v in body["endpoints"].values())


def test_status_answers_the_python_fields_first(stack):
    stack.stop_daemon("mailworkerd")
    ids = [stack.post_email({"to_email": f"u{n}@example.com", "subject": "s", "body": "b"}).json()["request_id"]
           for n in range(3)]
    body = stack.request("GET", "/status").json()
    # (Members are sorted, as in every answer: JSON objects have no order, RFC 8259 §4.)
    assert body["total_batches"] == 3 and body["total_emails"] == 3 and body["batch_size"] == 1
    assert len(body["batches"]) == 3
    for batch in body["batches"]:
        assert set(batch) == {"batch_id", "email_count", "status", "created_at"}
        assert batch["batch_id"].startswith("batch_") and "." not in batch["batch_id"]
        assert batch["email_count"] == 1 and batch["status"] == "pending" and batch["created_at"]
    assert {f["request_id"] for f in body["files"]} == set(ids)  # what we answered before stays


def test_health_names_its_components_as_the_python_service(stack):
    components = stack.request("GET", "/health", auth=False).json()["components"]
    assert {"queue_manager", "template_engine", "email_sender"} <= set(components)
    assert components["queue_manager"] == components["template_engine"] == components["email_sender"] == "healthy"


def test_input_the_python_service_accepts_is_accepted_and_converted(stack, smtp):
    from email import policy
    import email as email_parser
    cases = [({"priority": "1"}, "1"), ({"priority": True}, "1"), ({"priority": 3.0}, "5"), ({"priority": "3.0"}, "5"),
             ({"format": "HTML", "body": "<p>hi</p>"}, None)]
    for extra, x_priority in cases:
        r = stack.post_email({"to_email": "u@example.com", "subject": "s", "body": "b", **extra})
        assert r.status_code == 200, (extra, r.text)
    messages = smtp.wait_for(len(cases))
    parsed = [email_parser.message_from_bytes(m.data, policy=policy.default) for m in messages]
    priorities = sorted(str(m["X-Priority"])[0] for m in parsed if m["X-Priority"])
    assert priorities == ["1", "1", "5", "5"]
    assert any(m.get_content_type() == "text/html" for m in parsed)


def test_name_addr_addresses_put_the_name_in_the_header_and_the_address_in_the_envelope(stack, smtp):
    from email import policy
    import email as email_parser
    r = stack.post_email({"to_email": "  John Doe <john@example.com> ", "subject": "s", "body": "b",
                          "cc": ["\"Doe, Jane\" <jane@example.com>", "Zoë Ünïcode <zoe@example.com>"],
                          "bcc": ["Secret Person <secret@example.com>"], "reply_to": "Help Desk <help@example.com>"})
    assert r.status_code == 200, r.text
    (received,) = smtp.wait_for(1)
    assert sorted(received.rcpt_tos) == ["jane@example.com", "john@example.com", "secret@example.com",
                                         "zoe@example.com"]
    message = email_parser.message_from_bytes(received.data, policy=policy.default)
    assert message["To"].addresses[0].display_name == "John Doe"
    assert message["To"].addresses[0].addr_spec == "john@example.com"
    cc = {a.addr_spec: a.display_name for a in message["Cc"].addresses}
    assert cc == {"jane@example.com": "Doe, Jane", "zoe@example.com": "Zoë Ünïcode"}
    assert message["Reply-To"].addresses[0].display_name == "Help Desk"
    assert b"Secret" not in received.data and message["Bcc"] is None
    assert b"=?UTF-8?B?" in received.data  # the non-ASCII name as an encoded-word


def test_address_errors_say_what_is_wrong_and_carry_input_and_ctx(stack):
    r = stack.post_email({"to_email": "a@example.com, b@example.com", "subject": "s", "body": "b", "priority": 4})
    assert r.status_code == 422
    detail = {tuple(e["loc"]): e for e in r.json()["detail"]}
    two = detail[("body", "to_email")]
    assert "more than one address" in two["msg"] and two["input"] == "a@example.com, b@example.com"
    assert detail[("body", "priority")]["ctx"] == {"le": 3} and detail[("body", "priority")]["input"] == 4
    missing = stack.post_email({"subject": "s", "body": "b"}).json()["detail"][0]
    assert missing["type"] == "missing" and missing["input"] == {"subject": "s", "body": "b"}


def test_malformed_json_says_where_as_fastapi_does(stack):
    r = stack.request("POST", "/email", data=b'{"to_email": x}', headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["type"] == "json_invalid" and error["loc"] == ["body", 13]  # Python's json says char 13
    assert error["input"] == {} and "error" in error["ctx"] and error["msg"] == "JSON decode error"
    # The offset counts characters, as Python's json does, not UTF-8 bytes.
    wide = stack.request("POST", "/email", data='{"subject": "日本語", x}'.encode(),
                         headers={"Content-Type": "application/json"})
    assert wide.json()["detail"][0]["loc"] == ["body", 19]


def test_templates_detailed_takes_pydantic_booleans(stack):
    for word in ("yes", "on", "t", "1", "true"):
        assert "manifest" in stack.request("GET", f"/templates?detailed={word}").json()
    for word in ("no", "off", "f", "0", "false"):
        assert "manifest" not in stack.request("GET", f"/templates?detailed={word}").json()
    bad = stack.request("GET", "/templates?detailed=maybe").json()["detail"][0]
    assert bad["type"] == "bool_parsing" and bad["input"] == "maybe"


def test_openapi_names_are_those_fastapi_generated_for_the_python_service(stack):
    spec = stack.request("GET", "/openapi.json").json()
    ids = {(path, method): op["operationId"] for path, ops in spec["paths"].items() for method, op in ops.items()}
    assert ids[("/email", "post")] == "send_email_email_post"
    assert ids[("/status", "get")] == "get_status_status_get"
    assert ids[("/health", "get")] == "health_check_health_get"
    assert ids[("/templates", "get")] == "list_templates_templates_get"
    assert ids[("/workers/status", "get")] == "get_workers_status_workers_status_get"
    assert ids[("/process-batch", "post")] == "process_batch_process_batch_post"
    schemas = spec["components"]["schemas"]
    assert {"EmailRequestModel", "EmailResponse", "HTTPValidationError", "ValidationError"} <= set(schemas)
    body = spec["paths"]["/email"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/EmailRequestModel"}
