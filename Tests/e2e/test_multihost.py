"""Several hosts sharing one queue in PostgreSQL (QUEUE_STORE=postgres), with hosts failing.

Hosts are network namespaces on a private bridge (`hosts.py`): `db` (PostgreSQL), `smtp`
(the SMTP sink, which records every delivery and the host that made it), `web1` and `web2`
(nginx + mailfcgi), `work1`..`work3` (mailworkerd), each with its own DATA_DIR; the test's
client is the root namespace, on the bridge too.

`test_harness_smoke` and `test_stack_in_namespace` check the harness itself and pass with
any build; `test_shared_queue_survives_host_faults` needs the PostgreSQL queue store (with a
build that ignores QUEUE_STORE, every responder keeps its emails in its own file queue, no
worker host sees them, and the test fails saying that nothing was delivered).
"""
import os
import random
import re
import shutil
import signal
import smtplib
import subprocess
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage

import pytest
import requests

import hosts
from hosts import MailCluster, Net, Postgres, SmtpSink
from stack import Stack, wait_until

pytestmark = [
    pytest.mark.multihost,
    pytest.mark.serial,  # heavy (five hosts, 5,000 emails): alone, after the parallel pass
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                       reason="network namespaces need root and iproute2 (ip netns)"),
]


@pytest.fixture
def net():
    n = Net()
    yield n
    n.close()


def _netns_of_run(run_id):
    return [ns for ns in hosts.netns_names() if ns.startswith(run_id)]


def test_harness_smoke(net):
    db, smtp_host, work1, work2 = (net.add_host(n) for n in ("db", "smtp", "work1", "work2"))

    # Namespaces up, each with its address, loopback up, and a hostname of its own.
    assert set(_netns_of_run(net.run_id)) == {net.switch, *(h.ns for h in net.hosts.values())}
    for host in net.hosts.values():
        addresses = hosts.sh("ip", "-n", host.ns, "-br", "addr").stdout
        assert host.ip in addresses and re.search(r"^lo\s+UNKNOWN", addresses, re.M), addresses
        assert host.run(["cat", "/proc/sys/kernel/hostname"]).stdout.strip() == host.name
    assert net.client_ip in hosts.sh("ip", "-br", "addr", "show", net.client_veth).stdout

    # The database, from a worker host and from the client.
    pg = Postgres(db).start()
    assert pg.psql("SELECT 1", from_host=work1) == "1"
    assert pg.psql("SELECT current_database()") == "mail"

    # The SMTP sink, from a worker host, and a message from the client recorded with its sender.
    sink = SmtpSink(smtp_host).start()
    assert work1.connect(smtp_host.ip, sink.port) == "ok"
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.org", "smoke"
    message["Message-ID"], message["X-Test-Seq"] = "<smoke-1@example.org>", "7"
    message.set_content("hello")
    with smtplib.SMTP(smtp_host.ip, sink.port, timeout=10) as client:
        client.send_message(message)
    [delivery] = sink.deliveries()
    assert (delivery["request_id"], delivery["seq"], delivery["peer"]) == ("smoke-1", "7", net.client_ip)

    # A cut link cuts that host only, both ways; a restore restores it.
    assert hosts.probe(work1.ip, 9) == "refused"  # before the cut: the host answers, nothing listens
    work1.cut()
    assert work1.connect(db.ip, pg.port) in ("timeout", "unreachable")
    assert hosts.probe(work1.ip, 9, timeout=2) in ("timeout", "unreachable")
    assert work2.connect(db.ip, pg.port) == "ok"
    work1.restore()
    wait_until(lambda: work1.connect(db.ip, pg.port, timeout=1) == "ok", timeout=10, what="the link back")
    assert hosts.probe(work1.ip, 9) == "refused"
    assert pg.psql("SELECT 2", from_host=work1) == "2"

    # kill -9 kills every process of the host, and only that host's; a Popen's pid is the
    # process itself (every step of the prefix execs).
    sleepers = [work2.popen(["sleep", "1000"]) for _ in range(2)]
    wait_until(lambda: {p.pid for p in sleepers} <= set(work2.pids()), what="the sleepers")
    killed = work2.kill9()
    assert {p.pid for p in sleepers} <= set(killed)
    assert [p.wait(timeout=5) for p in sleepers] == [-signal.SIGKILL] * 2
    assert work2.pids() == []
    assert pg.proc.poll() is None and sink.proc.poll() is None
    assert pg.psql("SELECT 3", from_host=work1) == "3"

    # Leftovers of a run whose process is gone are removed; a living run's are not.
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{hosts.PREFIX}-{dead.pid}-abcdef-x"
    hosts.sh("ip", "netns", "add", stale)
    hosts.sh("ip", "netns", "exec", stale, "true")
    assert stale in hosts.cleanup_stale()
    assert stale not in hosts.netns_names()
    assert db.ns in hosts.netns_names()

    # close() leaves nothing: namespaces, the client's veth, temp dirs.
    net.close()
    assert _netns_of_run(net.run_id) == []
    assert hosts.sh("ip", "link", "show", net.client_veth, check=False).returncode != 0
    assert not pg.dir.exists() and not sink.dir.exists()


