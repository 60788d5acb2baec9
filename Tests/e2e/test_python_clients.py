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
