"""mailfcgi's FastCGI 1.0 responder, driven record by record over its unix socket."""
import itertools
import os
import subprocess
import json
import signal
import socket
import struct
import threading
import time

import pytest

import fastcgi_client as fcgi
from stack import Stack, listening, wait_until

MAX_BODY = 4096


@pytest.fixture
def responder(tmp_path, store):
    """mailfcgi alone, 2 worker threads, a 4 KiB body limit."""
    s = Stack(tmp_path, {"FCGI_THREADS": "2", "MAX_BODY_BYTES": str(MAX_BODY), "SHUTDOWN_TIMEOUT": "5"}, store)
    (tmp_path / ".env").write_text("")
    s.start_daemon("mailfcgi")
    wait_until(lambda: listening(s.socket), what="the FastCGI socket")
    yield s
    if "mailfcgi" in s.procs:
        assert s.stop_daemon("mailfcgi") == 0


def email_body(**extra):
    return json.dumps({"to_email": "a@example.org", "subject": "s", "body": "b", **extra}).encode()


def stored(stack):
    """How many emails wait in the queue (mailctl's count: no nginx in front of this responder)."""
    return stack.mailctl_json("stats")["counts"]["queued"]


def test_kept_connection_answers_many_requests(responder):
    conn = fcgi.Connection(responder.socket)
    for i in range(1, 51):
        conn.send(fcgi.request_records(1, "POST", "/email", email_body(subject=f"n{i}")))
        answers = conn.responses(1)
        status, headers, body, protocol = answers[1]
        assert (status, protocol) == (200, 0), body
        assert json.loads(body)["status"] == "queued"
    assert stored(responder) == 50
    conn.close()


def test_without_keep_conn_the_responder_closes_after_answering(responder):
    conn = fcgi.Connection(responder.socket)
    conn.send(fcgi.request_records(1, keep=False))
    assert conn.responses(1)[1][0] == 200
    assert conn.closed_by_peer()


def test_idle_kept_connections_hold_no_worker(responder):
    """Ten idle kept connections against 2 worker threads: a new request is still answered."""
    idle = []
    for _ in range(10):
        conn = fcgi.Connection(responder.socket)
        conn.send(fcgi.request_records(1))
        assert conn.responses(1)[1][0] == 200
        idle.append(conn)
    fresh = fcgi.Connection(responder.socket, timeout=3)
    fresh.send(fcgi.request_records(1))
    assert fresh.responses(1)[1][0] == 200
    for conn in idle:  # and each idle one still works
        conn.send(fcgi.request_records(7, path="/templates"))
        assert conn.responses(1)[7][0] == 200


def test_multiplexed_requests_on_one_connection(responder):
    a = fcgi.request_records(3, "POST", "/email", email_body(subject="three"))
    b = fcgi.request_records(4, "GET", "/nowhere")
    # Interleave the two requests' records.
    recs_a, recs_b = split_records(a), split_records(b)
    mixed = b"".join(x + y for x, y in itertools.zip_longest(recs_a, recs_b, fillvalue=b""))
    conn = fcgi.Connection(responder.socket)
    conn.send(mixed)
    answers = conn.responses(2)
    assert answers[3][0] == 200 and json.loads(answers[3][2])["status"] == "queued"
    assert answers[4][0] == 404


def split_records(data):
    out = []
    while data:
        length, padding = struct.unpack(">HB", data[4:7])
        end = 8 + length + padding
        out.append(data[:end])
        data = data[end:]
    return out


def test_records_arriving_one_byte_at_a_time(responder):
    conn = fcgi.Connection(responder.socket)
    for byte in fcgi.request_records(9, "POST", "/email", email_body()):
        conn.send(bytes([byte]))
    assert conn.responses(1)[9][0] == 200


def test_long_parameter_values_use_four_byte_lengths(responder):
    conn = fcgi.Connection(responder.socket)
    conn.send(fcgi.request_records(1, "POST", "/email", email_body(),
                                   params={"HTTP_USER_AGENT": "agent/" + "x" * 300, "QUERY_STRING": "q=" + "y" * 200}))
    assert conn.responses(1)[1][0] == 200


