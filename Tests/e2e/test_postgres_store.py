"""What only the PostgreSQL store has: claim leases and their fencing tokens, migrations that
several hosts apply at once, and a database that goes away. Everything the two stores share
runs on both through the `store` fixture; the multi-host test is test_multihost.py."""
import concurrent.futures
import signal
import subprocess
import time

import pytest

import postgres
from stack import BIN_DIR, Stack, wait_until

pytestmark = pytest.mark.postgres_store

EMAIL = {"to_email": "alice@example.org", "subject": "Hello", "body": "Hi"}


def row(store, request_id, columns="state, lease_token, lease_owner"):
    return postgres.psql(store.database_url,
                         f"SELECT {columns} FROM mail_emails WHERE request_id = '{request_id}'").strip()


def smtp_stack(tmp_path, smtp, store, **env):
    return Stack(tmp_path, {
        "SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
        "WORKER_POLLING_INTERVAL": "1", **env,
    }, store)


def test_schema_is_migrated_once_when_hosts_start_together(tmp_path, store):
    # Eight programs open a new database at the same moment: each migration is applied once,
    # the others wait for its advisory lock and find it done.
    env = {**subprocess.os.environ, **store.env, "DATA_DIR": str(tmp_path / "data"), "LOG_STDERR": "false"}
    (tmp_path / "data" / "queue").mkdir(parents=True)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(
            lambda _: subprocess.run([BIN_DIR / "mailctl", "stats", "--json"], env=env, capture_output=True,
                                     text=True, timeout=60),
            range(8)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    versions = postgres.psql(store.database_url, "SELECT version FROM mail_schema ORDER BY version").split()
    assert versions == ["1"]
    tables = postgres.psql(store.database_url, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'mail_%'")
    assert int(tables) == 6


def test_database_newer_than_the_build_is_refused(tmp_path, store, smtp):
    s = smtp_stack(tmp_path, smtp, store).start()
    s.stop()
    postgres.psql(store.database_url, "INSERT INTO mail_schema VALUES (99, now())")
    result = s.mailctl("stats")
    assert result.returncode == 1
    assert "schema is version 99, newer than this build knows" in result.stderr


def test_claim_of_a_killed_worker_is_taken_over_when_its_lease_lapses(tmp_path, smtp, store):
    # The relay holds DATA and the worker is killed with the email claimed: its lease is no
    # longer renewed. A mailworkerd on another host (its own host name, through a UTS
    # namespace) must not take the email before the lease lapses, and delivers it after.
    smtp.delay = 60
    s = smtp_stack(tmp_path, smtp, store, CLAIM_LEASE="3", NUM_WORKERS="1").start()
    other = None
    try:
        rid = s.post_email(EMAIL).json()["request_id"]
        wait_until(lambda: row(store, rid).startswith("sending|"), what="the claim")
        _, token, owner = row(store, rid).split("|")
        s.stop_daemon("mailworkerd", signal.SIGKILL)
        killed = time.monotonic()
        smtp.delay = 0
        log = open(tmp_path / "mailworkerd-other.log", "ab")
        other = subprocess.Popen(
            ["unshare", "--uts", "sh", "-c", f'hostname other-host && exec "{BIN_DIR}/mailworkerd"'],
            cwd=s.base, env=s.env, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(max(0.0, 0.7 - (time.monotonic() - killed)))
        assert row(store, rid).split("|")[1] == token  # not lapsed yet: nobody else may take it
        wait_until(lambda: s.lookup(rid)["state"] == "sent", timeout=20, what="delivery by the other host")
        assert len(smtp.messages) == 1
        assert "lapsed claims taken back for delivery" in (tmp_path / "mailworkerd-other.log").read_text()
        assert owner.startswith(subprocess.os.uname().nodename + "/")
    finally:
        if other:
            other.terminate()
            other.wait(timeout=30)
        s.stop()


def test_a_restarted_worker_puts_back_its_dead_predecessors_claims_at_once(tmp_path, smtp, store):
    # Same host, killed with a claim under a 30 s lease: the next mailworkerd on this host
    # sees that the owner's process is gone and puts the claim back at start.
    smtp.delay = 60
    s = smtp_stack(tmp_path, smtp, store, CLAIM_LEASE="30", NUM_WORKERS="1").start()
    try:
        rid = s.post_email(EMAIL).json()["request_id"]
        wait_until(lambda: row(store, rid).startswith("sending|"), what="the claim")
        s.stop_daemon("mailworkerd", signal.SIGKILL)
        smtp.delay = 0
        s.start_daemon("mailworkerd")
        wait_until(lambda: s.lookup(rid)["state"] == "sent", timeout=10, what="delivery after the restart")
        assert "claims from an earlier run put back" in s.log("mailworkerd")
    finally:
        s.stop()


def test_lease_is_renewed_while_a_send_takes_longer_than_it(tmp_path, smtp, store):
    # A send of 5 s under a 1.5 s lease: the renewals keep the claim; it is sent once.
    smtp.delay = 5
    s = smtp_stack(tmp_path, smtp, store, CLAIM_LEASE="1.5", NUM_WORKERS="2").start()
    try:
        rid = s.post_email(EMAIL).json()["request_id"]
        wait_until(lambda: row(store, rid).startswith("sending|"), what="the claim")
        token = row(store, rid).split("|")[1]
        time.sleep(3)
        assert row(store, rid).split("|")[:2] == ["sending", token]
        wait_until(lambda: s.lookup(rid)["state"] == "sent", timeout=20, what="delivery")
        time.sleep(1)
        assert len(smtp.messages) == 1
    finally:
        s.stop()


def test_outcome_of_a_lost_lease_does_not_overwrite_the_new_owner(tmp_path, smtp, store):
    # Worker A is sending when its lease is made to lapse (as if its host had been cut off
    # long enough); the sweep takes it back and a second mailworkerd's worker delivers it,
    # its attempt recorded. When A's relay answers, A's outcome carries a stale token: refused.
    smtp.delay = 6
    s = smtp_stack(tmp_path, smtp, store, CLAIM_LEASE="30", NUM_WORKERS="1", WORKERD_SHARED="true").start()
    try:
        rid = s.post_email(EMAIL).json()["request_id"]
        wait_until(lambda: row(store, rid).startswith("sending|"), what="A's claim")
        first_token = row(store, rid).split("|")[1]
        smtp.delay = 0
        s.start_daemon("mailworkerd", instance="b")
        postgres.psql(store.database_url,
                      f"UPDATE mail_emails SET lease_until = now() - interval '1 second' WHERE request_id = '{rid}'")
        wait_until(lambda: s.lookup(rid)["state"] == "sent", timeout=20, what="delivery by B")
        finished = row(store, rid, "state, lease_token, body")
        # A's send completes later and its outcome is refused: the record stays B's.
        wait_until(lambda: "its outcome is not recorded" in s.log("mailworkerd"), timeout=20,
                   what="A's outcome refused")
        assert row(store, rid, "state, lease_token, body") == finished
        assert finished.split("|")[1] == ""  # settled: no lease
        assert first_token != ""
        assert len(smtp.messages) == 2  # the documented window: a send in flight on a lost lease
    finally:
        s.stop()


def test_database_down_answers_503_and_health_says_so(tmp_path, smtp, store):
    s = smtp_stack(tmp_path, smtp, store).start()
    name = store.database_url.rsplit("/", 1)[1]
    admin = postgres.with_database(store.database_url, "postgres")
    try:
        assert s.post_email(EMAIL).status_code == 200
        postgres.psql(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        postgres.psql(admin, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        answer = s.post_email(EMAIL)
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"]
        assert "database cannot be reached" in answer.json()["detail"]
        health = s.request("GET", "/health")
        assert health.status_code == 503
        assert "database cannot be reached" in health.json()["components"]["queue_manager"]
        assert s.request("GET", "/email/01890000-0000-7000-8000-000000000000").status_code == 503
        postgres.psql(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        # Both daemons reconnect by themselves.
        rid = wait_until(lambda: (a := s.post_email(EMAIL)).status_code == 200 and a.json()["request_id"],
                         timeout=10, what="intake back")
        wait_until(lambda: s.lookup(rid)["state"] == "sent", timeout=20, what="delivery after the outage")
        assert s.request("GET", "/health").status_code == 200
    finally:
        postgres.psql(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        s.stop()


@pytest.mark.parametrize("env,variable,problem", [
    ({"QUEUE_STORE": "postgres", "DATABASE_URL": ""}, "DATABASE_URL", "required with QUEUE_STORE=postgres"),
    ({"QUEUE_STORE": "mysql"}, "QUEUE_STORE", "is not a queue store"),
    ({"DATABASE_URL": "mysql://u:hunter2@h/db", "QUEUE_STORE": "postgres"}, "DATABASE_URL", "must be a postgresql"),
    ({"DATABASE_URL": "hunter2", "QUEUE_STORE": "postgres"}, "DATABASE_URL", "neither a postgresql:// URI"),
    ({"DATABASE_URL": "postgresql://u:hunter2@h/db?sslmode=bogus", "QUEUE_STORE": "postgres"}, "DATABASE_URL",
     'sslmode "bogus" is not one of'),
    ({"DATABASE_URL": "host=h password=hunter2 sslmode=verify", "QUEUE_STORE": "postgres"}, "DATABASE_URL",
     'sslmode "verify" is not one of'),
    ({"CLAIM_LEASE": "0"}, "CLAIM_LEASE", ""),
])
def test_bad_store_settings_are_named(tmp_path, store, env, variable, problem):
    for program in ["mailfcgi", "mailworkerd"]:
        result = subprocess.run([BIN_DIR / program, "--check-config"], cwd=tmp_path, capture_output=True, text=True,
                                env={**subprocess.os.environ, **store.env, "DATA_DIR": str(tmp_path), **env},
                                timeout=30)
        assert result.returncode != 0
        assert variable in result.stderr and problem in result.stderr
        assert "hunter2" not in result.stderr + result.stdout


def test_unreachable_database_stops_the_daemon_with_a_clear_error(tmp_path, store):
    url = "postgresql://mail:hunter2@127.0.0.1:1/nowhere?connect_timeout=2"
    for program in ["mailfcgi", "mailworkerd"]:
        result = subprocess.run([BIN_DIR / program], cwd=tmp_path, capture_output=True, text=True, timeout=30,
                                env={**subprocess.os.environ, "QUEUE_STORE": "postgres", "DATABASE_URL": url,
                                     "DATA_DIR": str(tmp_path / "data"), "LOG_DIR": str(tmp_path / "logs"),
                                     "FCGI_SOCKET": str(tmp_path / "s.sock"), "LOG_STDERR": "true"})
        assert result.returncode != 0
        assert "cannot connect" in result.stderr, result.stderr
        assert "hunter2" not in result.stderr
