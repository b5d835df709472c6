"""Local services on request (issue 12): unix sockets by path, host ports and
published ports.

- network.allowUnixSockets: every connect() of the command is performed by
  the supervisor (src/sandbox/unixsock.c). A listed socket answers, even one
  the sandbox cannot see (ssh-agent's socket in the host's /tmp); a socket
  the sandbox bound itself answers wherever it is (/tmp, the workspace,
  abstract); every other pathname socket, in a visible place (the
  workspace, /run) or reached through a symlink, fails with EACCES and a
  unix.connect record. The address is read once: a thread that flips it
  between an allowed and an unlisted socket never reaches the unlisted one.
- network.hostPorts: `localhost:PORT` inside reaches the host's loopback
  port, through the supervisor (net.connect, via hostPort); another port of
  the host's loopback is unreachable, directly and through the proxy.
- network.publishPorts: a server the command starts inside answers on the
  host's loopback (net.accept, via publish).
- `ssh-add -l` lists the agent's key and `git commit -S` signs through
  gpg-agent when their sockets are listed.

Every server is started by the test as the test's user (root, or uid 65534
through setpriv) and stopped at teardown; nothing is left on the host.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from conftest import is_root
from helpers import PY, wait_for

# Inside the sandbox: each operation of argv[1] (JSON), one result each.
CLIENT = r'''
import errno, json, os, socket, sys

def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno))

out = []
for op in json.loads(sys.argv[1]):
    try:
        kind = op[0]
        if kind == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            a = op[1]
            s.connect("\0" + a[1:] if a.startswith("@") else a)
            out.append(["OK", s.recv(200).decode()])
        elif kind == "tcp":  # host, port: the first line of an HTTP answer
            s = socket.create_connection((op[1], op[2]), timeout=10)
            s.sendall(b"GET /" + op[3].encode() + b" HTTP/1.0\r\nHost: x\r\n\r\n")
            got = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
            head, _, body = got.partition(b"\r\n\r\n")
            out.append(["OK", head.split(b"\r\n")[0].decode() + " " + body.decode()])
        elif kind == "proxy":  # an absolute-form request through cordon's proxy
            s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                       % op[1]).encode())
            got = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
            out.append(["OK", got.split(b"\r\n")[0].decode()])
        elif kind == "socket":  # family, type: can it be made?
            fam = getattr(socket, op[1])
            typ = getattr(socket, op[2])
            socket.socket(fam, typ).close()
            out.append(["OK", None])
        elif kind == "socketpair":
            a, b = socket.socketpair(socket.AF_UNIX, getattr(socket, op[1]))
            a.close()
            b.close()
            out.append(["OK", None])
        elif kind == "symlink":
            os.symlink(op[1], op[2])
            out.append(["OK", None])
        elif kind == "unlink":
            os.unlink(op[1])
            out.append(["OK", None])
        else:
            raise SystemExit("client: unknown op " + kind)
    except OSError as e:
        out.append([ename(e) if e.errno else repr(e), None])
print(json.dumps(out))
'''

# Inside the sandbox: its own unix servers (a path in /tmp, one in the
# workspace, an abstract name), then a client for each, as CLIENT does.
OWN = r'''
import json, os, socket, sys, threading

def serve(addr, tag):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(addr)
    s.listen(8)
    def loop():
        while True:
            c, _ = s.accept()
            c.sendall(tag.encode())
            c.close()
    threading.Thread(target=loop, daemon=True).start()

serve("/tmp/own.sock", "own-tmp")
serve("own-ws.sock", "own-ws")
serve("\0cordon-it-own", "own-abstract")
os.symlink("/tmp/own.sock", "own-link.sock")
out = []
for a in ["/tmp/own.sock", "own-ws.sock", os.getcwd() + "/own-ws.sock", "./own-link.sock",
          "\0cordon-it-own"]:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(10)
    try:
        c.connect(a)
        out.append(["OK", c.recv(100).decode()])
    except OSError as e:
        out.append([e.errno, None])
os.unlink("own-ws.sock")
os.unlink("own-link.sock")
print(json.dumps(out))
'''

# Inside the sandbox: one thread rewrites the address in place between an
# allowed socket and an unlisted one while the main thread connects with it
# again and again (the kernel reads the address from the caller's memory).
# Prints what the connections answered.
RACE = r'''
import ctypes, json, socket, sys, threading

allowed, secret = sys.argv[1].encode(), sys.argv[2].encode()
assert len(allowed) == len(secret)
libc = ctypes.CDLL(None, use_errno=True)

class SUN(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("path", ctypes.c_char * 108)]

addr = SUN(socket.AF_UNIX, allowed)
stop = False

def flip():
    while not stop:
        addr.path = secret
        addr.path = allowed

t = threading.Thread(target=flip)
t.start()
seen = {}
for i in range(1500):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    r = libc.connect(s.fileno(), ctypes.byref(addr), 2 + len(allowed) + 1)
    key = "refused:%d" % ctypes.get_errno() if r else s.recv(100).decode()
    seen[key] = seen.get(key, 0) + 1
    s.close()
stop = True
t.join()
print(json.dumps(seen))
'''

# On the host, as the test's user: a unix server for each path of argv[1:]
# that answers "TAG:basename" and closes; "READY" on stdout when all listen.
UNIX_SERVER = r'''
import os, socket, sys, threading
tag = sys.argv[1]
def serve(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(64)
    def loop():
        while True:
            c, _ = s.accept()
            try:
                c.sendall(("%s:%s" % (tag, os.path.basename(path))).encode())
            except OSError:
                pass
            c.close()
    threading.Thread(target=loop, daemon=True).start()
for p in sys.argv[2:]:
    serve(p)
print("READY", flush=True)
sys.stdin.read()
'''


def settings(sb, obj):
    return sb.settings(obj, name="settings-%d.json" % time.monotonic_ns())


def records(path, event=None):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    return [r for r in recs if event is None or r["event"] == event]


def client(sb, ops, *opts, env=None):
    p = sb.run(*opts, "--", PY, "-c", CLIENT, json.dumps(ops), env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    return [tuple(r) for r in json.loads(p.stdout.strip().splitlines()[-1])], p


class Servers:
    """Host-side servers of one test, as the test's user; all killed at the end."""

    def __init__(self, sb):
        self.sb = sb
        self.procs = []
        self.dirs = []

    def unix(self, tag, *paths):
        p = subprocess.Popen(self.sb.argv_plain([PY, "-c", UNIX_SERVER, tag] + list(paths)),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
        self.procs.append(p)
        assert p.stdout.readline().strip() == "READY"
        return p

    def http(self, port, directory, bind="127.0.0.1"):
        p = subprocess.Popen(self.sb.argv_plain([PY, "-m", "http.server", str(port), "--bind",
                                                 bind, "--directory", directory]),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        self.procs.append(p)
        fam = socket.AF_INET6 if ":" in bind else socket.AF_INET

        def up():
            s = socket.socket(fam)
            try:
                s.connect((bind, port))
                return True
            except OSError:
                return False
            finally:
                s.close()
        assert wait_for(up, timeout=10), "http.server on %s:%d did not start" % (bind, port)
        return p

    def spawn(self, argv, env=None):
        p = subprocess.Popen(self.sb.argv_plain(argv), env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.procs.append(p)
        return p

    def run_dir(self):
        """A directory under the host's /run that the test's user owns (a
        visible place the sandbox cannot write)."""
        if not is_root():
            pytest.skip("making a directory in /run needs root")
        d = tempfile.mkdtemp(prefix="cordon-it-", dir="/run")
        os.chmod(d, 0o755)
        self.sb.own(d)
        self.dirs.append(d)
        return d

    def stop(self):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
            for f in (p.stdin, p.stdout, p.stderr):
                if f:
                    f.close()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def servers(sb):
    s = Servers(sb)
    yield s
    s.stop()


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------
# unix sockets by path


def test_listed_socket_answers_unlisted_ones_are_refused(sb, servers):
    run = servers.run_dir()
    ok, secret = os.path.join(run, "ok.sock"), os.path.join(run, "secret.sock")
    in_ws = os.path.join(sb.ws, "host.sock")  # a host service's socket in the workspace
    servers.unix("host", ok, secret, in_ws)
    audit = sb.path("outside", "audit.jsonl")
    s = settings(sb, {"network": {"allowUnixSockets": [ok]}})
    res, p = client(sb, [["unix", ok], ["unix", secret], ["unix", in_ws], ["unix", "host.sock"],
                         ["unix", os.path.join(run, "missing.sock")], ["unix", "/etc/passwd"]],
                    "-s", s, "--audit", audit)
    assert res == [("OK", "host:ok.sock"), ("EACCES", None), ("EACCES", None),
                   ("EACCES", None), ("ENOENT", None), ("ECONNREFUSED", None)]
    recs = records(audit, "unix.connect")
    allowed = [r for r in recs if r["verdict"] == "allow"]
    denied = [r for r in recs if r["verdict"] == "deny"]
    assert [(r["path"], r["rule"]) for r in allowed] == [(ok, "network.allowUnixSockets[0]")]
    assert [(r["path"], r["reason"]) for r in denied] == [
        (secret, "not in network.allowUnixSockets"),
        (in_ws, "not in network.allowUnixSockets"),
        (in_ws, "not in network.allowUnixSockets")]
    assert all(isinstance(r["pid"], int) for r in recs)
    # the exit summary names the first one, as srt's macOS violation lines do
    assert p.summary and "network request" in p.summary and secret in p.summary, p.summary


def test_socket_reached_through_a_symlink_is_judged_where_it_leads(sb, servers):
    run = servers.run_dir()
    ok, secret = os.path.join(run, "ok.sock"), os.path.join(run, "secret.sock")
    servers.unix("host", ok, secret)
    audit = sb.path("outside", "audit.jsonl")
    s = settings(sb, {"network": {"allowUnixSockets": [ok]},
                      "filesystem": {"allowWrite": ["."]}})
    res, _ = client(sb, [["symlink", secret, "evil.sock"], ["unix", "evil.sock"],
                         ["symlink", ok, "good.sock"], ["unix", "good.sock"],
                         ["unlink", "evil.sock"], ["unlink", "good.sock"]],
                    "-s", s, "--audit", audit)
    assert res[1] == ("EACCES", None) and res[3] == ("OK", "host:ok.sock"), res
    denied = [r for r in records(audit, "unix.connect") if r["verdict"] == "deny"]
    assert [(r["path"], r["target"]) for r in denied] == [(sb.ws + "/evil.sock", secret)]


def test_listed_directory_cannot_be_redirected_by_a_planted_symlink(sb, servers):
    # A listed directory inside a write root: its sockets answer, but a
    # symlink the sandbox plants there does not lead out of it.
    run = servers.run_dir()
    secret = os.path.join(run, "secret.sock")
    socks = sb.mkdir("home/ws/socks")
    app = os.path.join(socks, "app.sock")
    servers.unix("host", app, secret)
    audit = sb.path("outside", "audit.jsonl")
    s = settings(sb, {"network": {"allowUnixSockets": ["./socks"]},
                      "filesystem": {"allowWrite": ["."]}})
    res, _ = client(sb, [["unix", "socks/app.sock"], ["symlink", secret, "socks/evil.sock"],
                         ["unix", "socks/evil.sock"], ["unlink", "socks/evil.sock"]],
                    "-s", s, "--audit", audit)
    assert res == [("OK", "host:app.sock"), ("OK", None), ("EACCES", None), ("OK", None)]
    denied = [r for r in records(audit, "unix.connect") if r["verdict"] == "deny"]
    assert [(r["path"], r["rule"], r["reason"]) for r in denied] == [
        (socks + "/evil.sock", "network.allowUnixSockets[0]",
         "the listed path leads through a symlink")]


def test_flipping_the_address_never_reaches_an_unlisted_socket(sb, servers):
    run = servers.run_dir()
    ok, secret = os.path.join(run, "aa.sock"), os.path.join(run, "zz.sock")
    servers.unix("host", ok, secret)
    audit = sb.path("outside", "audit.jsonl")
    s = settings(sb, {"network": {"allowUnixSockets": [ok]}})
    p = sb.run("-s", s, "--audit", audit, "--", PY, "-c", RACE, ok, secret, timeout=120)
    assert p.returncode == 0, p.stderr
    seen = json.loads(p.stdout.strip().splitlines()[-1])
    assert "host:zz.sock" not in seen, seen
    assert seen.get("host:aa.sock", 0) > 0, seen
    assert set(seen) <= {"host:aa.sock", "refused:13"}, seen
    assert all(r["path"] in (ok, secret) for r in records(audit, "unix.connect"))


def test_the_sandboxs_own_sockets_work(sb):
    audit = sb.path("outside", "audit.jsonl")
    s = settings(sb, {"network": {"allowUnixSockets": ["/nonexistent/listed.sock"]},
                      "filesystem": {"allowWrite": ["."]}})
    p = sb.run("-s", s, "--audit", audit, "--", PY, "-c", OWN)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == [
        ["OK", "own-tmp"], ["OK", "own-ws"], ["OK", "own-ws"], ["OK", "own-tmp"],
        ["OK", "own-abstract"]]
    assert records(audit, "unix.connect") == []


def test_datagram_unix_sockets_stay_refused(sb):
    # Only stream and seqpacket sockets can be made: a datagram one could
    # sendto() any path without a connect() (SOCK_RAW is one in AF_UNIX).
    ops = [["socket", "AF_UNIX", "SOCK_STREAM"], ["socket", "AF_UNIX", "SOCK_SEQPACKET"],
           ["socket", "AF_UNIX", "SOCK_DGRAM"], ["socket", "AF_UNIX", "SOCK_RAW"],
           ["socketpair", "SOCK_STREAM"], ["socketpair", "SOCK_DGRAM"],
           ["socketpair", "SOCK_RAW"]]
    listed = settings(sb, {"network": {"allowUnixSockets": ["/run/x.sock"]}})
    res, _ = client(sb, ops, "-s", listed)
    assert res == [("OK", None), ("OK", None), ("EPERM", None), ("EPERM", None),
                   ("OK", None), ("EPERM", None), ("EPERM", None)]
    # without the key, as srt: no unix socket at all, and no raw pair either
    res, _ = client(sb, ops, "-s", settings(sb, {}))
    assert res == [("EPERM", None), ("EPERM", None), ("EPERM", None), ("EPERM", None),
                   ("OK", None), ("EPERM", None), ("EPERM", None)]


def test_ssh_add_lists_the_agents_key(sb, servers):
    if not shutil.which("ssh-agent") or not shutil.which("ssh-add"):
        pytest.skip("openssh-client is not installed")
    d = sb.mkdir("agent", mode=0o700)  # under the host's /tmp: invisible inside
    key = os.path.join(d, "id_ed25519")
    subprocess.run(sb.argv_plain(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                                  "cordon-it", "-f", key]), check=True, timeout=30)
    sock = os.path.join(d, "agent.sock")
    servers.spawn(["ssh-agent", "-D", "-a", sock])
    assert wait_for(lambda: os.path.exists(sock), timeout=10)
    env = {"SSH_AUTH_SOCK": sock}
    subprocess.run(sb.argv_plain(["ssh-add", "-q", key]), env=sb.env(env), check=True,
                   timeout=30, capture_output=True)
    audit = sb.path("outside", "audit.jsonl")
    s = settings(sb, {"network": {"allowUnixSockets": [sock]}})
    p = sb.run("-s", s, "--audit", audit, "--", "ssh-add", "-l", env=env)
    assert p.returncode == 0, p.stderr
    assert "cordon-it (ED25519)" in p.stdout, p.stdout
    assert [r["verdict"] for r in records(audit, "unix.connect")] == ["allow"]
    # Not listed: the agent is out of reach (as srt: no unix socket at all).
    p = sb.run("--", "ssh-add", "-l", env=env)
    assert p.returncode == 2 and "Error connecting to agent: Operation not permitted" in p.stderr
    # Another path listed: the agent's, in the host's /tmp, does not even
    # exist in the sandbox's private /tmp.
    other = settings(sb, {"network": {"allowUnixSockets": [sock + ".other"]}})
    p = sb.run("-s", other, "--", "ssh-add", "-l", env=env)
    assert p.returncode == 2
    assert "Error connecting to agent: No such file or directory" in p.stderr


def test_git_commit_is_signed_through_gpg_agent(sb, servers):
    for tool in ("gpg", "gpg-connect-agent", "gpgconf", "git"):
        if not shutil.which(tool):
            pytest.skip(tool + " is not installed")
    home = sb.mkdir("gnupg", mode=0o700)  # read-only inside (allowRead)
    genv = {"GNUPGHOME": home}

    def host(argv, **kw):
        return subprocess.run(sb.argv_plain(argv), env=sb.env(genv), capture_output=True,
                              text=True, timeout=60, **kw)
    try:
        r = host(["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
                  "Cordon Test <cordon-it@example.test>", "ed25519", "sign", "never"])
        assert r.returncode == 0, r.stderr
        fpr = [ln.split(":")[9] for ln in host(["gpg", "--list-secret-keys", "--with-colons"])
               .stdout.splitlines() if ln.startswith("fpr:")][0]
        assert host(["gpg-connect-agent", "/bye"]).returncode == 0
        sock = host(["gpgconf", "--list-dirs", "agent-socket"]).stdout.strip()
        assert os.path.exists(sock), sock
        repo = sb.mkdir("home/ws/repo")
        for argv in (["git", "init", "-q"], ["git", "config", "user.email",
                                             "cordon-it@example.test"],
                     ["git", "config", "user.name", "Cordon Test"],
                     ["git", "config", "user.signingkey", fpr]):
            subprocess.run(sb.argv_plain(argv), cwd=repo, check=True, timeout=30,
                           env=sb.env())
        sb.write("home/ws/repo/file", "signed content\n")
        audit = sb.path("outside", "audit.jsonl")
        s = settings(sb, {"network": {"allowUnixSockets": [sock]},
                          "filesystem": {"allowWrite": ["."], "allowRead": [home]}})
        p = sb.run("-s", s, "--audit", audit, "--", "/bin/sh", "-c",
                   "git add file && git commit -q -S -m signed", cwd=repo, env=genv)
        assert p.returncode == 0, p.stderr
        v = subprocess.run(sb.argv_plain(["git", "verify-commit", "HEAD"]), cwd=repo,
                           env=sb.env(genv), capture_output=True, text=True, timeout=30)
        assert v.returncode == 0 and 'Good signature from "Cordon Test' in v.stderr, v.stderr
        assert [(r["verdict"], r["path"]) for r in records(audit, "unix.connect")] == \
            [("allow", sock)]
        # Without the socket listed, signing fails: the agent is out of reach.
        sb.write("home/ws/repo/file", "changed\n")
        s2 = settings(sb, {"network": {"allowUnixSockets": ["/nonexistent/x.sock"]},
                           "filesystem": {"allowWrite": ["."], "allowRead": [home]}})
        p = sb.run("-s", s2, "--", "/bin/sh", "-c", "git commit -q -a -S -m again", cwd=repo,
                   env=genv, timeout=60)
        assert p.returncode != 0 and "failed to sign the data" in p.stderr, p.stderr
    finally:
        host(["gpgconf", "--kill", "all"])
        host(["gpgconf", "--remove-socketdir"])


# ---------------------------------------------------------------------------
# host ports


def test_host_port_answers_and_no_other_port_of_the_host(sb, servers):
    www = sb.mkdir("www")
    sb.write("www/marker", "from the host\n")
    allowed, other = free_port(), free_port()
    servers.http(allowed, www)
    servers.http(other, www)
    only6 = None
    if socket.has_ipv6:
        try:
            only6 = free_port(socket.AF_INET6, "::1")
            servers.http(only6, www, bind="::1")
        except OSError:
            only6 = None
    audit = sb.path("outside", "audit.jsonl")
    ports = [allowed] + ([only6] if only6 else [])
    s = settings(sb, {"network": {"hostPorts": ports}})
    ops = [["tcp", "localhost", allowed, "marker"], ["tcp", "127.0.0.1", allowed, "marker"],
           ["tcp", "127.0.0.1", other, "marker"], ["tcp", "localhost", other, "marker"],
           ["proxy", "http://127.0.0.1:%d/marker" % other],
           ["proxy", "http://localhost:%d/marker" % other]]
    if only6:
        ops.append(["tcp", "localhost", only6, "marker"])
    res, _ = client(sb, ops, "-s", s, "--audit", audit)
    assert res[0] == ("OK", "HTTP/1.0 200 OK from the host\n")
    assert res[1] == res[0]
    assert res[2] == ("ECONNREFUSED", None) and res[3] == ("ECONNREFUSED", None)
    assert res[4] == ("OK", "HTTP/1.1 403 Forbidden") and res[5] == res[4], res
    if only6:
        assert res[6] == res[0]
    conns = records(audit, "net.connect")
    host_ports = [r for r in conns if r.get("via") == "hostPort"]
    want = [(allowed, "127.0.0.1", "network.hostPorts[0]")] * 2
    if only6:
        want.append((only6, "::1", "network.hostPorts[1]"))
    assert [(r["port"], r["address"], r["rule"]) for r in host_ports] == want
    assert all(r["verdict"] == "allow" and r["host"] == "localhost" for r in host_ports)
    # the proxy still refuses the host's loopback
    denied = [r for r in conns if r["verdict"] == "deny"]
    assert sorted((r["host"], r["port"]) for r in denied) == \
        sorted([("127.0.0.1", other), ("localhost", other)])
    closes = [r for r in records(audit, "net.close") if r.get("via") == "hostPort"]
    assert len(closes) == len(want)
    assert all(r["bytes_up"] > 0 and r["bytes_down"] > 0 for r in closes)


def test_host_port_that_is_closed_on_the_host(sb):
    port = free_port()
    audit = sb.path("outside", "audit.jsonl")
    s = settings(sb, {"network": {"hostPorts": [port]}})
    res, _ = client(sb, [["tcp", "localhost", port, "x"]], "-s", s, "--audit", audit)
    assert res == [("ECONNRESET", None)]
    recs = [r for r in records(audit, "net.connect") if r.get("via") == "hostPort"]
    assert [(r["verdict"], r["reason"]) for r in recs] == [("allow",
                                                           "cannot connect: connection refused")]


def test_host_address_other_than_loopback_is_unreachable(sb, servers):
    # The host's own address on its network (not its loopback): no route.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))
        addr = probe.getsockname()[0]
    except OSError:
        pytest.skip("the host has no IPv4 route")
    finally:
        probe.close()
    if addr.startswith("127."):
        pytest.skip("the host has no address beyond its loopback")
    www = sb.mkdir("www")
    port = free_port(host="0.0.0.0")
    servers.http(port, www, bind="0.0.0.0")
    s = settings(sb, {"network": {"hostPorts": [port]}})
    res, _ = client(sb, [["tcp", addr, port, "x"]], "-s", s)
    assert res == [("EHOSTUNREACH", None)]


# ---------------------------------------------------------------------------
# published ports


def fetch(url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as r:
            return r.read().decode()
    except (OSError, urllib.error.URLError, ConnectionError):
        return None


def test_dev_server_inside_is_reachable_on_its_published_port(sb):
    port = free_port()
    sb.write("home/ws/index.html", "published from the sandbox\n")
    audit = sb.path("outside", "audit.jsonl")
    s = settings(sb, {"network": {"publishPorts": [port]},
                      "filesystem": {"allowWrite": ["."]}})
    script = ('while [ ! -e go ]; do sleep 0.02; done; '
              'exec %s -m http.server %d --bind 127.0.0.1' % (PY, port))
    p = sb.popen("-s", s, "--audit", audit, "--", "/bin/sh", "-c", script,
                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                 start_new_session=True)
    try:
        # before the server listens: the host's client is reset
        assert wait_for(lambda: records(audit, "run.start"), timeout=10)
        assert fetch("http://127.0.0.1:%d/index.html" % port) is None
        with open(os.path.join(sb.ws, "go"), "w"):
            pass
        body = wait_for(lambda: fetch("http://127.0.0.1:%d/index.html" % port), timeout=15)
        assert body == "published from the sandbox\n"
        if socket.has_ipv6 and fetch("http://[::1]:%d/index.html" % port) is not None:
            assert fetch("http://[::1]:%d/index.html" % port) == body
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        _, err = p.communicate(timeout=30)
    accepts = records(audit, "net.accept")
    assert accepts[0]["reason"] == "cannot connect: nothing listens on port %d in the " \
        "sandbox" % port
    ok = [r for r in accepts if "reason" not in r]
    assert ok and all(r["verdict"] == "allow" and r["via"] == "publish" and
                      r["port"] == port and r["rule"] == "network.publishPorts[0]" and
                      r["peer"].rsplit(":", 1)[0] in ("127.0.0.1", "[::1]") for r in ok)
    closes = [r for r in records(audit, "net.close") if r.get("via") == "publish"]
    assert closes and any(r["bytes_up"] > 0 and r["bytes_down"] > 0 for r in closes)


def test_published_port_taken_on_the_host_stops_the_run(sb):
    hold = socket.socket()
    hold.bind(("127.0.0.1", 0))
    hold.listen(1)
    port = hold.getsockname()[1]
    try:
        s = settings(sb, {"network": {"publishPorts": [port]}})
        p = sb.run("-s", s, "--", "/bin/sh", "-c", "echo ran")
    finally:
        hold.close()
    assert p.returncode == 125 and p.stdout == ""
    assert p.stderr == ("cordon: network.publishPorts[0]: cannot listen on 127.0.0.1:%d on "
                        "the host: address already in use\n" % port)


# ---------------------------------------------------------------------------
# settings


@pytest.mark.parametrize("net,pointer,problem", [
    ({"hostPorts": [3128]}, "/network/hostPorts/0",
     "port 3128 is taken inside the sandbox by cordon's HTTP proxy"),
    ({"publishPorts": [8080, 1080]}, "/network/publishPorts/1",
     "port 1080 is taken inside the sandbox by cordon's SOCKS5 proxy"),
    ({"hostPorts": [5432, 5432]}, "/network/hostPorts/1", "port 5432 is listed twice"),
    ({"hostPorts": [5432], "publishPorts": [5432]}, "/network/publishPorts/0",
     "port 5432 is also in network.hostPorts (/network/hostPorts/0)"),
    ({"hostPorts": [0]}, "/network/hostPorts/0", "expected a port from 1 to 65535"),
    ({"publishPorts": "3000"}, "/network/publishPorts", "expected an array of ports"),
    ({"allowUnixSockets": ["/run/*.sock"]}, "/network/allowUnixSockets/0",
     "patterns are not supported here"),
    ({"allowUnixSockets": [""]}, "/network/allowUnixSockets/0", "empty path"),
    ({"allowUnixSockets": "/run/x.sock"}, "/network/allowUnixSockets",
     "expected an array of socket paths"),
], ids=["host-3128", "publish-1080", "twice", "both", "zero", "not-array", "glob", "empty",
        "string"])
def test_bad_settings_are_refused(sb, net, pointer, problem):
    s = settings(sb, {"network": net})
    p = sb.run("-s", s, "--", "/bin/sh", "-c", "echo ran")
    assert p.returncode == 125 and p.stdout == ""
    assert p.stderr.startswith("cordon: %s: %s: " % (s, pointer)), p.stderr
    assert problem in p.stderr, p.stderr


def test_print_policy_shows_the_keys(sb):
    s = settings(sb, {"network": {"allowUnixSockets": ["~/agent.sock", "run"],
                                  "hostPorts": [5432], "publishPorts": [3000, 8080]}})
    p = sb.run("-s", s, "--print-policy")
    assert p.returncode == 0, p.stderr
    net = json.loads(p.stdout)["network"]
    assert net["allowUnixSockets"] == [sb.home + "/agent.sock", sb.ws + "/run"]
    assert net["hostPorts"] == [5432] and net["publishPorts"] == [3000, 8080]
    # the default prints none of them
    p = sb.run("-s", settings(sb, {}), "--print-policy")
    net = json.loads(p.stdout)["network"]
    assert not {"allowUnixSockets", "hostPorts", "publishPorts"} & set(net)
