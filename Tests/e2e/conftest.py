import pytest

from smtp_server import start_smtp_server
from stack import Stack, free_port



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
def stack(tmp_path, smtp):
    """The whole stack delivering to the aiosmtpd server `smtp`."""
    s = Stack(tmp_path, {
        "SMTP_SERVER": "127.0.0.1", "PORT": str(smtp.port), "SMTP_TLS": "none",
        "WORKER_POLLING_INTERVAL": "5",
    }).start()
    yield s
    s.stop()


@pytest.fixture
def file_stack(tmp_path):
    """The whole stack with no SMTP server: the file transport writes data/outbox/*.eml."""
    s = Stack(tmp_path, {"WORKER_POLLING_INTERVAL": "5"}).start()
    yield s
    s.stop()
