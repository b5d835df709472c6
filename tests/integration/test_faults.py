"""Fault tests (issue 16): what a run survives, and what it leaves behind
when it does not.

  - the command killed with SIGKILL, by itself or from the host: cordon exits
    137, records it, and cleans up as after any exit;
  - cordon killed with SIGKILL mid-run (TLS interception on, placeholders in
    the workspace, tunnels open, background processes): everything in the
    sandbox dies (its pid namespace empties), and no process, mount,
    placeholder or CA material is left; the pids cgroup of a root run goes at
    the next start;
  - the proxy failing: it cannot start (exit 125, the command never runs), it
    runs out of descriptors or is stopped mid-run (the sandbox loses its
    network and never reaches anything directly; service resumes after);
  - descriptors and memory exhausted inside the sandbox (limits.nofile,
    limits.as; a flood of connections to the proxy up to the descriptors the
    whole run has): the command sees EMFILE and MemoryError, cordon and its
    proxy hold and serve again;
  - the settings file rewritten while cordon starts, many times over: each
    run has one whole version or refuses (125, one line naming the file);
    never a mix, never unconfined;
  - 20 cordon runs at once in one working directory with different policies
    (network, TLS, reads, writes): each sees its own, and nothing is left.

Tests run as root and as uid 65534 where the user matters (kill, leftovers,
concurrent runs); the others run once, as uid 65534.
"""
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest

from conftest import is_root, user_params
from helpers import kill_pids, sleep_pids, wait_for
from load_helpers import (Proc, Supervisor, Upstreams, audit, check_sanitizers, cordon_argv,
                          install_tool, loopback_settings, nofile_hard, report, sandbox,
                          sanitized)
from workspace_util import (assert_registry_clean, git_init, private_registry, registry_lines,
                            snapshot, snapshot_diff)

PY = "/usr/bin/python3"
CLIENTS_SRC = open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "load_clients.py")).read()
ASAN = sanitized()


@pytest.fixture(scope="module")
def ups():
    u = Upstreams()
    yield u
    u.stop()


@pytest.fixture
def usb():
    """A Sandbox for uid 65534 (root's suite) or the suite's own user."""
    yield from sandbox("user" if is_root() else "root")


@pytest.fixture(params=user_params())
def sb(request):
    """conftest's sb (root and uid 65534), torn down once the runs'
    placeholder watchdogs are gone."""
    yield from sandbox("user" if request.param == "user" else "root")


def marker():
    """A sleep argument no other process on the host has."""
    return "1000.%d" % (uuid.uuid4().int % 10 ** 12)


def procs_with(text):
    """Pids whose command line contains text."""
    out = []
    t = text.encode()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    if t in f.read():
                        out.append(int(d))
            except OSError:
                pass
    return out


