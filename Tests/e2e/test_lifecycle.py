"""Starting and stopping: clean exits, nothing left claimed, `make run`'s script end to end."""
import json
import os

import pytest
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

from stack import BIN_DIR, ROOT, free_port, wait_until


def test_sigterm_stops_daemons_with_status_0_and_no_claim_left(stack, smtp):
    for i in range(20):
        assert stack.post_email({"to_email": f"u{i}@example.com", "subject": "s", "body": "b"}).status_code == 200
    codes = stack.stop()
    assert codes == {"mailfcgi": 0, "mailworkerd": 0, "nginx": 0}
    assert stack.mailctl_json("stats")["counts"]["sending"] == 0
    assert not (stack.socket).exists()


@pytest.mark.file_store("plants a claim as a killed worker leaves it (a queue file renamed into queue/active/)")
def test_claims_left_by_a_killed_worker_are_delivered_after_restart(stack, smtp):
    stack.stop_daemon("mailworkerd")
    # A claim as a crashed worker leaves it: renamed to .processing, never finished.
    assert stack.post_email({"to_email": "a@example.com", "subject": "s", "body": "b"}).status_code == 200
    (name,) = stack.files("queue")
    queue = stack.data / "queue"
    (queue / name).rename(queue / "active" / name.replace(".json", ".processing.json"))
    stack.start_daemon("mailworkerd")
    smtp.wait_for(1)
    wait_until(lambda: stack.files("queue") == [], what="the queue to empty")