def test_get_values_reports_limits_and_multiplexing(responder):
    conn = fcgi.Connection(responder.socket)
    ask = fcgi.pairs({"FCGI_MAX_CONNS": "", "FCGI_MPXS_CONNS": "", "FCGI_NOT_A_VARIABLE": ""})
    conn.send(fcgi.record(fcgi.GET_VALUES, 0, ask))
    rtype, request_id, content = conn.read_record()
    assert (rtype, request_id) == (fcgi.GET_VALUES_RESULT, 0)
    values = fcgi.parse_pairs(content)
    assert values["FCGI_MPXS_CONNS"] == "1"
    assert int(values["FCGI_MAX_CONNS"]) > 0
    assert "FCGI_NOT_A_VARIABLE" not in values


def test_unknown_management_record_gets_unknown_type(responder):
    conn = fcgi.Connection(responder.socket)
    conn.send(fcgi.record(42, 0, b"whatever"))
    rtype, request_id, content = conn.read_record()
    assert (rtype, request_id, content[0]) == (fcgi.UNKNOWN_TYPE, 0, 42)
    conn.send(fcgi.request_records(1))  # and the connection goes on
    assert conn.responses(1)[1][0] == 200


def test_authorizer_role_is_refused_as_unknown_role(responder):
    conn = fcgi.Connection(responder.socket)
    conn.send(fcgi.record(fcgi.BEGIN_REQUEST, 5, struct.pack(">HB5x", fcgi.AUTHORIZER, fcgi.KEEP_CONN)))
    rtype, request_id, content = conn.read_record()
    assert (rtype, request_id, content[4]) == (fcgi.END_REQUEST, 5, 3)  # FCGI_UNKNOWN_ROLE


def test_abort_before_the_body_ends_leaves_no_file(responder):
    conn = fcgi.Connection(responder.socket)
    full = fcgi.request_records(2, "POST", "/email", email_body())
    conn.send(full[:-8])  # everything but the empty STDIN record
    conn.send(fcgi.record(fcgi.ABORT_REQUEST, 2))
    rtype, request_id, content = conn.read_record()
    assert (rtype, request_id, content[4]) == (fcgi.END_REQUEST, 2, 0)
    conn.send(fcgi.request_records(3))
    assert conn.responses(1)[3][0] == 200
    assert stored(responder) == 0


def test_declared_body_over_the_limit_is_refused_before_it_is_sent(responder):
    conn = fcgi.Connection(responder.socket)
    head = fcgi.request_records(1, "POST", "/email", params={"CONTENT_LENGTH": str(10 * 1024 * 1024)})
    conn.send(head[:-8])  # BEGIN_REQUEST and PARAMS only: no body at all yet
    status, _, body, _ = conn.responses(1)[1]
    assert status == 413 and str(MAX_BODY) in json.loads(body)["detail"]
    conn.send(fcgi.record(fcgi.STDIN, 1, b"x" * 1000) + fcgi.record(fcgi.STDIN, 1))  # dropped
    conn.send(fcgi.request_records(2))
    assert conn.responses(1)[2][0] == 200
    assert stored(responder) == 0


def test_undeclared_body_over_the_limit_is_refused(responder):
    conn = fcgi.Connection(responder.socket)
    records = fcgi.request_records(1, "POST", "/email", b"{" + b" " * (MAX_BODY + 10) + b"}",
                                   params={"CONTENT_LENGTH": ""})
    conn.send(records)
    assert conn.responses(1)[1][0] == 413
    assert stored(responder) == 0


def test_malformed_params_get_a_400(responder):
    conn = fcgi.Connection(responder.socket)
    bad = bytes([5, 200]) + b"NAME"  # value length 200 (4-byte form expected) runs past the end
    conn.send(fcgi.record(fcgi.BEGIN_REQUEST, 1, struct.pack(">HB5x", 1, 1))
              + fcgi.record(fcgi.PARAMS, 1, bad) + fcgi.record(fcgi.PARAMS, 1) + fcgi.record(fcgi.STDIN, 1))
    assert conn.responses(1)[1][0] == 400


def test_oversized_params_get_a_431(responder):
    conn = fcgi.Connection(responder.socket)
    conn.send(fcgi.request_records(1, params={"HTTP_X_BIG": "y" * 70000}))
    assert conn.responses(1)[1][0] == 431


def test_a_record_that_is_not_fastcgi_1_closes_only_that_connection(responder):
    bad = fcgi.Connection(responder.socket)
    bad.send(fcgi.record(fcgi.BEGIN_REQUEST, 1, b"\0" * 8, version=2))
    assert bad.closed_by_peer()
    good = fcgi.Connection(responder.socket)
    good.send(fcgi.request_records(1))
    assert good.responses(1)[1][0] == 200