def test_stack_in_namespace(net, tmp_path):
    """A whole stack (nginx, mailfcgi, mailworkerd; the file queue) on one host, delivering to
    the sink on another, driven from the client: Stack's prefix and listen address at work."""
    box, smtp_host = net.add_host("box"), net.add_host("smtp")
    sink = SmtpSink(smtp_host).start()
    stack = Stack(tmp_path, {"SMTP_SERVER": smtp_host.ip, "PORT": str(sink.port), "SMTP_TLS": "none",
                             "WORKER_POLLING_INTERVAL": "1", "SHUTDOWN_TIMEOUT": "5"},
                  prefix=box.prefix(), host=box.ip, port=8443).start()
    try:
        assert {p.pid for p in stack.procs.values()} <= set(box.pids())
        ids = []
        for i in range(3):
            response = stack.post_email({"to_email": f"u{i}@example.com", "subject": f"s{i}", "body": "b",
                                         "headers": {"X-Test-Seq": str(i)}})
            assert response.status_code == 200, response.text
            ids.append(response.json()["request_id"])
        wait_until(lambda: set(ids) <= set(sink.counts()), timeout=20, what="the deliveries")
        assert {d["peer"] for d in sink.deliveries()} == {box.ip}
        wait_until(lambda: stack.request("GET", f"/email/{ids[0]}").json().get("state") == "sent",
                   what="the state sent")
    finally:
        assert set(stack.stop().values()) == {0}


# -- the shared queue ----------------------------------------------------------------------

EMAILS = 5000
LEASE = 3  # CLAIM_LEASE, seconds
WORKERS = 4  # NUM_WORKERS on each worker host
CUT = 2 * LEASE + 2  # the link cut lasts longer than a lease, so another host takes over
POST_THREADS = 16


@pytest.fixture
def cluster(tmp_path):
    c = MailCluster(tmp_path, env={
        "CLAIM_LEASE": str(LEASE), "NUM_WORKERS": str(WORKERS), "WORKER_POLLING_INTERVAL": "1",
        "SMTP_TIMEOUT": "30", "FCGI_THREADS": "8",
    }, smtp_delay=0.02)  # each send takes a moment: a fault always finds some in flight
    try:
        yield c.start()
    finally:
        c.close()
        print(f"logs: {tmp_path}/<host>/*.log (daemons), {tmp_path}/postgres.log, deliveries.jsonl")


