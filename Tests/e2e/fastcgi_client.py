"""A FastCGI 1.0 client for driving mailfcgi's socket directly, record by record, the way a
web server would (and the ways one should not)."""
import socket
import struct

BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT = 1, 2, 3, 4, 5, 6
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11
RESPONDER, AUTHORIZER = 1, 2
KEEP_CONN = 1


def record(rtype, request_id, content=b"", version=1):
    padding = (8 - len(content) % 8) % 8
    return struct.pack(">BBHHBx", version, rtype, request_id, len(content), padding) + content + b"\0" * padding


def pairs(items):
    out = b""
    for name, value in items.items():
        for part in (name.encode(), value.encode()):
            out += struct.pack(">B", len(part)) if len(part) < 128 else struct.pack(">I", len(part) | 0x80000000)
        out += name.encode() + value.encode()
    return out


def parse_pairs(data):
    items, i = {}, 0
    def length():
        nonlocal i
        if data[i] < 128:
            i += 1
            return data[i - 1]
        i += 4
        return struct.unpack(">I", data[i - 4:i])[0] & 0x7FFFFFFF
    while i < len(data):
        n, v = length(), length()
        items[data[i:i + n].decode()] = data[i + n:i + n + v].decode()
        i += n + v
    return items


def request_records(request_id, method="GET", path="/templates", body=b"", params=None, keep=True, role=RESPONDER):
    """The records nginx sends for one request: BEGIN_REQUEST, PARAMS stream, STDIN stream."""
    env = {"REQUEST_METHOD": method, "DOCUMENT_URI": path, "QUERY_STRING": "",
           "CONTENT_TYPE": "application/json" if body else "", "CONTENT_LENGTH": str(len(body)) if body else "",
           "REMOTE_USER": "demo", **(params or {})}
    out = record(BEGIN_REQUEST, request_id, struct.pack(">HB5x", role, KEEP_CONN if keep else 0))
    encoded = pairs(env)
    for start in range(0, len(encoded), 65535):  # a stream may span several records
        out += record(PARAMS, request_id, encoded[start:start + 65535])
    out += record(PARAMS, request_id)
    for start in range(0, len(body), 65535):
        out += record(STDIN, request_id, body[start:start + 65535])
    return out + record(STDIN, request_id)


class Connection:
    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buffer = b""

    def send(self, data):
        self.sock.sendall(data)

    def read_record(self):
        """(type, request_id, content), or None at the end of the stream."""
        while len(self.buffer) < 8 or len(self.buffer) < 8 + self._lengths()[0] + self._lengths()[1]:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        version, rtype, request_id, length, padding = struct.unpack(">BBHHBx", self.buffer[:8])
        assert version == 1
        content = self.buffer[8:8 + length]
        self.buffer = self.buffer[8 + length + padding:]
        return rtype, request_id, content

    def _lengths(self):
        _, _, _, length, padding = struct.unpack(">BBHHBx", self.buffer[:8])
        return length, padding

    def responses(self, count):
        """Reads until `count` requests have ended: {request_id: (status, headers, body, protocol_status)}."""
        stdout, done = {}, {}
        while len(done) < count:
            rec = self.read_record()
            assert rec is not None, f"connection closed after {len(done)} of {count} answers"
            rtype, request_id, content = rec
            if rtype == STDOUT:
                stdout[request_id] = stdout.get(request_id, b"") + content
            elif rtype == END_REQUEST:
                protocol_status = content[4]
                done[request_id] = parse_http(stdout.pop(request_id, b"")) + (protocol_status,)
            else:
                raise AssertionError(f"unexpected record type {rtype}")
        return done

    def closed_by_peer(self):
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def parse_http(stdout):
    if not stdout:
        return (None, {}, b"")
    head, _, body = stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    status = int(headers.pop("Status").split()[0])
    return (status, headers, body)