def test_large_response_spans_several_records(responder):
    conn = fcgi.Connection(responder.socket)
    conn.send(fcgi.request_records(1, path="/openapi.json"))
    status, headers, body, _ = conn.responses(1)[1]
    assert status == 200 and int(headers["Content-Length"]) == len(body)
    assert json.loads(body)["openapi"].startswith("3.1")


def test_many_connections_at_once(responder):
    """40 clients, each with its own kept connection, 10 requests each, through 2 workers."""
    failures = []

    def client(n):
        try:
            conn = fcgi.Connection(responder.socket)
            for i in range(10):
                conn.send(fcgi.request_records(1 + i % 3, "POST", "/email", email_body(subject=f"{n}-{i}")))
                assert conn.responses(1)[1 + i % 3][0] == 200
            conn.close()
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(repr(error))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert stored(responder) == 400


def test_sigterm_with_idle_kept_connections_exits_promptly(responder):
    idle = [fcgi.Connection(responder.socket) for _ in range(5)]
    for conn in idle:
        conn.send(fcgi.request_records(1))
        conn.responses(1)
    started = time.monotonic()
    assert responder.stop_daemon("mailfcgi", timeout=10) == 0
    assert time.monotonic() - started < 5
    assert all(conn.closed_by_peer() for conn in idle)
    assert not responder.socket.exists()


def test_sigterm_gives_up_on_a_request_that_never_ends(responder):
    """A client that stops sending mid-request holds the stop for SHUTDOWN_TIMEOUT (5 s), no more."""
    conn = fcgi.Connection(responder.socket)
    conn.send(fcgi.request_records(1, "POST", "/email", email_body())[:-8])
    # Taken up before the stop (on a busy machine a SIGTERM at once can find no request yet).
    wait_until(lambda: connected_to(responder.socket) == 1, what="the connection accepted")
    time.sleep(0.5)
    started = time.monotonic()
    assert responder.stop_daemon("mailfcgi", timeout=20) == 0
    assert 4 < time.monotonic() - started < 15
    assert conn.closed_by_peer()
    assert stored(responder) == 0


def test_sigterm_finishes_a_request_still_arriving(responder):
    conn = fcgi.Connection(responder.socket)
    records = fcgi.request_records(1, "POST", "/email", email_body())
    conn.send(records[:-8])
    proc = responder.procs["mailfcgi"]
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(OSError):  # new connections are refused once stopping
        fcgi.Connection(responder.socket, timeout=1)
    conn.send(records[-8:])
    assert conn.responses(1)[1][0] == 200
    assert proc.wait(timeout=10) == 0
    responder.procs.pop("mailfcgi")
    assert stored(responder) == 1


def connected_to(path):
    """Accepted connections on the unix socket at `path` (state 03, SS_CONNECTED, in /proc/net/unix)."""
    lines = open("/proc/net/unix").read().splitlines()[1:]
    return sum(1 for line in lines if line.split()[5] == "03" and line.endswith(" " + str(path)))


def test_nginx_keeps_its_connections_to_the_responder_open(file_stack):
    """fastcgi_keep_conn with the upstream keepalive pool: sequential requests reuse one connection."""
    for i in range(20):
        assert file_stack.request("GET", "/templates").status_code == 200
    assert connected_to(file_stack.socket) == 1
    assert file_stack.post_email({"to_email": "a@example.org", "subject": "s", "body": "b"}).status_code == 200
    assert connected_to(file_stack.socket) == 1


# -- hostile peers: what a broken or malicious client on the socket must not achieve ----------

def rss_mib(pid):
    status = open(f"/proc/{pid}/status").read()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_client_that_never_reads_neither_stalls_others_nor_grows_memory(responder):
    pid = responder.procs["mailfcgi"].pid
    before = rss_mib(pid)
    flood = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    flood.connect(str(responder.socket))
    flood.setblocking(False)
    one = fcgi.request_records(1, path="/openapi.json")  # about 18 KB per answer
    sent = 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # writes until the responder stops reading it
        try:
            sent += flood.send(one * 50)
        except BlockingIOError:
            time.sleep(0.01)
    other = fcgi.Connection(responder.socket, timeout=2)
    for i in range(20):
        other.send(fcgi.request_records(1))
        assert other.responses(1)[1][0] == 200
    assert sent > 100_000
    assert rss_mib(pid) - before < 30, "the unread answers were capped, not buffered without end"
    flood.close()


