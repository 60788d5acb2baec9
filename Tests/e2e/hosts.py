"""A multi-host harness for the e2e tests: "hosts" as Linux network namespaces on one private
bridge, so several copies of the daemons talk over real TCP to a shared PostgreSQL and an SMTP
sink, and a test can kill a host or cut its link the way a machine or a switch port fails.

Layout (needs root and iproute2; no netem: this kernel has none, and none is needed):

    root namespace (the test, the client)          switch namespace `{run}-sw`
      veth `{prefix}{hex}` 10.77.N.1/24  <------>  `v-root` --+
                                                              br0 (bridge)
      host namespace `{run}-{name}`                           |
        lo, eth0 10.77.N.{10+i}/24       <------>  `v-{name}` -+   one veth pair per host

- The bridge lives in a namespace of its own, so the machine's networking gains exactly one
  interface and one connected route (the client's), and deleting the switch namespace takes
  every veth pair with it.
- `N` is picked per run among the 10.77.0.0/16 /24s no route of the root namespace overlaps
  (under a lock file), so parallel runs never share a subnet; every name carries the run id
  `{prefix}-{pid}-{hex}`, so they never share a name either.
- Every process a host runs is started through `Host.prefix()`: `ip netns exec`, then a UTS
  namespace of its own whose hostname is the host's name (`work1`...), so a daemon that names
  itself by hostname is told apart from the other hosts, as on separate machines. Each piece
  of the prefix execs the next (no fork), so a Popen's pid is the daemon's own.
- Faults: `Host.kill9()` is `ip netns pids NS | xargs kill -9` (every process of the host at
  once, a power cut of that machine); `Host.cut()` sets the bridge side of its veth down (the
  host's packets are dropped both ways, its TCP connections see silence, not resets, like a
  pulled cable), `Host.restore()` sets it up again.
- Cleanup: `Net.close()` (fixture finalizer, and atexit for whatever escapes) kills each
  namespace's processes, then deletes the namespaces and the run's temp dirs. A run killed
  outright (kill -9, no atexit) leaves them behind: every `Net()` first removes those of runs
  whose pid is gone (`cleanup_stale`).

Filesystems are shared: unix sockets (mailfcgi's FastCGI socket) work across namespaces by
path, so each host keeps its own in its own run dir; only TCP goes through the bridge.

Built from these: `Postgres` (a private server on the `db` host), `SmtpSink` (smtp_sink.py
on the `smtp` host) and `MailCluster` (db, smtp, responder hosts running nginx + mailfcgi,
worker hosts running mailworkerd, each a `stack.Stack` with the host's prefix).
"""
import atexit
import fcntl
import glob
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from stack import Stack, wait_until

HERE = Path(__file__).resolve().parent
PREFIX = "mdt"  # "mail-dispatch test": every namespace, interface and temp dir of ours starts with it
SUPERNET = ipaddress.ip_network("10.77.0.0/16")
LOCK_FILE = Path(tempfile.gettempdir()) / f"{PREFIX}-netns.lock"


def sh(*cmd, check=True, **kwargs):
    """Runs a command, its output captured; raises with stderr on failure."""
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def netns_names():
    """Names of the named network namespaces (`ip netns list` adds ` (id: N)`)."""
    out = sh("ip", "netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(ns):
    """Pids of every process in namespace `ns` (zombies have left it)."""
    result = sh("ip", "netns", "pids", ns, check=False)
    return [int(p) for p in result.stdout.split()] if result.returncode == 0 else []


def kill_netns_processes(ns, sig=signal.SIGKILL, timeout=5.0):
    """Signals every process in `ns` and, for SIGKILL, waits until none is left."""
    pids = netns_pids(ns)
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    if sig == signal.SIGKILL:
        deadline = time.monotonic() + timeout
        while netns_pids(ns) and time.monotonic() < deadline:
            time.sleep(0.02)
    return pids


def _pid_alive(pid):
    return Path(f"/proc/{pid}").exists()


def cleanup_stale(prefix=PREFIX):
    """Removes the namespaces and temp dirs of earlier runs with this prefix whose process is
    gone (killed before its finalizers ran). Runs of living processes (parallel runs) are left
    alone. Returns the namespaces removed."""
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)-[0-9a-f]+(-|$)")
    removed = []
    for ns in netns_names():
        match = pattern.match(ns)
        if match and not _pid_alive(int(match.group(1))):
            kill_netns_processes(ns)
            sh("ip", "netns", "delete", ns, check=False)
            removed.append(ns)
    for path in glob.glob(os.path.join(tempfile.gettempdir(), f"{prefix}-*")):
        match = pattern.match(os.path.basename(path))
        if match and not _pid_alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
    return removed


