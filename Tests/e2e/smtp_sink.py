"""A standalone SMTP sink for the multi-host tests (`hosts.py`): aiosmtpd, run as its own
process inside a network namespace (`ip netns exec smtp python smtp_sink.py ...`), appending
one JSON line per accepted message to a file.

Why a process and a file, and not `smtp_server.start_smtp_server` in the test's process: the
server must listen in the `smtp` host's namespace, and the record must outlive anything the
test does to the other hosts; a line per message, flushed at once, lets the test count
deliveries per email (and duplicates) while the server runs, with no protocol of its own.

Each line: `time` (UNIX seconds, when DATA was answered), `peer` (the client's address: which
worker host sent it), `message_id`, `request_id` (from the Message-ID `<{request id}@domain>`),
`seq` (the `X-Test-Seq` header, when present), `mail_from`, `rcpt_tos`.

usage: smtp_sink.py --host ADDRESS --port PORT --record FILE [--delay SECONDS]
"""
import argparse
import asyncio
import json
import signal
import threading
import time
from email.parser import BytesHeaderParser

from aiosmtpd.controller import Controller


class SinkHandler:
    """Accepts every message; `delay` seconds before answering DATA keep sends in flight, so
    a fault injected at any moment finds some."""

    def __init__(self, record, delay):
        self.record = record
        self.delay = delay
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        headers = BytesHeaderParser().parsebytes(envelope.original_content or envelope.content)
        message_id = (headers.get("Message-ID") or "").strip()
        request_id = message_id.strip("<>").split("@", 1)[0] if message_id else None
        line = json.dumps({
            "time": time.time(),
            "peer": session.peer[0] if session.peer else None,
            "message_id": message_id,
            "request_id": request_id,
            "seq": headers.get("X-Test-Seq"),
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
        })
        with self.lock:
            self.record.write(line + "\n")
            self.record.flush()
        return "250 OK: queued"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--record", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    record = open(args.record, "a", buffering=1)
    controller = Controller(SinkHandler(record, args.delay), hostname=args.host, port=args.port,
                            server_hostname="smtp.test")
    controller.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"smtp_sink listening on {args.host}:{args.port}", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
