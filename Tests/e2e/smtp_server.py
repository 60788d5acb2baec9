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
    `rcpt_by_address` to the next RCPTs for one address, `drop_in_data` closes that many
    connections in the middle of DATA, `stall_data` leaves that many ends of DATA
    unanswered for `stall_seconds` (then 451, nothing kept), and `strip_ehlo` removes EHLO
    lines that start with one of its words (STARTTLS, AUTH), as an attacker on the path can;
    `mail_reply`, when set, answers every MAIL FROM."""
    messages: list = field(default_factory=list)
    session_ids: set = field(default_factory=set)
    delay: float = 0.0  # seconds to wait before answering DATA: keeps sends in flight
    rcpt_replies: list = field(default_factory=list)
    data_replies: list = field(default_factory=list)  # answered after `delay` instead of 250
    drop_in_data: int = 0
    rcpt_by_address: dict = field(default_factory=dict)
    stall_data: int = 0
    stall_seconds: float = 0.0
    strip_ehlo: tuple = ()
    mail_reply: str = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def sessions(self):
        with self.lock:
            return len(self.session_ids)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.lock:
            self.session_ids.add(id(session))
        session.host_name = hostname
        if self.strip_ehlo:
            responses = [r for r in responses if not r[4:].upper().startswith(tuple(self.strip_ehlo))]
            # The last line of a multi-line reply has a space after the code.
            responses[-1] = responses[-1][:3] + " " + responses[-1][4:]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            reply = self.rcpt_replies.pop(0) if self.rcpt_replies else None
            queued = self.rcpt_by_address.get(address)
            if reply is None and queued:
                reply = queued.pop(0)
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
        with self.lock:
            stall = self.stall_data > 0
            self.stall_data -= 1 if stall else 0
        if stall:
            await asyncio.sleep(self.stall_seconds)
            return "451 4.3.0 answered too late"
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


class WireProxy:
    """A TCP proxy in front of an SMTP server that keeps every byte the client sent (the
    transcript an eavesdropper on the path would see), and can refuse the first
    `refuse_first` connections with a 421 greeting, or every connection beyond
    `max_concurrent` open at once, as a relay at its connection limit does."""

    def __init__(self, backend_port, refuse_first=0, max_concurrent=None):
        import socket
        self.backend_port = backend_port
        self.refuse_first = refuse_first
        self.max_concurrent = max_concurrent
        self.open = 0
        self.refused = 0
        self.client_bytes = bytearray()
        self.connections = 0
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                refuse = self.refuse_first > 0 or (self.max_concurrent is not None and self.open >= self.max_concurrent)
                self.refuse_first -= 1 if self.refuse_first > 0 else 0
                self.refused += 1 if refuse else 0
                self.open += 0 if refuse else 1
            if refuse:
                client.sendall(b"421 4.7.0 Too many connections, try again later\r\n")
                client.close()
                continue
            backend = socket.create_connection(("127.0.0.1", self.backend_port))
            threading.Thread(target=self._pipe, args=(client, backend, True, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(backend, client, False), daemon=True).start()

    def _pipe(self, source, sink, from_client, counts_open=False):
        try:
            while chunk := source.recv(65536):
                if from_client:
                    with self.lock:
                        self.client_bytes += chunk
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            if counts_open:
                with self.lock:
                    self.open -= 1
            for s in (source, sink):
                try:
                    s.shutdown(2)
                except OSError:
                    pass

    def transcript(self):
        with self.lock:
            return bytes(self.client_bytes)

    def close(self):
        self.closed = True
        self.listener.close()