class Host:
    """One namespace on the bridge: `name` (also its hostname), `ns`, `ip`, and `veth`, the
    bridge side of its link (in the switch namespace)."""

    def __init__(self, net, name, ns, ip):
        self.net, self.name, self.ns, self.ip = net, name, ns, ip
        self.veth = f"v-{name}"

    def __repr__(self):
        return f"Host({self.name}, {self.ip})"

    def prefix(self, user=None):
        """The command prefix running a command on this host (as `user`, when given: setpriv
        changes user after ip netns exec, which needs root, has entered the namespace)."""
        prefix = ["ip", "netns", "exec", self.ns, "unshare", "--uts", "--",
                  "sh", "-c", 'echo "$0" > /proc/sys/kernel/hostname && exec "$@"', self.name]
        if user:
            prefix += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
        return prefix

    def run(self, cmd, user=None, check=True, **kwargs):
        return sh(*self.prefix(user), *cmd, check=check, **kwargs)

    def popen(self, cmd, user=None, **kwargs):
        return subprocess.Popen([*self.prefix(user), *map(str, cmd)], **kwargs)

    def pids(self):
        return netns_pids(self.ns)

    def kill9(self):
        """kill -9 of every process on the host at once; returns the pids killed."""
        return kill_netns_processes(self.ns, signal.SIGKILL)

    def cut(self):
        """Cuts the host off the bridge: its packets are dropped both ways from now on."""
        sh("ip", "-n", self.net.switch, "link", "set", self.veth, "down")

    def restore(self):
        sh("ip", "-n", self.net.switch, "link", "set", self.veth, "up")

    def connect(self, ip, port, timeout=2.0):
        """`probe(ip, port)` from this host (in a process of its own: a thread could enter the
        namespace too, but a process cannot leave the test's threads in the wrong one)."""
        code = f"import hosts; print(hosts.probe({ip!r}, {int(port)}, {float(timeout)}))"
        return self.run([sys.executable, "-c", code], cwd=HERE, timeout=timeout + 10).stdout.strip()


