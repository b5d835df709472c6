"""Helpers of the load and fault tests (test_load.py, test_faults.py).

- `tool()`: the path of cordon-load (tests/load/cordon-load.c), the C client
  and upstream servers of these tests. meson builds it next to cordon
  (BUILD/tests/cordon-load); with a CORDON_BIN from elsewhere it is compiled
  here once with cc.
- `Upstreams`: `cordon-load serve` on the host's 127.0.0.1 (echo, finfirst,
  http, stall, reset, blackhole; see the tool's header comment), with its
  counters. Cordon reaches them through IP-literal allow entries
  (`127.0.0.1:PORT`), which let the resolved-address guard pass loopback for
  that port only (README, "Resolved-address guard").
- `Proc`: a process whose stdout lines are read with a timeout (a reader
  thread), so that a test never blocks on a sandbox that stopped talking.
- `Supervisor`: the cordon process seen from the host: its descriptor count
  (/proc/PID/fd) and memory (VmRSS, VmHWM), sampled while a load runs.
- `audit()`: the records of an audit file, each checked for the common
  fields.
- `report()`: figures a test measured, appended as JSON lines to
  $CORDON_LOAD_REPORT when it is set (docs/robustness.md quotes them).
"""
import atexit
import json
import os
import queue
import re
import resource
import shutil
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CORDON_BIN = os.environ.get("CORDON_BIN", os.path.join(REPO, "build", "cordon"))  # as conftest
TOOL_SRC = os.path.join(REPO, "tests", "load", "cordon-load.c")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MIB = 1024 * 1024

_tool = None


def tool():
    global _tool
    if _tool:
        return _tool
    built = os.path.join(os.path.dirname(CORDON_BIN), "tests", "cordon-load")
    if os.path.isfile(built) and os.path.getmtime(built) >= os.path.getmtime(TOOL_SRC):
        _tool = built
        return _tool
    d = tempfile.mkdtemp(prefix="cordon-load-")
    atexit.register(shutil.rmtree, d, True)
    out = os.path.join(d, "cordon-load")
    subprocess.run(["cc", "-O2", "-D_GNU_SOURCE", "-o", out, TOOL_SRC], check=True,
                   capture_output=True, timeout=120)
    _tool = out
    return _tool


def install_tool(sb):
    """A copy of cordon-load in the workspace: uid 65534 may not enter the
    build directory, and the sandbox's /tmp is its own (only the working
    directory is bound through from the host's)."""
    dst = os.path.join(sb.ws, "cordon-load")
    if not os.path.exists(dst):
        shutil.copy2(tool(), dst)
        os.chmod(dst, 0o755)
    return dst


def exe_pids(path):
    """Pids of the processes running the executable at path."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.readlink("/proc/%s/exe" % d) == path:
                    out.append(int(d))
            except OSError:
                pass
    return out


def sandbox(user):
    """conftest's Sandbox as a fixture body, whose teardown first lets
    cordon's placeholder watchdogs (forks of this sandbox's copy of cordon,
    which end a moment after it and write under $HOME/.cache/cordon) finish:
    otherwise they recreate that directory in the tree just removed."""
    from conftest import Sandbox
    s = Sandbox(user)
    try:
        yield s
    finally:
        deadline = time.monotonic() + 10
        while exe_pids(s.bin) and time.monotonic() < deadline:
            time.sleep(0.02)
        s.cleanup()


def sanitized():
    """True for an ASan build of cordon (memory figures are then ASan's)."""
    with open(CORDON_BIN, "rb") as f:
        return b"__asan_init" in f.read()


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer")


def check_sanitizers(text):
    for m in SANITIZER_MARKERS:
        assert m not in text, "sanitizer report:\n" + text[-6000:]


def nofile_hard():
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


class Proc:
    """A child process; its stdout is read line by line by a thread, stderr
    collected whole. Every wait has a timeout."""

    def __init__(self, argv, **kw):
        self.argv = argv
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, bufsize=1, **kw)
        self.pid = self.p.pid
        self.q = queue.Queue()
        self.err = []
        self.out = []
        threading.Thread(target=self._read, args=(self.p.stdout, self.q), daemon=True).start()
        self.err_t = threading.Thread(target=self._collect, args=(self.p.stderr, self.err),
                                      daemon=True)
        self.err_t.start()

    @staticmethod
    def _read(f, q):
        for line in f:
            q.put(line)
        q.put(None)

    @staticmethod
    def _collect(f, acc):
        for line in f:
            acc.append(line)

    def stderr(self):
        return "".join(self.err)

    def line(self, timeout):
        """The next line of stdout (without its line end); fails on EOF or
        after timeout seconds."""
        try:
            line = self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no output from %s within %ss; stderr:\n%s" %
                                 (self.argv[-3:], timeout, self.stderr()[-3000:]))
        if line is None:
            self.wait(10)
            raise AssertionError("%s ended (rc=%s) without the expected output; stdout:\n%s\n"
                                 "stderr:\n%s" % (self.argv[-3:], self.p.returncode,
                                                  "".join(self.out)[-2000:],
                                                  self.stderr()[-3000:]))
        self.out.append(line)
        return line.rstrip("\n")

    def expect(self, word, timeout):
        line = self.line(timeout)
        assert line.split()[:1] == [word], "expected %r, got %r; stderr:\n%s" % (
            word, line, self.stderr()[-3000:])
        return line

    def send(self, text="go\n"):
        self.p.stdin.write(text)
        self.p.stdin.flush()

    def close_stdin(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass

    def wait(self, timeout):
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s did not end within %ss; stderr:\n%s" %
                                 (self.argv[-3:], timeout, self.stderr()[-3000:]))
        self.err_t.join(5)
        return rc

    def kill(self):
        if self.p.poll() is None:
            try:
                self.p.kill()
            except OSError:
                pass
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.close_stdin()


