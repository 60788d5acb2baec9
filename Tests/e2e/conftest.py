"""Fixtures for the whole suite, and the two queue stores every stack runs on.

A test that takes `store` (directly, or through `stack`, `file_stack` and the other stack
fixtures) runs once for each store, as `test_x[file]` and `test_x[postgres]`; one marked
`file_store` (it reads or plants the file queue's files) only as `test_x[file]`.
MAIL_STORES=file (or postgres) runs one store only. For postgres the run starts a private
server (scripts/test-postgres.sh) and stops it at the end, unless MAIL_TEST_DATABASE_URL
names one already running (a server URL, `postgresql://user@host:port`, whose user may
create databases); each test gets a new database on it, dropped after the test."""
import os

import pytest

import postgres
from smtp_server import start_smtp_server
from stack import Stack, Store, free_port

STORES = ("file", "postgres")
SERVER = pytest.StashKey[postgres.Server]()


def selected_stores():
    names = [name.strip() for name in os.environ.get("MAIL_STORES", ",".join(STORES)).split(",") if name.strip()]
    unknown = sorted(set(names) - set(STORES))
    if unknown or not names:
        raise pytest.UsageError(f"MAIL_STORES={os.environ.get('MAIL_STORES')!r}: a list of {', '.join(STORES)}")
    return names


def pytest_configure(config):
    # One server for the run, started by the main process (pytest-xdist's workers, which
    # start after this, find its URL in the environment they inherit).
    stores = selected_stores()
    if ("postgres" not in stores or hasattr(config, "workerinput") or os.environ.get("MAIL_TEST_DATABASE_URL")
            or config.option.collectonly or config.option.help):
        return
    try:
        server = postgres.Server.start()
    except (RuntimeError, OSError) as e:
        raise pytest.UsageError(f"the postgres store's tests need a PostgreSQL server, and it did not start:\n{e}\n"
                                "(MAIL_STORES=file runs the file store's tests alone)")
    config.stash[SERVER] = server
    os.environ["MAIL_TEST_DATABASE_URL"] = server.url


def pytest_unconfigure(config):
    server = config.stash.get(SERVER, None)
    if server:
        del config.stash[SERVER]
        server.stop()


def pytest_generate_tests(metafunc):
    if "store" in metafunc.fixturenames:
        if metafunc.definition.get_closest_marker("file_store"):
            stores = ["file"]
        elif metafunc.definition.get_closest_marker("postgres_store"):
            stores = ["postgres"]
        else:
            stores = list(STORES)
        metafunc.parametrize("store", stores, indirect=True)


def pytest_collection_modifyitems(config, items):
    """Deselects the stores MAIL_STORES leaves out (and file_store tests without the file store)."""
    stores = selected_stores()
    kept, left_out = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        store = callspec.params.get("store") if callspec else None
        if store is None and item.get_closest_marker("file_store"):
            store = "file"
        (kept if store is None or store in stores else left_out).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.fixture
def store(request):
    """The store a stack of this test uses: the file store, or a new database of its own."""
    if request.param == "file":
        yield Store("file")
        return
    server = os.environ.get("MAIL_TEST_DATABASE_URL")
    if not server:
        pytest.fail("no PostgreSQL server for the postgres store (MAIL_TEST_DATABASE_URL is not set)")
    with postgres.database(server) as url:
        yield Store("postgres", url)


@pytest.fixture
def smtp():
    port = free_port()
    controller, handler = start_smtp_server(port)
    handler.port = port
    handler.controller = controller
    yield handler
    try:
        controller.stop()
    except AssertionError:
        pass  # a test stopped it already


@pytest.fixture
def stack(tmp_path, smtp, store):
    """The whole stack delivering to the aiosmtpd server `smtp`."""
    s = Stack(tmp_path, {
        "SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
        "WORKER_POLLING_INTERVAL": "5",
    }, store).start()
    yield s
    s.stop()


@pytest.fixture
def file_stack(tmp_path, store):
    """The whole stack with no SMTP server: the file transport writes data/outbox/*.eml."""
    s = Stack(tmp_path, {"WORKER_POLLING_INTERVAL": "5"}, store).start()
    yield s
    s.stop()
