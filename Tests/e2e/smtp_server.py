"""A real SMTP server for the tests: aiosmtpd on loopback, recording every message."""
import asyncio
import threading
import time
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list
    data: bytes


@dataclass
class RecordingHandler:
    """Keeps every message the server accepted, and counts SMTP sessions."""
    messages: list = field(default_factory=list)
    sessions: int = 0
    delay: float = 0.0  # seconds to wait before answering DATA: keeps sends in flight
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.lock:
            self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
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


def start_smtp_server(port):
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, handler
