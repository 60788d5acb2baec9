"""The PostgreSQL server of a test run (scripts/test-postgres.sh) and a database of each test's own."""
import contextlib
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "test-postgres.sh"


class Server:
    """A private server in a temporary folder, for one pytest run."""

    def __init__(self, folder, url):
        self.folder = folder
        self.url = url

    @classmethod
    def start(cls):
        """Starts one; raises RuntimeError with the script's explanation when it cannot."""
        folder = tempfile.mkdtemp(prefix="mail-test-postgres-")
        result = subprocess.run([SCRIPT, "start", folder], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise RuntimeError(result.stderr.strip() or f"{SCRIPT} start failed")
        return cls(folder, result.stdout.strip())

    def stop(self):
        subprocess.run([SCRIPT, "stop", self.folder], check=True, capture_output=True, timeout=60)


def with_database(url, name):
    """`url` (a server's, with or without a database) naming the database `name`."""
    return urlsplit(url)._replace(path="/" + name).geturl()


def psql(url, sql):
    """Runs `sql` on `url`; returns psql's unaligned output. Raises AssertionError with psql's
    message when it fails."""
    result = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"psql {sql!r} on {url}: {result.stderr.strip()}"
    return result.stdout


def tables(url):
    """How many tables the database at `url` holds."""
    return int(psql(url, "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"))


@contextlib.contextmanager
def database(server_url):
    """A new, empty database on the server at `server_url`: yields its URL, drops it after
    (its connections cut: a daemon a test left running does not keep it)."""
    name = f"mail_test_{uuid.uuid4().hex[:16]}"
    admin = with_database(server_url, "postgres")
    psql(admin, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        psql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
