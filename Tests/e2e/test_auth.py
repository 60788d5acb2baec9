"""nginx authenticates; an unauthenticated request never reaches the queue."""


def test_request_without_credentials_gets_401_and_no_queue_file(stack, smtp):
    response = stack.post_email({"to_email": "a@example.com", "subject": "s", "body": "b"}, auth=None)
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    counts = stack.counts()
    assert counts["waiting"] == counts["processing"] == counts["trash"] == 0
    assert smtp.messages == []


def test_wrong_password_gets_401(stack):
    response = stack.post_email({"to_email": "a@example.com", "subject": "s", "body": "b"},
                                auth=("demo", "not-the-password"))
    assert response.status_code == 401
    assert stack.counts()["waiting"] == 0


def test_client_cannot_forge_remote_user(stack):
    # A header named like the FastCGI parameter arrives as HTTP_REMOTE_USER, not REMOTE_USER.
    stack.stop_daemon("mailworkerd")
    response = stack.post_email({"to_email": "a@example.com", "subject": "s", "body": "b"},
                                headers={"Remote-User": "mallory"})
    assert response.status_code == 200
    assert stack.counts()["waiting"] == 1
    assert stack.record(response.json()["request_id"])["email"]["submitted_by"] == "demo"


def test_health_is_open_to_local_probes_without_a_password(stack):
    response = stack.request("GET", "/health", auth=None)
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


def test_plain_http_to_the_https_port_gets_a_json_400(stack):
    import requests
    response = requests.get(f"http://127.0.0.1:{stack.port}/health", timeout=5)
    assert response.status_code == 400
    assert "HTTPS" in response.json()["detail"]