@pytest.mark.serial  # CPU time over one second of waiting
@pytest.mark.file_store("its descriptor limit leaves room for one connection beside the file store's own descriptors")
def test_connections_beyond_the_limit_wait_without_spinning(tmp_path, store):
    """With a descriptor limit that leaves room for one connection, a second waits in the
    backlog (no CPU spent) and is served as soon as the first closes."""
    import resource
    s = Stack(tmp_path, {"FCGI_THREADS": "2"}, store)
    (tmp_path / ".env").write_text("")
    log = open(tmp_path / "mailfcgi.log", "ab")
    proc = subprocess.Popen([fcgi_bin("mailfcgi"), "--env-file", tmp_path / ".env"], cwd=tmp_path, env=s.env,
                            stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (68, 68)))
    try:
        wait_until(lambda: listening(s.socket), what="the FastCGI socket")
        first = fcgi.Connection(s.socket)
        first.send(fcgi.request_records(1))
        assert first.responses(1)[1][0] == 200
        second = fcgi.Connection(s.socket, timeout=5)  # connect(2) succeeds: the backlog holds it
        second.send(fcgi.request_records(1))
        used = cpu_seconds(proc.pid)
        time.sleep(1)
        assert cpu_seconds(proc.pid) - used < 0.2, "the event loop spins while the limit is reached"
        first.close()
        assert second.responses(1)[1][0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def fcgi_bin(name):
    from stack import BIN_DIR
    return BIN_DIR / name


def test_a_request_after_one_without_keep_conn_is_not_run(responder):
    conn = fcgi.Connection(responder.socket)
    conn.send(fcgi.request_records(1, "POST", "/email", email_body(subject="first"), keep=False)
              + fcgi.request_records(2, "POST", "/email", email_body(subject="second")))
    answers = {}
    while (rec := conn.read_record()) is not None:
        rtype, request_id, content = rec
        if rtype == fcgi.END_REQUEST:
            answers[request_id] = content[4]
    assert answers[1] == 0
    assert answers.get(2, 2) == 2  # FCGI_OVERLOADED, or nothing at all: never run
    assert stored(responder) == 1


@pytest.mark.parametrize("declared", ["10", "500", "-5", "abc", "99999999999999999999999"])
def test_content_length_must_match_the_body(responder, declared):
    conn = fcgi.Connection(responder.socket)
    body = email_body()
    conn.send(fcgi.request_records(1, "POST", "/email", body, params={"CONTENT_LENGTH": declared}))
    status, _, detail, _ = conn.responses(1)[1]
    assert status == 400, detail
    assert "CONTENT_LENGTH" in json.loads(detail)["detail"]
    assert stored(responder) == 0


def test_request_id_0_and_ids_in_use_are_not_begun(responder):
    conn = fcgi.Connection(responder.socket)
    begin = lambda rid: fcgi.record(fcgi.BEGIN_REQUEST, rid, struct.pack(">HB5x", 1, 1))
    first = fcgi.request_records(5, "POST", "/email", email_body(subject="five"))
    # id 0 is for management records; a second BEGIN_REQUEST for 5 while it arrives is ignored.
    conn.send(fcgi.request_records(0, "POST", "/email", email_body()) + first[:-8] + begin(5) + first[-8:])
    answers = conn.responses(1)
    assert list(answers) == [5] and answers[5][0] == 200
    conn.send(fcgi.record(fcgi.GET_VALUES, 3, fcgi.pairs({"FCGI_MPXS_CONNS": ""})))  # not id 0: ignored
    conn.send(fcgi.request_records(6))
    assert list(conn.responses(1)) == [6]
    assert stored(responder) == 1


def test_stdin_before_the_end_of_params_is_refused(responder):
    conn = fcgi.Connection(responder.socket)
    conn.send(fcgi.record(fcgi.BEGIN_REQUEST, 1, struct.pack(">HB5x", 1, 1))
              + fcgi.record(fcgi.STDIN, 1, email_body())
              + fcgi.record(fcgi.PARAMS, 1, fcgi.pairs({"REQUEST_METHOD": "POST", "DOCUMENT_URI": "/email"}))
              + fcgi.record(fcgi.PARAMS, 1) + fcgi.record(fcgi.STDIN, 1))
    assert conn.responses(1)[1][0] == 400
    assert stored(responder) == 0


def test_a_complete_request_before_a_bad_record_is_answered(responder):
    conn = fcgi.Connection(responder.socket)
    conn.send(fcgi.request_records(1, "POST", "/email", email_body()) + fcgi.record(1, 2, b"\0" * 8, version=9))
    assert conn.responses(1)[1][0] == 200
    assert conn.closed_by_peer()
    assert stored(responder) == 1


def test_more_open_requests_than_allowed_are_refused_as_overloaded(responder):
    conn = fcgi.Connection(responder.socket)
    partial = b"".join(fcgi.request_records(i, "POST", "/email", email_body())[:-8] for i in range(1, 10))
    conn.send(partial)  # nine requests begun, none finished
    rtype, request_id, content = conn.read_record()
    assert (rtype, request_id, content[4]) == (fcgi.END_REQUEST, 9, 2)  # FCGI_OVERLOADED
    conn.send(b"".join(fcgi.record(fcgi.STDIN, i) for i in range(1, 9)))
    assert sorted(conn.responses(8)) == list(range(1, 9))
    assert stored(responder) == 8


def test_stopping_with_a_request_half_sent_does_not_spin(responder):
    conn = fcgi.Connection(responder.socket)
    conn.send(fcgi.request_records(1, "POST", "/email", email_body())[:-8])
    proc = responder.procs["mailfcgi"]
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    used = cpu_seconds(proc.pid)
    time.sleep(2)
    assert cpu_seconds(proc.pid) - used < 0.3, "the event loop spins while draining"
    assert proc.wait(timeout=10) == 0
    responder.procs.pop("mailfcgi")


def test_without_keep_conn_a_request_refused_early_still_closes_the_connection(responder):
    """A 413 decided before the body arrives ends a FCGI_KEEP_CONN-less connection at once,
    though the client never sends the body nor closes."""
    conn = fcgi.Connection(responder.socket, timeout=3)
    head = fcgi.request_records(1, "POST", "/email", params={"CONTENT_LENGTH": str(10 * 1024 * 1024)}, keep=False)
    conn.send(head[:-8])
    assert conn.responses(1)[1][0] == 413
    assert conn.closed_by_peer()


def test_get_values_asking_the_same_name_thousands_of_times(responder):
    conn = fcgi.Connection(responder.socket)
    conn.send(fcgi.record(fcgi.GET_VALUES, 0, fcgi.pairs({"FCGI_MAX_CONNS": ""}) * 4095))
    rtype, _, content = conn.read_record()
    assert rtype == fcgi.GET_VALUES_RESULT and list(fcgi.parse_pairs(content)) == ["FCGI_MAX_CONNS"]
    conn.send(fcgi.request_records(1))
    assert conn.responses(1)[1][0] == 200


def test_requests_refused_while_arriving_hold_no_memory(responder):
    """Each id sends 128 KiB of parameters (431) and never ends its streams."""
    pid = responder.procs["mailfcgi"].pid
    before = rss_mib(pid)
    conn = fcgi.Connection(responder.socket)
    filler = b"\0" * 65535
    for start in range(1, 400, 50):
        batch = b"".join(fcgi.record(fcgi.BEGIN_REQUEST, i, struct.pack(">HB5x", 1, 1))
                         + fcgi.record(fcgi.PARAMS, i, filler) + fcgi.record(fcgi.PARAMS, i, filler)
                         for i in range(start, start + 50))
        conn.send(batch)
        assert {status for status, *_ in conn.responses(50).values()} == {431}
    assert rss_mib(pid) - before < 30
    conn.send(fcgi.request_records(1000))
    assert conn.responses(1)[1000][0] == 200


def test_silent_connections_are_closed_after_the_idle_timeout(tmp_path, store):
    s = Stack(tmp_path, {"FCGI_THREADS": "2", "FCGI_IDLE_TIMEOUT": "1"}, store)
    (tmp_path / ".env").write_text("")
    s.start_daemon("mailfcgi")
    try:
        wait_until(lambda: listening(s.socket), what="the FastCGI socket")
        silent = fcgi.Connection(s.socket, timeout=5)
        kept = fcgi.Connection(s.socket, timeout=5)
        kept.send(fcgi.request_records(1))
        assert kept.responses(1)[1][0] == 200
        partial = fcgi.Connection(s.socket, timeout=5)
        partial.send(fcgi.request_records(1, "POST", "/email", email_body())[:-8])  # never finished
        started = time.monotonic()
        assert silent.closed_by_peer() and kept.closed_by_peer() and partial.closed_by_peer()
        assert time.monotonic() - started < 4
        fresh = fcgi.Connection(s.socket)
        fresh.send(fcgi.request_records(1))
        assert fresh.responses(1)[1][0] == 200
        assert stored(s) == 0
    finally:
        assert s.stop_daemon("mailfcgi") == 0
