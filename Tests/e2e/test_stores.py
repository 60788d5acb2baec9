"""The stores the suite runs on (conftest.py): the setting a stack gives its daemons and
mailctl, and for postgres a new, empty database of each test's own, dropped after it even
while something is still connected."""
import os
import subprocess
from urllib.parse import urlsplit

import postgres
from stack import Stack, wait_until


def databases():
    server = postgres.with_database(os.environ["MAIL_TEST_DATABASE_URL"], "postgres")
    return postgres.psql(server, "SELECT datname FROM pg_database").split()


def test_a_stack_gives_every_daemon_and_mailctl_its_store(tmp_path, store):
    stack = Stack(tmp_path, {}, store)
    assert stack.env["QUEUE_STORE"] == store.name
    if store.name != "postgres":
        return
    assert stack.env["DATABASE_URL"] == store.database_url
    # The test's own database, empty: the daemons make their tables themselves.
    assert urlsplit(store.database_url).path[1:] in databases()
    assert postgres.tables(store.database_url) == 0
    # Dropped after the test, though a client is still connected to it.
    with postgres.database(os.environ["MAIL_TEST_DATABASE_URL"]) as url:
        name = urlsplit(url).path[1:]
        client = subprocess.Popen(["psql", "-X", "-q", "-d", url, "-c", "SELECT pg_sleep(60)"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'"
        wait_until(lambda: postgres.psql(store.database_url, probe).strip() != "0", what="the client connected")
    try:
        assert name not in databases()
        assert client.wait(timeout=10) != 0  # its connection was cut
    finally:
        client.kill()
