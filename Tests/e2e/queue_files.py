"""Queue files written by hand, in the shape mailfcgi writes them (for tests that plant them)."""
import json
import os
import time
import uuid
from datetime import datetime, timezone


def new_request_id(ms=None):
    """A UUIDv7 for `ms` (milliseconds since the epoch, default now)."""
    ms = int(time.time() * 1000) if ms is None else ms
    r = os.urandom(10)
    raw = ms.to_bytes(6, "big") + bytes([0x70 | (r[0] & 0x0F), r[1], 0x80 | (r[2] & 0x3F)]) + r[3:10]
    return str(uuid.UUID(bytes=raw))


def base_name(request_id):
    """`batch_{ms}_{uuid8}`, the file name mailfcgi derives from a request id."""
    hex_digits = request_id.replace("-", "")
    return f"batch_{int(hex_digits[:12], 16)}_{hex_digits[-8:]}"


def queued_email(to="someone@example.com", **fields):
    """A queue entry as a dict; `fields` override or add keys."""
    request_id = fields.pop("request_id", None) or new_request_id()
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    entry = {
        "request_id": request_id, "message_id": f"<{request_id}@example.org>", "created_at": now,
        "to_email": to, "cc": [], "bcc": [], "subject": "planted", "body": "planted by a test",
        "format": "plain", "priority": 2, "retry_count": 0, "attempts": [],
    }
    entry.update(fields)
    return entry


def write_queue_file(folder, entry, mode=0o644):
    """Writes `entry` as `folder/{base}.json`; returns the path."""
    path = folder / (base_name(entry["request_id"]) + ".json")
    path.write_text(json.dumps(entry))
    path.chmod(mode)
    return path
