"""A real SMTP server for the tests: aiosmtpd on loopback, recording every message, with
TLS (implicit or STARTTLS), AUTH, and failures it can be told to produce."""
import asyncio
import ssl
import threading
import time
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list
    data: bytes


@dataclass
class RecordingHandler:
    """Keeps every message the server accepted and counts SMTP sessions. Failures to
    produce: `rcpt_replies` are answered to the next RCPT commands in turn (e.g. a 451),
    `drop_in_data` closes that many connections in the middle of DATA."""
    messages: list = field(default_factory=list)
    session_ids: set = field(default_factory=set)
    delay: float = 0.0  # seconds to wait before answering DATA: keeps sends in flight
    rcpt_replies: list = field(default_factory=list)
    data_replies: list = field(default_factory=list)  # answered after `delay` instead of 250
    drop_in_data: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def sessions(self):
        with self.lock:
            return len(self.session_ids)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.lock:
            self.session_ids.add(id(session))
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            reply = self.rcpt_replies.pop(0) if self.rcpt_replies else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            drop = self.drop_in_data > 0
            self.drop_in_data -= 1 if drop else 0
        if drop:
            server.transport.close()
            return "421 closing"
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            reply = self.data_replies.pop(0) if self.data_replies else None
        if reply:
            return reply
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK: queued"

    def wait_for(self, count, timeout=10.0):
        """Waits until at least `count` messages arrived; returns them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} messages within {timeout}s, got {len(self.messages)}")

    def message_ids(self):
        """Message-ID of every received message, in arrival order (duplicates kept)."""
        with self.lock:
            raw = [m.data for m in self.messages]
        ids = []
        for data in raw:
            for line in data.split(b"\r\n"):
                if line.lower().startswith(b"message-id:"):
                    ids.append(line.split(b":", 1)[1].strip().decode())
                    break
                if not line:
                    break
        return ids


class Authenticator:
    """Accepts one login and password; records every attempt."""

    def __init__(self, login, password):
        self.login, self.password = login, password
        self.attempts = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.attempts.append(login)
        # handled=False: aiosmtpd answers the failure itself (535), else it says nothing.
        return AuthResult(success=(login, password) == (self.login, self.password), handled=False)


def start_smtp_server(port, tls=None, cert=None, key=None, auth=None, handler=None):
    """Starts aiosmtpd on 127.0.0.1:`port`. `tls`: None (plain), "starttls" or "implicit",
    with `cert`/`key` files; `auth`: (login, password) to require AUTH."""
    handler = handler or RecordingHandler()
    kwargs = {}
    context = None
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    if tls == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    if auth:
        handler.authenticator = Authenticator(*auth)
        # aiosmtpd only counts STARTTLS as TLS for auth_require_tls; implicit TLS is TLS too.
        kwargs.update(authenticator=handler.authenticator, auth_required=True,
                      auth_require_tls=tls == "starttls")
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            ssl_context=context if tls == "implicit" else None,
                            server_hostname="localhost", **kwargs)
    controller.start()
    return controller, handler