def test_shared_queue_survives_host_faults(cluster):
    web_stacks = cluster.webs
    work1, work2, work3 = cluster.work_hosts
    faulted_ips = {work1.ip: "work1", work2.ip: "work2"}
    lock = threading.Lock()
    accepted = {}  # request id -> (seq, web host name)
    refused = []
    local = threading.local()
    posting_done = threading.Event()
    events = {}

    def post(i):
        web = web_stacks[i % 2]
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        payload = {"to_email": f"user{i}@example.com", "subject": f"multihost {i}",
                   "body": f"email {i}", "headers": {"X-Test-Seq": str(i)}}
        try:
            r = session.post(web.url("/email"), json=payload, auth=("demo", web.password),
                             verify=web.cert, timeout=30)
        except requests.RequestException as error:
            with lock:
                refused.append((i, web.host, repr(error)))
            return
        with lock:
            if r.status_code == 200:
                accepted[r.json()["request_id"]] = (i, web.host)
            else:
                refused.append((i, web.host, f"{r.status_code} {r.text[:200]}"))

    def count_accepted():
        with lock:
            return len(accepted)

    def from_host(ip):
        return [d for d in cluster.smtp.deliveries() if d["peer"] == ip]

    def inject_faults():
        # work1 is killed once a fifth is in, preferably while it is sending.
        wait_until(lambda: posting_done.is_set() or count_accepted() >= EMAILS // 5, timeout=120,
                   what="a fifth of the emails accepted")
        try:
            wait_until(lambda: from_host(work1.ip), timeout=10, interval=0.05)
        except AssertionError:
            pass  # nothing delivered by work1 yet; the test's checks will say why
        events["kill"] = time.time()
        events["killed"] = work1.kill9()
        # work2 is cut off, from the db and the relay, for longer than a lease.
        wait_until(lambda: posting_done.is_set() or count_accepted() >= 2 * EMAILS // 5, timeout=120,
                   what="two fifths of the emails accepted")
        events["cut"] = time.time()
        work2.cut()
        time.sleep(CUT)
        work2.restore()
        events["restore"] = time.time()

    fault_errors = []

    def faults():
        try:
            inject_faults()
        except BaseException as error:  # reported by the test, not lost in the thread
            fault_errors.append(error)

    started, started_wall = time.monotonic(), time.time()
    fault_thread = threading.Thread(target=faults, daemon=True)
    fault_thread.start()
    with ThreadPoolExecutor(POST_THREADS) as pool:
        list(pool.map(post, range(EMAILS)))
    posting_done.set()
    posted_in = time.monotonic() - started
    fault_thread.join(timeout=CUT + 60)
    assert not fault_thread.is_alive() and not fault_errors, fault_errors
    print(f"\nposted {EMAILS} in {posted_in:.1f}s: {len(accepted)} accepted, {len(refused)} refused; "
          f"work1 killed at +{events['kill'] - started_wall:.1f}s "
          f"(pids {events['killed']}), work2 cut for {events['restore'] - events['cut']:.1f}s")
    assert not refused, f"{len(refused)} POSTs failed, e.g. {refused[:5]}"

    # Every accepted email is delivered at least once.
    ids = set(accepted)
    deadline = time.monotonic() + 110
    first_check = time.monotonic()
    while True:
        counts = cluster.smtp.counts()
        missing = ids - set(counts)
        if not missing:
            break
        if not counts and time.monotonic() - first_check > 30:
            pytest.fail("no email was delivered at all within 30 s after posting: do the daemons "
                        "support QUEUE_STORE=postgres? (with a file queue each responder keeps its own "
                        "emails, which no worker host sees)")
        if time.monotonic() > deadline:
            by_web = Counter(accepted[i][1] for i in missing)
            pytest.fail(f"{len(missing)} of {len(ids)} accepted emails not delivered "
                        f"(by responder: {dict(by_web)}), e.g. {sorted(missing)[:5]}; "
                        f"deliveries by host: {_by_host(cluster)}")
        time.sleep(0.5)
    print(f"all delivered {time.monotonic() - started:.1f}s after the first POST; by host: {_by_host(cluster)}")

    deliveries = cluster.smtp.deliveries()
    copies = defaultdict(list)
    for d in deliveries:
        copies[d["request_id"]].append(d)
    unknown = set(copies) - ids
    print(f"deliveries of ids never accepted: {len(unknown)} {sorted(unknown)[:5]}")

    # Duplicates: reported, and only from the faulted hosts' sends in flight.
    duplicates = {rid: c for rid, c in copies.items() if len(c) > 1 and rid in ids}
    extra = sum(len(c) - 1 for c in duplicates.values())
    print(f"duplicates: {len(duplicates)} emails, {extra} extra deliveries")
    for rid, cs in sorted(duplicates.items()):
        hops = ", ".join(f"{_host_name(cluster, d['peer'])}@+{d['time'] - events['kill']:.2f}s" for d in cs)
        print(f"  {rid} seq {accepted[rid][0]}: {hops} (times relative to the kill)")
    assert extra <= 2 * WORKERS, f"{extra} extra deliveries; at most one per worker of work1 and work2"
    for rid, cs in duplicates.items():
        assert {d["peer"] for d in cs} & set(faulted_ips), \
            f"{rid} was delivered {len(cs)} times, none by a faulted host: {cs}"

    # The faults were real: nothing from work1 after its kill, nothing from work2 while cut.
    late = [d for d in from_host(work1.ip) if d["time"] > events["kill"] + 0.5]
    assert not late, f"work1 delivered after kill -9: {late[:3]}"
    while_cut = [d for d in from_host(work2.ip) if events["cut"] + 1 < d["time"] < events["restore"]]
    assert not while_cut, f"work2 delivered while cut off: {while_cut[:3]}"
    assert from_host(work3.ip), "work3 delivered nothing"

    # The state is shared: each responder reports emails the other accepted as sent.
    sample = random.Random(1).sample(sorted(ids), 20) + sorted(duplicates)
    for rid in sample:
        other = web_stacks[1] if accepted[rid][1] == web_stacks[0].host else web_stacks[0]
        wait_until(lambda: other.request("GET", f"/email/{rid}").json().get("state") == "sent",
                   timeout=10, what=f"{rid} sent, seen from {other.host}")

    # /workers/status through web1 shows the worker hosts that are alive.
    response = web_stacks[0].request("GET", "/workers/status")
    assert response.status_code == 200, response.text
    print(f"/workers/status: {response.text[:2000]}")
    for host in (work2, work3):
        assert re.search(rf"\b({host.name}|{re.escape(host.ip)})\b", response.text), \
            f"/workers/status does not name {host.name} ({host.ip})"


def _host_name(cluster, ip):
    host = cluster.net.host_by_ip(ip)
    return host.name if host else ip


def _by_host(cluster):
    return dict(Counter(_host_name(cluster, d["peer"]) for d in cluster.smtp.deliveries()))