class Upstreams:
    """`cordon-load serve` on the host's loopback."""

    def __init__(self):
        self.proc = Proc([tool(), "serve"], start_new_session=True)
        self.ports = json.loads(self.proc.line(20))

    def stats(self):
        self.proc.send("stats\n")
        return json.loads(self.proc.line(20))

    def stop(self):
        self.proc.close_stdin()
        try:
            self.proc.wait(10)
        except AssertionError:
            pass
        self.proc.kill()


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


class Supervisor:
    """The cordon process (the egress proxy lives in it)."""

    def __init__(self, pid):
        self.pid = pid

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def rss(self):
        """Resident memory in bytes."""
        return int(proc_status(self.pid)["VmRSS"].split()[0]) * 1024

    def hwm(self):
        """Peak resident memory in bytes."""
        return int(proc_status(self.pid)["VmHWM"].split()[0]) * 1024

    def fd_summary(self):
        """{kind: count} of the open descriptors (socket, pipe, anon_inode:...),
        for assertion messages."""
        out = {}
        d = "/proc/%d/fd" % self.pid
        for n in os.listdir(d):
            try:
                t = os.readlink(os.path.join(d, n))
            except OSError:
                continue
            k = t.split(":")[0] if ":" in t else "file"
            out[k] = out.get(k, 0) + 1
        return out

    def settle(self, quiet=0.3, timeout=5):
        """The descriptor count once it has not changed for `quiet` seconds:
        the baseline. (The sandbox's init hands its listeners over while the
        command starts; the supervisor takes them from its loop.)"""
        deadline = time.monotonic() + timeout
        last, since = self.fds(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.02)
            n = self.fds()
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
        return last

    def wait_fds(self, at_most, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            n = self.fds()
            if n <= at_most or time.monotonic() > deadline:
                return n
            time.sleep(0.05)


class Sampler:
    """Samples a Supervisor's descriptors and memory every `every` seconds
    in a thread, until stop(); keeps the maxima and the series."""

    def __init__(self, sup, every=0.05):
        self.sup = sup
        self.every = every
        self.max_fds = 0
        self.max_rss = 0
        self.series = []
        self._stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                f, r = self.sup.fds(), self.sup.rss()
            except (OSError, KeyError):
                return
            self.max_fds = max(self.max_fds, f)
            self.max_rss = max(self.max_rss, r)
            self.series.append((time.monotonic(), f, r))
            self._stop.wait(self.every)

    def stop(self):
        self._stop.set()
        self.t.join(5)
        return self


def cordon_argv(sb, args, nofile=None):
    """`cordon ARGS` as the sandbox's user, optionally with the soft
    RLIMIT_NOFILE most systems give a login (1024) and the test process's
    hard one, through prlimit(1) (which execs: the pid stays cordon's)."""
    argv = sb.argv(args)
    if nofile:
        argv = ["prlimit", "--nofile=%d:%d" % (nofile, nofile_hard()), "--"] + argv
    return argv


def start(sb, args, nofile=1024, env=None):
    """cordon ARGS as a Proc (the supervisor's pid is Proc.pid)."""
    return Proc(cordon_argv(sb, args, nofile), cwd=sb.ws, env=sb.env(env))


def loopback_settings(sb, ports, extra_net=None, extra=None, name=None):
    """Settings that allow 127.0.0.1:PORT for each port, the workspace
    writable."""
    net = {"allowedDomains": ["127.0.0.1:%d" % p for p in ports]}
    if extra_net:
        net.update(extra_net)
    obj = {"network": net, "filesystem": {"allowWrite": [sb.ws]}}
    if extra:
        obj.update(extra)
    return sb.settings(obj, name=name or "load-%d.json" % time.monotonic_ns())


def audit(path, event=None):
    """The records of one run's audit file, checked for the common fields;
    the first is run.start and, for a run that ended, the last run.exit."""
    recs = []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            assert r["v"] == 1 and TS_RE.match(r["ts"]), r
            assert r["verdict"] in ("allow", "deny"), r
            recs.append(r)
    assert recs and recs[0]["event"] == "run.start", recs[:3]
    if event:
        recs = [r for r in recs if r["event"] == event]
    return recs


def report(name, **figures):
    """Append the figures a test measured to $CORDON_LOAD_REPORT (JSON
    lines), for docs/robustness.md."""
    path = os.environ.get("CORDON_LOAD_REPORT")
    if not path:
        return
    figures.update(test=name, build="asan" if sanitized() else "plain",
                   ts=time.strftime("%Y-%m-%dT%H:%M:%S"))
    with open(path, "a") as f:
        f.write(json.dumps(figures, sort_keys=True) + "\n")


def pat(stream, k):
    """cordon-load's pattern: byte k of stream s (as the C tool's pat())."""
    m = (1 << 64) - 1
    x = (((k + 1) * 0x9E3779B97F4A7C15) & m) ^ ((stream * 0xD1B54A32D192ED03) & m)
    x ^= x >> 29
    return (x ^ (x >> 17)) & 0xff


def pattern(stream, n):
    return bytes(pat(stream, k) for k in range(n))


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & ((1 << 64) - 1)
    return "%016x" % h
