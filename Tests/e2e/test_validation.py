"""Bad requests get a clear error naming the field, and leave no file behind."""
import pytest

VALID = {"to_email": "a@example.com", "subject": "s", "body": "b"}


def assert_nothing_written(stack):
    assert stack.files("queue") == []
    assert stack.files("trash") == []
    assert stack.files("dead_letter") == []


@pytest.mark.parametrize("payload, field, error_type", [
    ({"subject": "s", "body": "b"}, "to_email", "missing"),
    ({**VALID, "to_email": "not-an-address"}, "to_email", "value_error"),
    ({**VALID, "to_email": "a@example.com\r\nBcc: victim@example.com"}, "to_email", "value_error"),
    ({**VALID, "subject": "hi\r\nBcc: victim@example.com"}, "subject", "value_error"),
    ({**VALID, "subject": "bell\x07"}, "subject", "value_error"),
    ({**VALID, "subject": 5}, "subject", "string_type"),
    ({"to_email": "a@example.com", "body": "b"}, "subject", "missing"),
    ({"to_email": "a@example.com", "subject": "s"}, "body", "missing"),
    ({**VALID, "priority": 0}, "priority", "greater_than_equal"),
    ({**VALID, "priority": 4}, "priority", "less_than_equal"),
    ({**VALID, "priority": True}, "priority", "int_type"),
    ({**VALID, "priority": 1.5}, "priority", "int_type"),
    ({**VALID, "format": "rtf"}, "format", "enum"),
    ({**VALID, "cc": ["ok@example.com", "bad"]}, "cc", "value_error"),
    ({**VALID, "reply_to": "x"}, "reply_to", "value_error"),
])
def test_invalid_field_is_422_naming_it(stack, payload, field, error_type):
    response = stack.post_email(payload)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(e["loc"][:2] == ["body", field] and e["type"] == error_type and e["msg"] for e in detail), detail
    assert_nothing_written(stack)


def test_every_invalid_field_is_reported_at_once(stack):
    response = stack.post_email({"to_email": "bad", "priority": "high"})
    assert response.status_code == 422
    fields = {tuple(e["loc"]) for e in response.json()["detail"]}
    assert fields == {("body", "to_email"), ("body", "subject"), ("body", "body"), ("body", "priority")}


def test_malformed_json_is_422_json_invalid(stack):
    response = stack.request("POST", "/email", data=b'{"to_email": ', headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert_nothing_written(stack)


def test_json_that_is_not_an_object_is_422(stack):
    response = stack.request("POST", "/email", json=["a"])
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]


def test_non_json_content_type_is_415(stack):
    response = stack.request("POST", "/email", data=b"to_email=a@example.com",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]
    assert_nothing_written(stack)


def test_oversized_body_is_413(stack):
    response = stack.post_email({**VALID, "body": "x" * (2 << 20)})
    assert response.status_code == 413
    assert "detail" in response.json()
    assert_nothing_written(stack)


def test_unknown_route_is_404_and_wrong_method_is_405(stack):
    missing = stack.request("GET", "/nope")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}
    wrong = stack.request("GET", "/email")
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "POST"