@pytest.mark.serial  # the .eml within a second
def test_make_run_script_serves_the_readme_example_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = {**os.environ, "BIN_DIR": str(BIN_DIR), "RUN_DIR": str(tmp_path / "run"),
           "DATA_DIR": str(tmp_path / "data"), "LOG_DIR": str(tmp_path / "logs"), "MAIL_HTTPS_PORT": str(port),
           "MAIL_DEMO_PASSWORD": "readme-pass"}
    env.pop("SMTP_SERVER", None)
    proc = subprocess.Popen([ROOT / "scripts" / "run.sh"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"https://127.0.0.1:{port}/email"

        def answers():
            try:
                return requests.get(f"https://127.0.0.1:{port}/health",
                                    verify=str(tmp_path / "run" / "tls" / "cert.pem"),
                                    auth=("demo", "readme-pass"), timeout=1).status_code == 200
            except (requests.ConnectionError, OSError):
                return False
        wait_until(answers, timeout=20, what="make run's stack")
        # The README's example, as a user types it.
        result = subprocess.run(
            ["curl", "-sS", "--cacert", tmp_path / "run" / "tls" / "cert.pem",
             "-u", "demo:readme-pass", url, "-H", "Content-Type: application/json",
             "-d", '{"to_email": "user@example.com", "subject": "Hello", "body": "It works."}'],
            capture_output=True, text=True, check=True)
        answered = time.monotonic()
        assert '"status":"queued"' in result.stdout, result.stdout
        outbox = tmp_path / "data" / "outbox"
        wait_until(lambda: list(outbox.glob("*.eml")), timeout=5, interval=0.01, what="an .eml")
        assert time.monotonic() - answered < 1.0
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's process group
        output = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert proc.returncode == 0, output
    for name in ("mailfcgi", "mailworkerd", "nginx"):
        leftover = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout
        assert leftover == "", f"{name} still running: {leftover}"
    assert not list((tmp_path / "data" / "queue" / "active").glob("*.processing.json"))


def test_bad_setting_stops_the_daemons_at_start_naming_it(tmp_path):
    for daemon in ("mailfcgi", "mailworkerd"):
        # The relay's settings are mailworkerd's alone (mailfcgi ignores them, with a warning).
        relay = [("SMTP_TLS", "maybe")] if daemon == "mailworkerd" else []
        for variable, value in [("NUM_WORKERS", "many"), ("MAX_BODY_BYTES", "10")] + relay:
            env = {**os.environ, variable: value, "DATA_DIR": str(tmp_path / "data"),
                   "SMTP_SERVER": "127.0.0.1", "SENDER_EMAIL": "a@example.org"}
            result = subprocess.run([BIN_DIR / daemon], cwd=tmp_path, env=env, capture_output=True,
                                    text=True, timeout=30)
            assert result.returncode != 0
            assert variable in result.stderr, result.stderr
    assert not (tmp_path / "data" / "queue").exists() or not list((tmp_path / "data" / "queue").iterdir())


def test_bad_value_in_dotenv_is_refused_too(tmp_path):
    (tmp_path / ".env").write_text("WORKER_POLLING_INTERVAL=soon\n")
    result = subprocess.run([BIN_DIR / "mailworkerd", "--check-config"], cwd=tmp_path,
                            env={**os.environ, "DATA_DIR": str(tmp_path / "data")},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "WORKER_POLLING_INTERVAL" in result.stderr


@pytest.mark.parametrize("daemon", ["mailfcgi", "mailworkerd"])
def test_every_bad_setting_is_named_at_once_and_typos_are_warned_about(tmp_path, daemon):
    (tmp_path / ".env").write_text("# relay\nSMTP_PORT=587\nexport NUM_WORKER=4\nNUM_WORKERS=many\n"
                                   "MAX_BODY_BYTES=10\nMAIL_HTTPS_PORT=9443\n")
    result = subprocess.run([BIN_DIR / daemon, "--check-config"], cwd=tmp_path,
                            env={**os.environ, "DATA_DIR": str(tmp_path / "data"),
                                 "SENDER_NAME": "Acme\r\nBcc: x@evil.example"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    err = result.stderr
    assert "3 invalid settings" in err, err
    for name in ("NUM_WORKERS:", "MAX_BODY_BYTES:", "SENDER_NAME:"):
        assert name in err, err
    assert "sets SMTP_PORT, which no setting reads; did you mean PORT?" in err
    assert "sets NUM_WORKER, which no setting reads; did you mean NUM_WORKERS?" in err
    assert "MAIL_HTTPS_PORT" not in err  # make run's own setting
    assert "Usage" not in err and "--help" not in err


def test_make_run_reads_its_own_settings_from_dotenv(tmp_path):
    port = free_port()
    (tmp_path / ".env").write_text(f'MAIL_HTTPS_PORT={port}\nMAIL_DEMO_PASSWORD="from-dotenv"\n'
                                   f"RUN_DIR={tmp_path / 'run'}\nDATA_DIR={tmp_path / 'data'}\n")
    # run.sh works in the repository root, so it reads the repository's .env: copy the
    # scripts next to this .env instead of touching the developer's own.
    for part in ("scripts", "deploy"):
        subprocess.run(["cp", "-r", ROOT / part, tmp_path / part], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAIL_", "SMTP_"))}
    env["BIN_DIR"] = str(BIN_DIR)
    proc = subprocess.Popen([tmp_path / "scripts" / "run.sh"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def answers():
            try:
                return requests.get(f"https://127.0.0.1:{port}/email", auth=("demo", "from-dotenv"),
                                    verify=str(tmp_path / "run" / "tls" / "cert.pem"), timeout=1).status_code == 405
            except (requests.ConnectionError, OSError):
                return False
        wait_until(answers, timeout=20, what="an authenticated answer (405 for GET /email)")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        output = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert proc.returncode == 0, output


def test_sigterm_lets_the_responder_finish_requests_in_flight(stack, smtp):
    import threading
    accepted, failed, stop = [], [], threading.Event()

    def producer():
        session = requests.Session()
        session.auth = ("demo", stack.password)
        while not stop.is_set():
            try:
                r = session.post(stack.url("/email"), verify=stack.cert, timeout=10,
                                 json={"to_email": "u@example.com", "subject": "s", "body": "x" * 20_000})
            except requests.RequestException:
                continue
            (accepted if r.status_code == 200 else failed).append(r)

    threads = [threading.Thread(target=producer) for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(accepted) >= 20, what="requests flowing")
    code = stack.stop_daemon("mailfcgi")
    stop.set()
    for t in threads:
        t.join()
    assert code == 0
    # Every answered 200 was stored; the others got nginx's JSON 503, none a broken answer.
    assert all(r.status_code in (502, 503) and "detail" in r.json() for r in failed)
    ids = {r.json()["request_id"] for r in accepted}
    wait_until(lambda: set(smtp.message_ids()) >= {f"<{i}@example.org>" for i in ids}, timeout=60,
               what="every accepted email")


def test_make_run_on_a_busy_port_says_which_setting_to_change(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "BIN_DIR": str(BIN_DIR), "RUN_DIR": str(tmp_path / "run"),
               "DATA_DIR": str(tmp_path / "data"), "LOG_DIR": str(tmp_path / "logs"), "MAIL_HTTPS_PORT": str(port)}
        result = subprocess.run([ROOT / "scripts" / "run.sh"], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"port {port} is in use" in result.stderr and "MAIL_HTTPS_PORT" in result.stderr
    assert not (tmp_path / "run" / "nginx.pid").exists()


def test_make_run_and_make_test_build_only_what_they_run():
    def targets(env):
        out = subprocess.run(["swift", "package", "describe", "--type", "json"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300, check=True).stdout
        return {t["name"] for t in json.loads(out[out.index("{"):])["targets"]}
    plain = {k: v for k, v in os.environ.items() if k != "MAIL_BENCH"}
    assert not any(name.endswith("-bench") for name in targets(plain))
    assert {"claims-bench", "compose-bench", "durable-file-bench"} <= targets({**plain, "MAIL_BENCH": "1"})


def stack_processes(base):
    """Pids of processes working in `base` (the daemons and nginx that make run started)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if cwd == str(base) and (cmdline.endswith(("mailfcgi", "mailworkerd")) or "nginx" in cmdline):
            found.append(int(entry))
    return found


# How a `make run` can end: who gets which signal.
ENDINGS = ["ctrl-c to the group", "sigterm to the group", "sighup to the group", "sigterm to make",
           "ctrl-c to a background make started by a script", "kill -9 of run.sh"]


@pytest.mark.parametrize("ending", ENDINGS)
def test_make_run_leaves_nothing_running_however_it_ends(tmp_path, ending):
    port = free_port()
    (tmp_path / ".env").write_text(f"MAIL_HTTPS_PORT={port}\nRUN_DIR={tmp_path / 'run'}\n"
                                   f"DATA_DIR={tmp_path / 'data'}\nLOG_DIR={tmp_path / 'logs'}\n")
    for part in ("scripts", "deploy"):
        subprocess.run(["cp", "-r", ROOT / part, tmp_path / part], check=True)
    (tmp_path / "Makefile").write_text("run:\n\tscripts/run.sh\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAIL_", "SMTP_"))}
    env["BIN_DIR"] = str(BIN_DIR)
    if ending.startswith("ctrl-c to a background"):
        # A script that starts make in the background: bash gives it SIGINT ignored.
        command = ["bash", "-c", "make run & wait"]
    else:
        command = ["make", "run"]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: len(stack_processes(tmp_path)) >= 3 and (tmp_path / "run" / "mailfcgi.sock").exists()
                   and (tmp_path / "data" / "status" / "workers.json").exists(), timeout=30,
                   what="the three processes")
        time.sleep(0.5)
        if ending == "sigterm to make":
            os.kill(proc.pid, signal.SIGTERM)
        elif ending == "kill -9 of run.sh":
            script = next(int(p) for p in os.listdir("/proc") if p.isdigit() and
                          b"scripts/run.sh" in open(f"/proc/{p}/cmdline", "rb").read()
                          and os.readlink(f"/proc/{p}/cwd") == str(tmp_path))
            os.kill(script, signal.SIGKILL)
        else:
            sig = {"ctrl-c": signal.SIGINT, "sigterm": signal.SIGTERM, "sighup": signal.SIGHUP}[ending.split(" ")[0]]
            os.killpg(proc.pid, sig)
        wait_until(lambda: stack_processes(tmp_path) == [], timeout=40, what="every process of the stack to end")
    finally:
        for pid in stack_processes(tmp_path):
            os.kill(pid, signal.SIGKILL)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
    # Each daemon stopped through its own shutdown (work in flight finished), not killed.
    logs = {name: (tmp_path / "logs" / f"{name}.log").read_text() for name in ("mailfcgi", "mailworkerd")}
    assert all(" stopped" in text for text in logs.values()), logs
    if ending != "kill -9 of run.sh":
        # In order: the responder had stopped before the worker began to.
        def when(name, word):
            line = next(l for l in logs[name].splitlines() if f" {word}" in l)
            return line.split(" ")[0]
        assert when("mailfcgi", "stopped") <= when("mailworkerd", "stopping")
