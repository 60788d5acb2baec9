"""nginx's rate limit per authenticated user: 429 with Retry-After and a JSON body."""
import pytest
import requests

from stack import Stack
from test_email_lifecycle import add_user

# 20 requests must take well under a second against 2 a second: one at a time.
pytestmark = pytest.mark.serial


@pytest.fixture
def limited(tmp_path, store):
    """The stack with 2 requests a second per user and a burst of 3."""
    s = Stack(tmp_path, {"WORKER_POLLING_INTERVAL": "5", "MAIL_RATE_LIMIT": "2", "MAIL_RATE_BURST": "3"}, store).start()
    yield s
    s.stop()


def test_a_user_over_the_limit_gets_429_with_retry_after_and_json(limited):
    session = requests.Session()  # one kept connection: the 20 requests take well under a second
    session.auth = ("demo", limited.password)
    answers = [session.get(limited.url("/templates"), verify=limited.cert, timeout=10) for _ in range(20)]
    codes = [a.status_code for a in answers]
    assert codes[:4] == [200] * 4, codes  # the rate's first request, then the burst of 3
    refused = [a for a in answers if a.status_code == 429]
    assert len(refused) >= 10, codes
    for answer in refused:
        assert answer.headers["Retry-After"] == "1"
        assert answer.headers["Content-Type"].startswith("application/json")
        assert "per user" in answer.json()["detail"]


def test_the_limit_is_per_user_and_unauthenticated_requests_are_401(limited):
    add_user(limited, "other", "other-password-1")
    for _ in range(10):
        limited.request("GET", "/templates")
    assert limited.request("GET", "/templates").status_code == 429
    assert limited.request("GET", "/templates", auth=("other", "other-password-1")).status_code == 200
    assert limited.request("GET", "/templates", auth=False).status_code == 401
