"""LOG_FORMAT=json: both daemons write one JSON object a line (time, level, component,
message, request_id, user, metadata), in their log files and on standard error; a bad value
stops the daemon naming the variable."""
import json
import subprocess
from datetime import datetime

from stack import BIN_DIR, Stack, wait_until


def json_lines(text):
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "no log lines"
    return [json.loads(line) for line in lines]  # every line, or the test fails here


def test_json_logs_from_both_daemons_carry_request_id_and_user(tmp_path, smtp, store):
    stack = Stack(tmp_path, {
        "SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
        "WORKER_POLLING_INTERVAL": "5", "LOG_FORMAT": "json", "LOG_LEVEL": "info",
    }, store).start()
    try:
        response = stack.post_email({"to_email": "alice@example.com", "subject": "Code", "body": "123456"})
        assert response.status_code == 200, response.text
        request_id = response.json()["request_id"]
        smtp.wait_for(1)
        wait_until(lambda: request_id in (tmp_path / "logs" / "mailworkerd.log").read_text(), what="delivery logged")
    finally:
        stack.stop()
    for name in ("mailfcgi", "mailworkerd"):
        events = json_lines((tmp_path / "logs" / f"{name}.log").read_text())
        for event in events:
            assert {"time", "level", "component", "message"} <= event.keys(), event
            assert event["level"] in {"trace", "debug", "info", "notice", "warning", "error", "critical"}
            datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
            assert isinstance(event.get("metadata", {}), dict)
        about = [e for e in events if e.get("request_id") == request_id]
        assert about, f"{name} logged nothing with request_id {request_id}"
        if name == "mailfcgi":
            assert any(e.get("user") == "demo" for e in about), about
        # standard error carries the same shape (the stack captures it)
        json_lines(stack.log(name))


def test_unknown_log_format_stops_the_daemon_naming_it(tmp_path, store):
    stack = Stack(tmp_path, {"LOG_FORMAT": "xml"}, store)
    for name in ("mailfcgi", "mailworkerd"):
        result = subprocess.run([BIN_DIR / name], env=stack.env, cwd=tmp_path, capture_output=True,
                                text=True, timeout=30)
        assert result.returncode != 0
        assert "LOG_FORMAT" in result.stderr and "xml" in result.stderr, result.stderr