class Net:
    """The bridge, its subnet and its hosts; `close()` removes everything (idempotent)."""

    def __init__(self, prefix=PREFIX):
        cleanup_stale(prefix)
        self.prefix = prefix
        self.run_id = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
        self.switch = f"{self.run_id}-sw"
        self.hosts = {}
        self.tempdirs = []
        self.closed = False
        atexit.register(self.close)
        try:
            sh("ip", "netns", "add", self.switch)
            self._in_switch("link", "set", "lo", "up")
            self._in_switch("link", "add", "br0", "type", "bridge")
            self._in_switch("link", "set", "br0", "up")
            self.client_veth = f"{prefix}{secrets.token_hex(4)}"  # root side: 11 of 15 characters
            with open(LOCK_FILE, "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # two runs must not pick the same subnet
                self.subnet = self._free_subnet()
                sh("ip", "link", "add", self.client_veth, "type", "veth", "peer", "name", "v-root",
                   "netns", self.switch)
                sh("ip", "addr", "add", f"{self.address(1)}/{self.subnet.prefixlen}", "dev", self.client_veth)
            sh("ip", "link", "set", self.client_veth, "up")
            self._in_switch("link", "set", "v-root", "master", "br0", "up")
        except BaseException:
            self.close()
            raise

    def _in_switch(self, *args):
        return sh("ip", "-n", self.switch, *args)

    @staticmethod
    def _free_subnet():
        """The first 10.77.N.0/24 that no route of the root namespace (any table) overlaps."""
        used = []
        for line in sh("ip", "-4", "-o", "route", "show", "table", "all").stdout.splitlines():
            # "DST ..." or "TYPE DST ..." (local, broadcast, unreachable, blackhole, ...)
            for word in line.split()[:2]:
                try:
                    used.append(ipaddress.ip_network(word, strict=False))
                    break
                except ValueError:
                    continue
        for subnet in SUPERNET.subnets(new_prefix=24):
            if not any(subnet.overlaps(u) for u in used):
                return subnet
        raise RuntimeError(f"no free /24 in {SUPERNET}")

    def address(self, n):
        return str(self.subnet.network_address + n)

    @property
    def client_ip(self):
        """The root namespace's address on the bridge: the test's client."""
        return self.address(1)

    def add_host(self, name):
        """A new host: namespace, loopback up, a veth pair to the bridge, the next address."""
        assert re.fullmatch(r"[a-z][a-z0-9]{0,12}", name) and name not in self.hosts, name
        ns = f"{self.run_id}-{name}"
        host = Host(self, name, ns, self.address(10 + len(self.hosts)))
        sh("ip", "netns", "add", ns)
        self.hosts[name] = host
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        self._in_switch("link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self._in_switch("link", "set", host.veth, "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{host.ip}/{self.subnet.prefixlen}", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        return host

    def host_by_ip(self, ip):
        return next((h for h in self.hosts.values() if h.ip == ip), None)

    def tempdir(self, label):
        """A temp dir outside pytest's (whose parents are mode 700, closed to an unprivileged
        server), named by the run so that a stale cleanup finds it."""
        path = Path(tempfile.mkdtemp(prefix=f"{self.run_id}-{label}-"))
        path.chmod(0o755)
        self.tempdirs.append(path)
        return path

    def close(self):
        if self.closed:
            return
        self.closed = True
        namespaces = [h.ns for h in self.hosts.values()] + [self.switch]
        for ns in namespaces:  # a moment to exit cleanly (postgres, nginx), then none
            kill_netns_processes(ns, signal.SIGTERM)
        deadline = time.monotonic() + 3
        while any(netns_pids(ns) for ns in namespaces) and time.monotonic() < deadline:
            time.sleep(0.05)
        for ns in namespaces:
            kill_netns_processes(ns, signal.SIGKILL)
            sh("ip", "netns", "delete", ns, check=False)
        # The switch namespace took the root side's veth with it; this is for a failed start.
        sh("ip", "link", "delete", getattr(self, "client_veth", "-"), check=False)
        for path in self.tempdirs:
            shutil.rmtree(path, ignore_errors=True)


# -- servers on hosts ------------------------------------------------------------------------

def postgres_bin():
    """Debian's PostgreSQL binaries, installing the package when they are missing."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        sh("apt-get", "update", "-qq", env=env)
        sh("apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql", env=env)
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent


class Postgres:
    """A private PostgreSQL server on `host`, for the queue store. It runs as the unprivileged
    `user` (postgres refuses root), from a cluster initdb makes in a temp dir, listening on the
    host's address only, with trust for the bridge's subnet (a throwaway server on a private
    subnet; md5 would test nothing here). fsync is off: the tests kill the daemons, never the
    database, and the store's durability is not what they measure."""

    def __init__(self, host, port=5432, database="mail", user="postgres"):
        self.host, self.port, self.database, self.user = host, port, database, user
        self.bin = postgres_bin()
        self.dir = host.net.tempdir("pg")
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.proc = None

    @property
    def url(self):
        """The libpq URI the daemons get as DATABASE_URL."""
        return f"postgresql://{self.user}@{self.host.ip}:{self.port}/{self.database}"

    def start(self):
        uid = int(sh("id", "-u", self.user).stdout)
        gid = int(sh("id", "-g", self.user).stdout)
        os.chown(self.dir, uid, gid)
        self.host.run([self.bin / "initdb", "-D", self.data, "-U", self.user, "--auth=trust",
                       "-E", "UTF8", "--no-sync", "--no-instructions"], user=self.user)
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all all {self.host.net.subnet} trust\n"
            "host all all 127.0.0.1/32 trust\n")
        log = open(self.log, "ab")
        self.proc = self.host.popen(
            [self.bin / "postgres", "-D", self.data, "-k", self.dir, "-p", self.port,
             "-c", f"listen_addresses={self.host.ip}", "-c", "max_connections=300",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            user=self.user, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.proc.poll() is not None or sh(
            self.bin / "pg_isready", "-q", "-h", self.host.ip, "-p", self.port, check=False).returncode == 0,
            timeout=30, interval=0.2, what="postgres to accept connections")
        assert self.proc.poll() is None, f"postgres exited: {self.log.read_text(errors='replace')[-2000:]}"
        self.psql(f"CREATE DATABASE {self.database}", database="postgres")
        return self

    def psql(self, sql, from_host=None, database=None):
        """Runs `sql` with psql from `from_host` (default: the test's own namespace, which is
        on the bridge too); returns its unaligned output."""
        url = f"postgresql://{self.user}@{self.host.ip}:{self.port}/{database or self.database}"
        cmd = [self.bin / "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql]
        env = {**os.environ, "PGCONNECT_TIMEOUT": "5"}
        result = from_host.run(cmd, env=env, timeout=30) if from_host else sh(*cmd, env=env, timeout=30)
        return result.stdout.strip()


class SmtpSink:
    """smtp_sink.py on `host`: accepts every message and records each delivery (time, sending
    host's address, Message-ID, request id, X-Test-Seq) as a JSON line in `record`."""

    def __init__(self, host, port=2525, delay=0.0):
        self.host, self.port, self.delay = host, port, delay
        self.dir = host.net.tempdir("smtp")
        self.record = self.dir / "deliveries.jsonl"
        self.proc = None

    def start(self):
        self.record.touch()
        log = open(self.dir / "smtp_sink.log", "ab")
        self.proc = self.host.popen(
            [sys.executable, HERE / "smtp_sink.py", "--host", self.host.ip, "--port", self.port,
             "--record", self.record, "--delay", self.delay], stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.proc.poll() is not None or _connects(self.host.ip, self.port),
                   timeout=20, interval=0.1, what="the SMTP sink")
        assert self.proc.poll() is None, (self.dir / "smtp_sink.log").read_text(errors="replace")
        return self

    def deliveries(self):
        """Every delivery so far, in arrival order (a line still being written is skipped)."""
        out = []
        for line in self.record.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def counts(self):
        """Deliveries per request id."""
        return Counter(d["request_id"] for d in self.deliveries())


def probe(ip, port, timeout=2.0):
    """Tries a TCP connection; "ok", "refused" (the host answered: nothing listens),
    "timeout" or "unreachable" (no answer: a cut link shows as one or the other, depending on
    whether the neighbour's address was still cached)."""
    try:
        socket.create_connection((ip, port), timeout=timeout).close()
        return "ok"
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "unreachable"


def _connects(ip, port, timeout=0.5):
    return probe(ip, port, timeout) == "ok"


# -- the mail service on several hosts -------------------------------------------------------

class MailCluster:
    """db (PostgreSQL), smtp (the sink), responder hosts `web1..` (nginx + mailfcgi) and worker
    hosts `work1..` (mailworkerd), each host with its own base dir under `base` (its DATA_DIR
    holds its logs and status files), all sharing the queue in the database through `env`
    (QUEUE_STORE, DATABASE_URL and the rest; given to every daemon).

    The responders' nginx listens on their bridge address (`Stack(host=...)`, a certificate
    naming it) and reaches its mailfcgi over the unix socket in its own run dir."""

    def __init__(self, base, env=None, webs=2, workers=3, smtp_delay=0.0, store_env=True):
        self.base = Path(base)
        self.extra_env = dict(env or {})
        self.store_env = store_env
        self.net = Net()
        self.db_host = self.net.add_host("db")
        self.smtp_host = self.net.add_host("smtp")
        self.web_hosts = [self.net.add_host(f"web{i + 1}") for i in range(webs)]
        self.work_hosts = [self.net.add_host(f"work{i + 1}") for i in range(workers)]
        self.db = Postgres(self.db_host)
        self.smtp = SmtpSink(self.smtp_host, delay=smtp_delay)
        self.stacks = {}

    @property
    def env(self):
        """The daemons' settings: the store's (when `store_env`), the relay (the sink), then
        the caller's."""
        env = {"SMTP_SERVER": self.smtp_host.ip, "PORT": str(self.smtp.port), "SMTP_TLS": "none",
               "SHUTDOWN_TIMEOUT": "5"}
        if self.store_env:
            env.update(QUEUE_STORE="postgres", DATABASE_URL=self.db.url)
        return {**env, **self.extra_env}

    def start(self):
        self.db.start()
        self.smtp.start()
        for host in self.web_hosts:
            self.stacks[host.name] = Stack(self.base / host.name, self.env, prefix=host.prefix(),
                                           host=host.ip, port=8443).start(daemons=("mailfcgi", "nginx"))
        for host in self.work_hosts:
            self.stacks[host.name] = Stack(self.base / host.name, self.env, prefix=host.prefix(),
                                           host=host.ip).start(daemons=("mailworkerd",))
        return self

    @property
    def webs(self):
        return [self.stacks[h.name] for h in self.web_hosts]

    def host(self, name):
        return self.net.hosts[name]

    def close(self):
        """Stops every stack (SIGTERM, as a clean shutdown), then removes the hosts."""
        try:
            for stack in self.stacks.values():
                for name, proc in list(stack.procs.items()):
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            for stack in self.stacks.values():
                for proc in stack.procs.values():
                    try:
                        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        pass
        finally:
            # The database's log and the sink's record live in temp dirs close() removes.
            for path in (self.db.log, self.smtp.record, self.smtp.dir / "smtp_sink.log"):
                if path.exists():
                    shutil.copy(path, self.base / path.name)
            self.net.close()
            for stack in self.stacks.values():
                for proc in stack.procs.values():
                    proc.wait()
            for proc in (self.db.proc, self.smtp.proc):
                if proc:
                    proc.wait()