def exe(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return None


def stat_of(pid):
    """(ppid, start time, state) of a process, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[1]), int(fields[19]), fields[0]
    except (OSError, IndexError, ValueError):
        return None


def tree(root):
    """{pid: start time} of root and every process below it. (By parent
    links, not by /proc/PID/ns/pid, which the sandbox's init, not dumpable,
    does not show to an unprivileged caller.)"""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = stat_of(int(d))
            if st:
                kids.setdefault(st[0], []).append((int(d), st[1]))
    out, todo = {}, [root]
    st = stat_of(root)
    if st:
        out[root] = st[1]
    while todo:
        for pid, start in kids.get(todo.pop(), []):
            out[pid] = start
            todo.append(pid)
    return out


def still_alive(procs):
    """The processes of {pid: start time} that still run (the same start
    time: not a reused pid). A zombie has ended: the sandbox's init, whose
    parent cordon was, waits there for the host's init to reap it."""
    out = []
    for pid, start in procs.items():
        st = stat_of(pid)
        if st and st[1] == start and st[2] != "Z":
            out.append(pid)
    return out


def host_mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [ln for ln in f if path in ln]


def pids_cgroup(pid):
    """Where limits.c puts a root run's pids cgroup (cordon-<supervisor pid>)."""
    for root in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup"):
        if os.path.exists(os.path.join(root, "cgroup.procs")):
            return os.path.join(root, "cordon-%d" % pid)
    return None


# ---- the command killed ------------------------------------------------------------------

def test_command_killed_by_itself(sb):
    log = sb.path("outside", "audit.jsonl")
    p = sb.run("--audit", log, "--", "/bin/sh", "-c", 'echo before; kill -KILL $$; echo after')
    assert p.returncode == 128 + signal.SIGKILL, p.stderr
    assert p.stdout == "before\n"
    assert audit(log)[-1]["event"] == "run.exit" and audit(log)[-1]["status"] == 137


def test_command_killed_from_the_host(sb):
    """SIGKILL of the command from outside: cordon reports 137; what the
    command left running dies; the placeholders go as after any exit."""
    git_init(sb, sb.ws)
    env, reg = private_registry(sb)
    before = snapshot(sb.ws)
    m1, m2 = marker(), marker()
    log = sb.path("outside", "audit.jsonl")
    p = sb.popen("--audit", log, "--", "/bin/sh", "-c", 'sleep "$1" & exec sleep "$2"', "sh",
                 m1, m2, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: sleep_pids(m1) and sleep_pids(m2), 20), "the command did not start"
        assert registry_lines(reg), "no placeholders were registered"
        os.kill(sleep_pids(m2)[0], signal.SIGKILL)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        kill_pids(sleep_pids(m1) + sleep_pids(m2))
    check_sanitizers(err)
    assert p.returncode == 137, err
    assert wait_for(lambda: not sleep_pids(m1), 5), "the background process survived"
    assert snapshot(sb.ws) == before, snapshot_diff(before, snapshot(sb.ws))
    assert_registry_clean(reg)
    assert audit(log)[-1]["status"] == 137


# ---- cordon killed -------------------------------------------------------------------------

KILL_SCRIPT = r'''
set -e
# the sandbox's CA (the first certificate of its trust bundle), for the host
# to look for afterwards; a copy in the private /tmp
sed -n '1,/END CERTIFICATE/p' /dev/cordon-ca.pem > /tmp/ca-copy.pem
cat /tmp/ca-copy.pem
sleep "$1" &
sleep "$1" &
"$3" -c "$4" tunnel-hold "$2" "$1" &
while [ ! -e /tmp/held ]; do sleep 0.02; done
echo READY
wait
'''

# A request the upstream never answers: the supervisor holds both ends.
HOLD_SRC = r'''
import socket, sys, time
port = int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", 3128))
s.sendall(b"GET http://127.0.0.1:%d/stall HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (port, port))
time.sleep(0.2)
open("/tmp/held", "w").close()
time.sleep(1000)
'''


def ca_body(pem):
    b64 = "".join(ln for ln in pem.splitlines() if ln and "CERTIFICATE" not in ln)
    return b64[len(b64) // 2:len(b64) // 2 + 48]


def files_containing(tops, needle, since):
    """Regular files under tops, modified at or after since, that contain
    needle (bytes)."""
    found = []
    for top in tops:
        for root, dirs, files in os.walk(top):
            for n in files:
                p = os.path.join(root, n)
                try:
                    st = os.lstat(p)
                    if not os.path.isfile(p) or os.path.islink(p) or st.st_size > 8 << 20 or \
                            st.st_mtime < since:
                        continue
                    with open(p, "rb") as f:
                        if needle in f.read():
                            found.append(p)
                except OSError:
                    pass
    return found


def test_cordon_killed_leaves_nothing(sb, ups):
    http = ups.ports["http"]
    git_init(sb, sb.ws)
    env, reg = private_registry(sb)
    before = snapshot(sb.ws)
    start_time = time.time() - 1
    m = marker()
    s = loopback_settings(sb, [http], extra_net={"tlsTerminate": {}})
    log = sb.path("outside", "audit.jsonl")
    ups_before = ups.stats()
    p = Proc(sb.argv(["-s", s, "--audit", log, "--", "/bin/sh", "-c", KILL_SCRIPT, "sh", m,
                      str(http), PY, HOLD_SRC]), cwd=sb.ws, env=sb.env(env),
             start_new_session=True)
    try:
        pem = []
        while True:
            line = p.line(60)
            if line == "READY":
                break
            pem.append(line)
        pem = "\n".join(pem)
        assert "BEGIN CERTIFICATE" in pem, pem
        init_pid = audit(log)[0]["pid"]
        members = tree(init_pid)
        assert len(members) >= 5, members          # init, sh, 2 sleeps, python
        assert len(procs_with(m)) >= 3
        assert os.path.exists(os.path.join(sb.ws, ".bashrc")), "no placeholder"
        cg = pids_cgroup(p.pid) if is_root() else None
        cg_existed = bool(cg and os.path.isdir(cg))
        assert wait_for(lambda: ups.stats()["open_http"] == ups_before["open_http"] + 1, 10)
        os.kill(p.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        # everything in the sandbox dies with it
        left = wait_for(lambda: not still_alive(members), 10, interval=0.005) or \
            still_alive(members)
        emptied = time.monotonic() - killed_at
        assert p.wait(20) == -signal.SIGKILL
    finally:
        p.kill()
        # (not cordon's placeholder watchdog, whose command line is cordon's:
        # it is cleaning up)
        kill_pids([q for q in procs_with(m) if exe(q) != sb.bin])
    check_sanitizers(p.stderr())
    assert left is True, "alive in the sandbox: %s" % left
    assert wait_for(lambda: not procs_with(m), 5), procs_with(m)
    # no mount of the run shows on the host
    assert host_mounts_under(sb.base) == []
    # the watchdog removed the placeholders: the workspace is as before
    wait_for(lambda: snapshot(sb.ws) == before, 10)
    assert snapshot(sb.ws) == before, snapshot_diff(before, snapshot(sb.ws))
    wait_for(lambda: registry_lines(reg) == [], 5)
    assert_registry_clean(reg)
    # and then the watchdog itself is gone
    assert wait_for(lambda: not procs_with(sb.bin), 10), procs_with(sb.bin)
    # no copy of the run's CA anywhere it could have been written, and no
    # private key in cordon's own places
    needle = ca_body(pem).encode()
    tops = [d for d in ("/tmp", "/var/tmp", "/dev/shm", "/run/user") if os.path.isdir(d)]
    assert files_containing(tops, needle, start_time) == []
    assert files_containing([sb.base, "/tmp/cordon-%d" % sb.uid], b"PRIVATE KEY",
                            start_time) == []
    # the held request's upstream end was closed by the kernel
    assert wait_for(lambda: ups.stats()["open_http"] == ups_before["open_http"], 10)
    report("cordon-killed", user=sb.user, processes=len(members), all_gone_after=emptied,
           cgroup=cg_existed)
    if cg_existed:
        # cordon could not remove its pids cgroup: the next start does (if
        # no other start on this machine did it already)
        r = sb.run("--", "true")
        assert r.returncode == 0, r.stderr
        assert not os.path.exists(cg), cg


# ---- the proxy failing -------------------------------------------------------------------------

def test_env_proxy_url_cordon_cannot_use_warns_and_runs(sb):
    """An upstream proxy URL from the environment that cordon cannot parse
    used to stop every run (exit 125) as the proxy started; it is now one
    warning naming the variable, and the run goes on (the connections that
    would need that proxy are refused: test_srt_compat.py)."""
    log = sb.path("outside", "audit.jsonl")
    for url in ("http://bad host:1", "http://[::1"):
        p = sb.run("--audit", log, "--", "/bin/sh", "-c", "touch ran", env={"HTTPS_PROXY": url})
        assert p.returncode == 0, p.stderr
        assert p.stderr.startswith("cordon: warning: HTTPS_PROXY=%s: " % url), p.stderr
        assert len(p.stderr.splitlines()) == 1, p.stderr
        assert os.path.exists(os.path.join(sb.ws, "ran"))
        os.unlink(os.path.join(sb.ws, "ran"))
    assert "run.exit" in [r["event"] for r in audit(log)]


class EchoOnce:
    """A TCP server on the host's wildcard address: answers one line with
    the same line; counts connections."""

    def __init__(self):
        self.s = socket.socket()
        self.s.bind(("0.0.0.0", 0))
        self.s.listen(64)
        self.port = self.s.getsockname()[1]
        self.accepted = 0
        self.stop = False
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while not self.stop:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                c.settimeout(5)
                c.sendall(c.recv(100))
            except OSError:
                pass
            c.close()

    def close(self):
        self.stop = True
        self.s.close()


def host_address():
    """An IPv4 address of this host other than loopback, or None."""
    r = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                       capture_output=True, text=True)
    m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", r.stdout)
    return m.group(1) if m else None


def test_proxy_stopped_mid_run(usb, ups):
    """The proxy stops serving while the command runs (its process stopped,
    SIGSTOP): the sandbox loses its network. Requests through the proxy and
    connections it would capture get nothing, and nothing reaches the host
    directly. When it is back (SIGCONT), so is the network. (The proxy out
    of descriptors: test_connection_flood_exhausts_the_proxys_descriptors.)"""
    http = ups.ports["http"]
    addr = host_address()
    srv = EchoOnce()
    extra = {"allowedDomains": ["127.0.0.1:%d" % http] +
             (["%s:%d" % (addr, srv.port)] if addr else [])}
    s = loopback_settings(usb, [http], extra_net=extra)
    log = usb.path("outside", "audit.jsonl")
    args = {"http": http, "timeout": 3, "direct": [addr, srv.port] if addr else None,
            "phases": ["before", "during", "after"]}
    p = Proc(cordon_argv(usb, ["-s", s, "--audit", log, "--", PY, "-c", CLIENTS_SRC, "outage",
                               json.dumps(args)]), cwd=usb.ws, env=usb.env())
    res = {}
    try:
        p.expect("ready", 60)
        sup = Supervisor(p.pid)
        sup.settle()
        p.send()
        res["before"] = json.loads(p.line(30))
        accepted = srv.accepted
        os.kill(p.pid, signal.SIGSTOP)
        try:
            p.send()
            res["during"] = json.loads(p.line(30))
            during_accepted = srv.accepted - accepted
        finally:
            os.kill(p.pid, signal.SIGCONT)
        p.send()
        res["after"] = json.loads(p.line(60))
        p.send()
        assert p.wait(60) == 0, p.stderr()
    finally:
        p.kill()
        srv.close()
    check_sanitizers(p.stderr())
    assert res["before"]["proxy"] == 200, res
    assert res["during"]["proxy"] in ("timeout", "TimeoutError", "ConnectionResetError",
                                      "EOFError"), res
    assert res["after"]["proxy"] == 200, res
    report("proxy-stopped", **res)
    if addr:
        assert res["before"]["direct"] == "ping\n", res
        assert res["during"]["direct"] != "ping\n", res
        assert during_accepted == 0, "a connection reached the host during the outage"
        assert res["after"]["direct"] == "ping\n", res
        direct = [r for r in audit(log, "net.connect") if r["port"] == srv.port]
        assert direct and all(r["via"] == "transparent" for r in direct), direct


# ---- exhaustion inside the sandbox -----------------------------------------------------------

def test_descriptors_and_memory_exhausted_inside(usb, ups):
    http = ups.ports["http"]
    s = loopback_settings(usb, [http], extra={"limits": {"nofile": 64, "as": 512 * 1024 * 1024}})
    log = usb.path("outside", "audit.jsonl")
    args = {"http": http, "timeout": 10, "alloc": 2 * 1024 * 1024 * 1024}
    r = usb.run("-s", s, "--audit", log, "--", PY, "-c", CLIENTS_SRC, "exhaust",
                json.dumps(args), timeout=120)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["open"] == "EMFILE" and 50 <= res["opened"] <= 64, res
    assert res["socket"] == "EMFILE", res
    assert res["during"]["proxy"] != 200, res    # no descriptor for a socket
    assert res["before"]["proxy"] == res["after_fds"]["proxy"] == 200, res
    assert res["alloc"] == "MemoryError", res
    assert res["after_memory"]["proxy"] == 200, res
    assert audit(log)[-1]["status"] == 0


def test_connection_flood_exhausts_the_proxys_descriptors(usb, ups):
    """The sandbox opens as many connections to the proxy as the run's hard
    RLIMIT_NOFILE lets it (2048 here, the same for the supervisor, which runs
    out first): the proxy is out of descriptors. It stops accepting for a
    moment rather than failing, holds no more than its limit, the sandbox
    has no network meanwhile (and reaches nothing directly), and the proxy
    serves again once the connections go."""
    hard = 2048
    if nofile_hard() < hard:
        pytest.skip("the hard RLIMIT_NOFILE (%d) is below %d" % (nofile_hard(), hard))
    http = ups.ports["http"]
    tool = install_tool(usb)
    addr = host_address()
    srv = EchoOnce()
    extra = {"allowedDomains": ["127.0.0.1:%d" % http] +
             (["%s:%d" % (addr, srv.port)] if addr else [])}
    s = loopback_settings(usb, [http], extra_net=extra)
    log = usb.path("outside", "audit.jsonl")
    args = {"tool": tool, "n": 100000, "http": http,
            "direct": [addr, srv.port] if addr else None}
    argv = ["prlimit", "--nofile=1024:%d" % hard, "--"] + usb.argv(
        ["-s", s, "--audit", log, "--", PY, "-c", CLIENTS_SRC, "flood", json.dumps(args)])
    p = Proc(argv, cwd=usb.ws, env=usb.env())
    try:
        p.expect("ready", 60)
        sup = Supervisor(p.pid)
        base = sup.settle()
        p.send()
        line = p.expect("held", 60)
        held = int(line.split()[1])
        peak = sup.settle(quiet=0.5)   # the proxy takes what it can, then pauses
        accepted = srv.accepted
        p.send()
        line = p.expect("during", 60)
        during_accepted = srv.accepted - accepted
        p.send()
        line = p.expect("result", 120)
        res = json.loads(line.split(" ", 1)[1])
        end = sup.wait_fds(base, 30)
        p.send()
        assert p.wait(60) == 0, p.stderr()
    finally:
        p.kill()
        srv.close()
    check_sanitizers(p.stderr())
    assert held >= hard - 64, res          # the sandbox got (nearly) all it may have
    assert hard - 64 <= peak <= hard, peak  # the proxy was at its limit, not over
    assert res["during"]["proxy"] != 200, res
    assert res["after"]["proxy"] == 200, res
    if addr:
        assert res["during"]["direct"] != "ping\n" and during_accepted == 0, res
        assert res["after"]["direct"] == "ping\n", res
    assert end <= base, (end, base)
    assert audit(log)[-1]["status"] == 0
    report("flood", hard=hard, held=held, base_fds=base, peak_fds=peak, end_fds=end,
           during=res["during"], after=res["after"])


# ---- the settings file changing while it is read ------------------------------------------------

def test_settings_file_rewritten_while_cordon_starts(usb):
    """A writer rewrites the settings file in a loop, between two valid
    versions, sometimes in place in two writes (a reader can see it empty or
    half written), sometimes by rename. Every start either runs with one
    whole version or refuses with 125 and one line naming the file."""
    sb = usb
    for d in ("A", "B"):
        sb.mkdir("home/ws/" + d)
        sb.write("home/ws/secret" + d, "secret %s\n" % d)
    ws = sb.ws
    pol = {
        "A": {"filesystem": {"allowWrite": [ws + "/A"], "denyRead": [ws + "/secretB"]},
              "network": {"allowedDomains": ["a.test"]}},
        "B": {"filesystem": {"allowWrite": [ws + "/B"], "denyRead": [ws + "/secretA"]},
              "network": {"allowedDomains": ["b.test", "c.test"]}, "limits": {"nofile": 512}},
    }
    text = {k: json.dumps(v, indent=1) + "\n" * (1 if k == "A" else 7) for k, v in pol.items()}
    expect = {"A": "wA rA", "B": "wB rB"}
    probe = ('r=""; touch A/x 2>/dev/null && r="$r wA"; touch B/x 2>/dev/null && r="$r wB"; '
             'cat secretA >/dev/null 2>&1 && r="$r rA"; cat secretB >/dev/null 2>&1 && r="$r rB"; '
             'touch x 2>/dev/null && r="$r CWD"; echo $r')
    explicit = sb.settings(text["A"], name="settings.json")
    default = os.path.join(sb.home, ".config", "cordon", "settings.json")
    os.makedirs(os.path.dirname(default))
    for d in (os.path.dirname(os.path.dirname(default)), os.path.dirname(default)):
        sb.own(d)
    with open(default, "w") as f:
        f.write(text["B"])
    sb.own(default)
    stop = threading.Event()

    def writer(path):
        rnd = random.Random(path)
        while not stop.is_set():
            t = text[rnd.choice("AB")]
            if rnd.random() < 0.5:
                with open(path, "w") as f:        # truncated, then two writes
                    k = rnd.randrange(1, len(t))
                    f.write(t[:k])
                    f.flush()
                    time.sleep(0.002)
                    f.write(t[k:])
            else:
                tmp = path + ".tmp"
                with open(tmp, "w") as f:
                    f.write(t)
                sb.own(tmp)
                os.replace(tmp, path)
            time.sleep(rnd.random() * 0.004)

    outcomes = {"A": 0, "B": 0, "refused": 0}
    bad = []
    writers = [threading.Thread(target=writer, args=(p,), daemon=True) for p in (explicit, default)]
    for w in writers:
        w.start()
    try:
        n = 30 if ASAN else 60
        for i in range(n):
            path = explicit if i % 3 else default
            opts = ("-s", explicit) if path == explicit else ()
            r = sb.run(*opts, "--", "/bin/sh", "-c", probe, timeout=60)
            got = r.stdout.strip()
            if r.returncode == 0 and got in expect.values():
                outcomes["A" if got == expect["A"] else "B"] += 1
            elif r.returncode == 125 and r.stdout == "" and len(r.stderr.splitlines()) == 1 and \
                    r.stderr.startswith("cordon: " + path):
                outcomes["refused"] += 1
            else:
                bad.append((path, r.returncode, got, r.stderr))
    finally:
        stop.set()
        for w in writers:
            w.join(5)
    assert not bad, bad[:5]
    assert outcomes["A"] and outcomes["B"], outcomes
    report("settings-race", **outcomes)


# ---- 20 runs at once in one working directory -----------------------------------------------------

RUN_SRC = r'''
import errno, hashlib, json, os, socket, sys
a = json.loads(sys.argv[1])
res = {"http": {}, "read": {}}
for port in a["ports"]:
    try:
        s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
        s.sendall(b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % (port, port))
        d = b""
        while True:
            x = s.recv(65536)
            if not x:
                break
            d += x
        s.close()
        status = int(d.split(b" ", 2)[1])
        res["http"][str(port)] = [status, d.split(b"\r\n\r\n", 1)[1].decode() if status == 200 else ""]
    except OSError as e:
        res["http"][str(port)] = [type(e).__name__, ""]
for i in range(a["n"]):
    try:
        open("secret-%d.txt" % i).read()
        res["read"][str(i)] = "OK"
    except OSError as e:
        res["read"][str(i)] = errno.errorcode[e.errno]
try:
    with open("out-%d.txt" % a["i"], "w") as f:
        f.write("run %d\n" % a["i"])
    res["write_own"] = "OK"
except OSError as e:
    res["write_own"] = errno.errorcode[e.errno]
try:
    open(a["outside"], "w").close()
    os.unlink(a["outside"])
    res["write_outside"] = "OK"
except OSError as e:
    res["write_outside"] = errno.errorcode[e.errno]
try:
    pem = open("/dev/cordon-ca.pem").read()
    first = pem.split("-----END CERTIFICATE-----")[0]
    res["ca"] = hashlib.sha256(first.encode()).hexdigest()
except OSError as e:
    res["ca"] = errno.errorcode[e.errno]
print(json.dumps(res), flush=True)
sys.stdin.readline()
'''


class PortNamer:
    """20 HTTP listeners on the host's 127.0.0.1; each answers "port N"."""

    def __init__(self, n):
        self.socks = []
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(64)
            self.socks.append(s)
            threading.Thread(target=self.loop, args=(s,), daemon=True).start()
        self.ports = [s.getsockname()[1] for s in self.socks]

    def loop(self, s):
        port = s.getsockname()[1]
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            try:
                c.settimeout(5)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    d = c.recv(4096)
                    if not d:
                        break
                    buf += d
                body = b"port %d\n" % port
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                          % len(body) + body)
            except OSError:
                pass
            c.close()

    def close(self):
        for s in self.socks:
            s.close()


def test_twenty_runs_at_once_with_different_policies(sb):
    n = 20
    git_init(sb, sb.ws)
    for i in range(n):
        sb.write("home/ws/secret-%d.txt" % i, "secret %d\n" % i)
    env, reg = private_registry(sb)
    before = snapshot(sb.ws)
    srv = PortNamer(n)
    runs = []
    m = marker()
    try:
        for i in range(n):
            net = {"allowedDomains": ["127.0.0.1:%d" % srv.ports[i]]}
            if i % 2:
                net["tlsTerminate"] = {}
            s = sb.settings({"network": net, "filesystem": {
                "allowWrite": ["."], "denyRead": ["secret-%d.txt" % i]}}, name="run-%d.json" % i)
            log = sb.path("outside", "audit-%d.jsonl" % i)
            args = {"i": i, "n": n, "ports": srv.ports, "m": m,
                    "outside": "/usr/cordon-test-%s-%d" % (m, i)}
            runs.append((Proc(sb.argv(["-s", s, "--audit", log, "--", PY, "-c", RUN_SRC,
                                       json.dumps(args)]), cwd=sb.ws, env=sb.env(env)), log))
        results = [json.loads(p.line(120)) for p, _ in runs]
        # all 20 are running now; each saw only its own policy
        alive = [p.p.poll() is None for p, _ in runs]
        for p, _ in runs:
            p.send()
        rcs = [p.wait(60) for p, _ in runs]
    finally:
        for p, _ in runs:
            p.kill()
        srv.close()
    assert all(alive) and rcs == [0] * n, (alive, rcs, [p.stderr() for p, _ in runs][:3])
    cas = set()
    for i, res in enumerate(results):
        for j, port in enumerate(srv.ports):
            want = [200, "port %d\n" % port] if i == j else [403, ""]
            assert res["http"][str(port)] == want, (i, j, res["http"])
        assert res["read"] == {str(j): "EACCES" if j == i else "OK" for j in range(n)}, (i, res)
        assert res["write_own"] == "OK" and res["write_outside"] == "EROFS", (i, res)
        if i % 2:
            assert len(res["ca"]) == 64
            cas.add(res["ca"])
        else:
            assert res["ca"] == "ENOENT", (i, res)
    assert len(cas) == n // 2, "runs shared a CA"
    # each audit stream is its run's own
    for i, (_, log) in enumerate(runs):
        recs = audit(log)
        assert recs[0]["settings"].endswith("run-%d.json" % i)
        assert recs[-1]["event"] == "run.exit" and recs[-1]["status"] == 0
        conns = [r for r in recs if r["event"] == "net.connect"]
        assert sorted((r["port"], r["verdict"]) for r in conns) == sorted(
            (p, "allow" if j == i else "deny") for j, p in enumerate(srv.ports)), (i, conns)
    for p, _ in runs:
        check_sanitizers(p.stderr())
    # nothing left: processes, mounts, placeholders, registry, cgroups
    pids = [p.pid for p, _ in runs]
    assert wait_for(lambda: not procs_with(m), 5)
    assert host_mounts_under(sb.base) == []
    for i in range(n):
        os.unlink(os.path.join(sb.ws, "out-%d.txt" % i))
    after = snapshot(sb.ws)
    assert after == before, (snapshot_diff(before, after), registry_lines(reg),
                             [p.stderr() for p, _ in runs])
    assert_registry_clean(reg)
    if is_root():
        left = [pids_cgroup(pid) for pid in pids if pids_cgroup(pid) and
                os.path.exists(pids_cgroup(pid))]
        assert left == [], left
    assert not [f for f in os.listdir("/usr") if f.startswith("cordon-test-")]
