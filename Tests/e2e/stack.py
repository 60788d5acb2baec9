"""Starts the real stack for a test: nginx (TLS, basic auth) -> mailfcgi -> queue -> mailworkerd."""
import json
import os
import pwd
import random
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

import postgres

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("BIN_DIR", ROOT / ".build" / "debug"))
# The relay's settings: given to mailworkerd only, as the units and `make run` do.
RELAY_SETTINGS = {"SMTP_SERVER", "PORT", "PASSWORD", "SMTP_USERNAME", "SMTP_TLS", "SMTP_CA_FILE",
                  "SMTP_TLS_VERIFY", "SMTP_CONNECT_TIMEOUT", "SMTP_TIMEOUT",
                  "DKIM_DOMAIN", "DKIM_SELECTOR", "DKIM_PRIVATE_KEY_FILE"}


def _port_range():
    """This process's own slice of the ports below the kernel's ephemeral range: pytest-xdist's
    workers never hand out the same port, and no client connection takes one as its source
    port between the test choosing it and a server binding it."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral = int(f.read().split()[0])
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...; unset without xdist
    index = int(re.sub(r"\D", "", worker)) + 1 if worker else 0
    slices = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")) + 1
    low = 10000
    size = (ephemeral - low) // slices
    return range(low + index * size, low + (index + 1) * size)


_PORTS = _port_range()
_next_port = random.randrange(len(_PORTS))  # another suite running beside this one starts elsewhere


def free_port():
    """A port nothing listens on, from this process's slice (ports just used are skipped:
    a listener still in TIME_WAIT fails the probe)."""
    global _next_port
    for _ in range(len(_PORTS)):
        port = _PORTS[_next_port % len(_PORTS)]
        _next_port += 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {_PORTS}")


def listening(path):
    """Whether a process accepts connections on the unix socket at `path`. The file appears at
    bind(2), a moment before listen(2): a connection in between is refused."""
    import socket as sockets
    with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Store:
    """Where the daemons keep the emails: `file` (data/queue and the folders beside it) or
    `postgres` (`database_url`, a database of the test's own: the `store` fixture)."""

    def __init__(self, name, database_url=None):
        self.name = name
        self.database_url = database_url

    def __repr__(self):
        return f"Store({self.name!r})"

    @property
    def env(self):
        """The settings that choose this store, for every daemon and mailctl."""
        if self.name == "file":
            return {"QUEUE_STORE": "file"}
        return {"QUEUE_STORE": "postgres", "DATABASE_URL": self.database_url}

    def claim_timeout(self, seconds):
        """The setting after which a claim still held by a living worker is taken back
        (`CLAIM_TIMEOUT` on both stores; the database store also has its leases)."""
        return {"CLAIM_TIMEOUT": str(seconds)}  # the same for both stores: a lease renewed while sending is still put back


# The file store's folders under data/ (the queue and what the store keeps beside it: dead
# letters, finished emails, suppressions, webhook events, idempotency keys).
FILE_STORE_FOLDERS = {"queue", "dead_letter", "trash", "corrupt", "held", "suppressions", "events", "idempotency"}


class Stack:
    """One running stack in its own directory; `env` holds the daemons' settings, `store`
    says where they keep the emails (the `store` fixture's; by default the one `env` names).

    `prefix` is put before every command the stack runs (nginx and the daemons), and `host`
    is the address nginx listens on and the tests connect to: the multi-host tests
    (`hosts.py`) run a stack's processes in a network namespace with
    `prefix=["ip", "netns", "exec", NAME, ...]` and the namespace's address. The prefix must
    exec its command (as `ip netns exec` does), so that the Popen's pid is the daemon's and
    `stop_daemon` signals the daemon itself. `port` defaults to a free port on this host."""

    def __init__(self, base: Path, env: dict, store: Store = None, prefix=(), host="127.0.0.1", port=None):
        self.base = base
        if store is None:
            named = env.get("QUEUE_STORE", "file")
            store = Store(named, env.get("DATABASE_URL") if named == "postgres" else None)
        self.store = store
        self.run_dir = base / "run"
        self.data = base / "data"
        self.prefix = [str(part) for part in prefix]
        self.host = host
        self.port = port or free_port()
        self.socket = self.run_dir / "mailfcgi.sock"
        self.password = "test-password-1"
        self.env = {
            **os.environ,
            "DATA_DIR": str(self.data),
            "FCGI_SOCKET": str(self.socket),
            "FCGI_THREADS": "4",
            "SENDER_EMAIL": "dispatch@example.org",
            "LOG_DIR": str(base / "logs"),
            "LOG_STDERR": "true",  # the tests read each daemon's output
            **store.env,
            **env,
        }
        self.procs = {}

    @property
    def max_body_bytes(self):
        """nginx's body limit: MAX_BODY_BYTES, else what mailfcgi derives from MAX_MESSAGE_BYTES."""
        if "MAX_BODY_BYTES" in self.env:
            return int(self.env["MAX_BODY_BYTES"])
        return int(self.env.get("MAX_MESSAGE_BYTES", 10 << 20)) // 3 * 4 + (1 << 20)

    @property
    def cert(self):
        """The stack's self-signed certificate, trusted explicitly (names 127.0.0.1 and `host`)."""
        return str(self.run_dir / "tls" / "cert.pem")

    # -- lifecycle ---------------------------------------------------------------------

    DAEMONS = ("mailfcgi", "mailworkerd", "nginx")

    def start(self, daemons=DAEMONS):
        """Starts `daemons` (all three by default) in this order: mailfcgi, mailworkerd, nginx.
        A multi-host test starts only nginx and mailfcgi on a responder host and only
        mailworkerd on a worker host. When one fails to come up, stops the others (a test
        that fails here leaves nothing running)."""
        unknown = set(daemons) - set(self.DAEMONS)
        assert not unknown, f"unknown daemons {unknown}"
        self.base.mkdir(parents=True, exist_ok=True)
        if "nginx" in daemons:
            subprocess.run(
                [ROOT / "scripts" / "prepare-run-dir.sh", self.run_dir, str(self.port), self.socket,
                 str(self.max_body_bytes)],
                check=True, capture_output=True,
                # Tests drive the API faster than a client should: the limit is theirs to set.
                env={**os.environ, "MAIL_DEMO_PASSWORD": self.password, "MAIL_LISTEN_ADDRESS": self.host,
                     "MAIL_RATE_LIMIT": self.env.get("MAIL_RATE_LIMIT", "100000"),
                     "MAIL_RATE_BURST": self.env.get("MAIL_RATE_BURST", "100000")})
        try:
            if "mailfcgi" in daemons:
                self.start_daemon("mailfcgi")
                wait_until(lambda: listening(self.socket), what="the FastCGI socket")
            if "mailworkerd" in daemons:
                self.start_daemon("mailworkerd")
                wait_until((self.data / "status" / "workers.json").exists, what="the worker's status file")
            if "nginx" in daemons:
                self.procs["nginx"] = subprocess.Popen(
                    [*self.prefix, "nginx", "-c", self.run_dir / "nginx.conf", "-e", self.run_dir / "nginx-error.log",
                     "-g", "daemon off;"], cwd=self.base)
                wait_until(self._answers, what="nginx to answer")
            if self.store.name == "postgres" and "mailfcgi" in daemons:
                assert postgres.tables(self.store.database_url), (
                    "the daemons made no table in DATABASE_URL: they do not use the postgres store")
        except BaseException:
            self.stop()
            raise
        return self

    def start_daemon(self, name, instance=None, user=None):
        """Starts a daemon; `instance` names a second copy (log `{name}-{instance}.log`);
        `user` runs it as that user (and its primary group) instead of the test's (not with a
        `prefix`: `ip netns exec` needs root)."""
        assert not (user and self.prefix), "user= with a prefix: put the change of user in the prefix"
        key = f"{name}-{instance}" if instance else name
        log = open(self.base / f"{key}.log", "ab")
        as_user = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []} if user else {}
        env = self.env if name == "mailworkerd" else {
            k: v for k, v in self.env.items() if k not in RELAY_SETTINGS}
        self.procs[key] = subprocess.Popen(
            [*self.prefix, BIN_DIR / name, "--env-file", self.base / ".env"], cwd=self.base, env=env,
            stdout=log, stderr=subprocess.STDOUT, **as_user)

    def stop_daemon(self, name, sig=signal.SIGTERM, timeout=30):
        """Signals a process and returns its exit status."""
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        return proc.wait(timeout=timeout)

    def stop(self):
        codes = {}
        for name in list(self.procs):
            codes[name] = self.stop_daemon(name)
        return codes

    def _answers(self):
        try:
            requests.get(self.url("/health"), verify=self.cert, timeout=1)
            return True
        except requests.ConnectionError:
            return False

    # -- HTTP --------------------------------------------------------------------------

    def url(self, path):
        return f"https://{self.host}:{self.port}{path}"

    def request(self, method, path, auth=True, **kwargs):
        if auth is True:
            kwargs["auth"] = ("demo", self.password)
        elif auth:
            kwargs["auth"] = auth
        kwargs.setdefault("timeout", 10)
        return requests.request(method, self.url(path), verify=self.cert, **kwargs)

    def post_email(self, payload, **kwargs):
        return self.request("POST", "/email", json=payload, **kwargs)

    # -- files -------------------------------------------------------------------------

    def files(self, folder):
        """The files (not folders) in data/`folder`; claims are in data/queue/active."""
        assert self.store.name == "file" or folder.split("/")[0] not in FILE_STORE_FOLDERS, (
            f"data/{folder} is the file store's: mark the test file_store, or ask the API (counts())")
        path = self.data / folder
        return sorted(p.name for p in path.iterdir() if p.is_file()) if path.exists() else []

    # -- the store, through the API and mailctl (either store) ---------------------------

    def counts(self):
        """The queue's counts as GET /status gives them: `pending`, `deferred` (with the
        scheduled), `processing` (claimed), `dead_letter`, `trash` (finished), `corrupt`, and
        `waiting`: pending and deferred, what data/queue holds in the file store."""
        body = self.request("GET", "/status").json()
        return {**body["queue"], "waiting": body["pending_emails"]}

    def lookup(self, request_id):
        """GET /email/{request_id}: the email and where it stands (it must be found)."""
        answer = self.request("GET", f"/email/{request_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def mailctl(self, *args, input=None, env=None):
        """Runs mailctl on this stack's store, with the daemons' settings."""
        return subprocess.run([BIN_DIR / "mailctl", *args], cwd=self.base, env={**self.env, **(env or {})},
                              capture_output=True, text=True, input=input, timeout=120)

    def mailctl_json(self, *args):
        result = self.mailctl(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def record(self, request_id):
        """`mailctl show --json`: the state, the dead letter's reason and kind, and the email as
        the store keeps it (the file queue's JSON: attempts, attachments, headers...)."""
        return self.mailctl_json("show", request_id)

    def log(self, name):
        return (self.base / f"{name}.log").read_text(errors="replace")
